//! TLS streams: a rustls connection stacked on any bufio stream (TCP, Unix, a pair)
//! through the filter seam, so the same application handler runs over plain bufio or TLS.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::adapter::{Negotiated, TlsLayer};
use super::{CertNames, Error};
use bytes::Bytes;

use crate::bufio::{Conn, Options, Stream, StreamEvent, StreamHandler};
use crate::ev::Ctx;

/// How a TLS stream treats the end of the connection. (Its handshake deadline is the
/// stream's [`Options::handshake_timeout`], 10 s by default: a handshake not finished by
/// then fails the stream with [`bufio::Error::HandshakeTimeout`](crate::bufio::Error::HandshakeTimeout).)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settings {
    /// Accept a transport EOF without `close_notify` as end of stream (libevent's
    /// `allow_dirty_shutdown`). Off by default: such an EOF is an error, since an attacker
    /// (or a crash) could have cut the stream short.
    pub allow_dirty_shutdown: bool,
}

/// What the handshake of one TLS stream settled: readable once the stream has delivered
/// [`StreamEvent::Connected`](crate::bufio::StreamEvent::Connected).
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
/// writes wait for it, and `handler` gets `StreamEvent::Connected` when it is done. Returns the
/// stream and its [`Session`]; when the handler itself needs the session, make one first
/// and use [`Session::client`].
///
/// A TLS 1.3 caveat (rustls #1707): a client whose certificate the server refuses
/// finishes its handshake first and learns of the refusal only from the alert that
/// follows, so it may see `Connected` and then an `StreamEvent::Error` carrying that alert (never
/// a plain end of stream).
///
/// # Errors
/// [`Error::Config`] for a server name rustls cannot use.
pub fn client<S: 'static, H: StreamHandler<S>>(
    cx: &mut Ctx<S>,
    under: Stream<S>,
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
    settings: Settings,
    opts: Options,
    handler: H,
) -> Result<(Stream<S>, Session), Error> {
    let session = Session::default();
    let s = session.client(cx, under, config, server_name, settings, opts, handler)?;
    Ok((s, session))
}

/// A TLS server over `under` (an accepted connection); see [`client`]. For throughput, let
/// `under` move 64 KiB per turn (`max_read`, `max_write`), as [`accept`] does: a full TLS
/// record and its overhead then take one turn, not two.
///
/// # Errors
/// [`Error::Config`] when rustls refuses the configuration.
pub fn server<S: 'static, H: StreamHandler<S>>(
    cx: &mut Ctx<S>,
    under: Stream<S>,
    config: Arc<rustls::ServerConfig>,
    settings: Settings,
    opts: Options,
    handler: H,
) -> Result<(Stream<S>, Session), Error> {
    let session = Session::default();
    let s = session.server(cx, under, config, settings, opts, handler)?;
    Ok((s, session))
}

impl Session {
    /// As [`client`], with this session (e.g. one the handler keeps a clone of).
    ///
    /// # Errors
    /// As [`client`].
    #[allow(clippy::too_many_arguments)]
    pub fn client<S: 'static, H: StreamHandler<S>>(
        &self,
        cx: &mut Ctx<S>,
        under: Stream<S>,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
        settings: Settings,
        opts: Options,
        handler: H,
    ) -> Result<Stream<S>, Error> {
        let layer = TlsLayer::client(
            config,
            server_name,
            self.info.clone(),
            settings.allow_dirty_shutdown,
        )?;
        Ok(Stream::filter(cx, under, layer, opts, handler))
    }

    /// As [`server`], with this session.
    ///
    /// # Errors
    /// As [`server`].
    pub fn server<S: 'static, H: StreamHandler<S>>(
        &self,
        cx: &mut Ctx<S>,
        under: Stream<S>,
        config: Arc<rustls::ServerConfig>,
        settings: Settings,
        opts: Options,
        handler: H,
    ) -> Result<Stream<S>, Error> {
        let layer = TlsLayer::server(config, self.info.clone(), settings.allow_dirty_shutdown)?;
        Ok(Stream::filter(cx, under, layer, opts, handler))
    }
}

/// The plain stream under a TLS stream moves up to 64 KiB per turn: a 16 KiB TLS record
/// plus its overhead would otherwise take two turns.
fn under_options() -> Options {
    Options {
        max_read: 64 * 1024,
        max_write: 64 * 1024,
        ..Options::default()
    }
}

/// The handler of the plain stream under a TLS stream, until the TLS layer takes it over.
#[derive(Debug)]
pub(crate) struct Plain;

impl<S> StreamHandler<S> for Plain {
    fn read(&mut self, _: &Conn<S>, _: Bytes, _: &mut S, _: &mut Ctx<S>) {}
    fn event(&mut self, _: &Conn<S>, _: StreamEvent, _: &mut S, _: &mut Ctx<S>) {}
}

/// A TLS server over an accepted socket (e.g. from a
/// [`Listener`](crate::socket::Listener)), with its session.
///
/// # Errors
/// [`Error::Io`] when making the socket non-blocking failed, [`Error::Config`] when rustls
/// refused the configuration.
pub fn accept<S: 'static, H: StreamHandler<S>>(
    cx: &mut Ctx<S>,
    socket: socket2::Socket,
    config: Arc<rustls::ServerConfig>,
    session: &Session,
    settings: Settings,
    opts: Options,
    handler: H,
) -> Result<Stream<S>, Error> {
    let under = Stream::with_options(cx, socket, under_options(), Plain)?;
    session.server(cx, under, config, settings, opts, handler)
}

/// Connects to `host:port` (the name resolved by `resolver`, RFC 8305 fallback, as
/// [`Stream::connect_host`]) and runs a TLS client over it with `host` as the server name
/// (SNI and certificate check), in one call.
///
/// # Errors
/// As [`client`].
#[allow(clippy::too_many_arguments)]
pub fn connect_host<S: 'static, R: crate::socket::Resolve<S> + ?Sized, H: StreamHandler<S>>(
    cx: &mut Ctx<S>,
    resolver: &R,
    host: &str,
    port: u16,
    config: Arc<rustls::ClientConfig>,
    session: &Session,
    settings: Settings,
    opts: Options,
    handler: H,
) -> Result<Stream<S>, Error> {
    let under = Stream::connect_host(
        cx,
        resolver,
        host,
        port,
        crate::socket::ConnectOptions::default(),
        under_options(),
        Plain,
    );
    session.client(cx, under, config, host, settings, opts, handler)
}
