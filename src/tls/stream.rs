//! TLS streams: a rustls connection stacked on any bufio stream (TCP, Unix, a pair)
//! through the filter seam, so the same application handler runs over plain bufio or TLS.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::adapter::{Negotiated, TlsLayer};
use super::{CertNames, Error};
use crate::bufio::{Handler, Options, Stream};
use crate::ev::Ctx;

/// How a TLS stream treats the end of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// Accept a transport EOF without `close_notify` as end of stream (libevent's
    /// `allow_dirty_shutdown`). Off by default: such an EOF is an error, since an attacker
    /// (or a crash) could have cut the stream short.
    pub allow_dirty_shutdown: bool,
}

/// What the handshake of one TLS stream settled: readable once the stream has delivered
/// [`Event::Connected`](crate::bufio::Event::Connected).
#[derive(Debug, Clone, Default)]
pub struct Session {
    info: Rc<RefCell<Option<Negotiated>>>,
}

impl Session {
    /// Protocol version, cipher suite, ALPN and the peer's chain; `None` before the
    /// handshake has finished.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.info.borrow().clone()
    }

    /// The peer certificate's subject and issuer (RFC 4514), to authorize the peer; `None`
    /// before the handshake or when the peer sent no certificate.
    pub fn peer_names(&self) -> Option<CertNames> {
        let g = self.info.borrow();
        let leaf = g.as_ref()?.peer_chain.first()?;
        CertNames::from_der(leaf).ok()
    }
}

/// A TLS client over `under` (connected or connecting): the handshake starts at once,
/// writes wait for it, and `handler` gets `Event::Connected` when it is done.
///
/// A TLS 1.3 caveat (rustls #1707): a client whose certificate the server refuses
/// finishes its handshake first and learns of the refusal only from the alert that
/// follows, so it may see `Connected` and then an `Event::Error` carrying that alert (never
/// a plain end of stream).
///
/// # Errors
/// [`Error::Config`] for a server name rustls cannot use.
pub fn client<S: 'static, H: Handler<S>>(
    cx: &mut Ctx<S>,
    under: Stream<S>,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
    settings: Settings,
    opts: Options,
    handler: H,
) -> Result<(Stream<S>, Session), Error> {
    let session = Session::default();
    let layer = TlsLayer::client(
        config,
        server_name,
        session.info.clone(),
        settings.allow_dirty_shutdown,
    )?;
    Ok((Stream::filter(cx, under, layer, opts, handler), session))
}

/// A TLS server over `under` (an accepted connection).
///
/// # Errors
/// [`Error::Config`] when rustls refuses the configuration.
pub fn server<S: 'static, H: Handler<S>>(
    cx: &mut Ctx<S>,
    under: Stream<S>,
    config: Arc<rustls::ServerConfig>,
    settings: Settings,
    opts: Options,
    handler: H,
) -> Result<(Stream<S>, Session), Error> {
    let session = Session::default();
    let layer = TlsLayer::server(config, session.info.clone(), settings.allow_dirty_shutdown)?;
    Ok((Stream::filter(cx, under, layer, opts, handler), session))
}
