//! TLS streams: a rustls connection stacked on any bufio stream (TCP, Unix, a pair)
//! through the filter seam, so the same application handler runs over plain bufio or TLS.
//! One entry per side, as tokio-rustls users know them: a [`TlsConnector`] starts client
//! streams, a [`TlsAcceptor`] server streams.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::adapter::{Negotiated, TlsLayer};
use super::{CertNames, Error};
use bytes::Bytes;

use crate::bufio::{Conn, Options, Stream, StreamEvent, StreamHandler};
use crate::ev::Ctx;
use crate::socket::{ConnectOptions, Resolve, Target};

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

/// Starts TLS client streams: a rustls client configuration (e.g. from
/// [`ClientPem::build`](super::ClientPem::build)), how the streams treat a missing
/// `close_notify`, and their bufio [`Options`]. Cheap to clone; one per configuration.
///
/// A TLS 1.3 caveat (rustls #1707): a client whose certificate the server refuses
/// finishes its handshake first and learns of the refusal only from the alert that
/// follows, so it may see `Connected` and then a `StreamEvent::Error` carrying that alert
/// (never a plain end of stream).
#[derive(Debug, Clone)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    allow_dirty_shutdown: bool,
    options: Options,
}

impl TlsConnector {
    /// A connector for `config`, with default stream options and truncation refused.
    pub fn new(config: Arc<rustls::ClientConfig>) -> TlsConnector {
        TlsConnector {
            config,
            allow_dirty_shutdown: false,
            options: Options::default(),
        }
    }

    /// Accept a transport EOF without `close_notify` as end of stream (libevent's
    /// `allow_dirty_shutdown`). Off by default: such an EOF is [`Error::Truncated`], since
    /// an attacker (or a crash) could have cut the stream short.
    #[must_use]
    pub fn allow_dirty_shutdown(mut self, allow: bool) -> TlsConnector {
        self.allow_dirty_shutdown = allow;
        self
    }

    /// The TLS streams' bufio options (the handshake deadline is
    /// [`Options::handshake_timeout`], 10 s by default).
    #[must_use]
    pub fn options(mut self, options: Options) -> TlsConnector {
        self.options = options;
        self
    }

    /// Connects to `host:port` (the name resolved by `resolver`, with RFC 8305 fallback, as
    /// [`socket::connect`](crate::socket::connect)) and starts TLS over it,
    /// verifying the server as `host`. Writes wait for the handshake; `handler` gets
    /// `StreamEvent::Connected` when it is done, and `session` then tells what it settled.
    ///
    /// # Errors
    /// [`Error::ServerName`] when `host` is not a name or address a certificate can be
    /// verified against; [`Error::Config`] when rustls refuses the configuration.
    pub fn connect<S: 'static, R: Resolve<S> + ?Sized, H: StreamHandler<S>>(
        &self,
        cx: &mut Ctx<S>,
        resolver: &R,
        host: &str,
        port: u16,
        session: &Session,
        handler: H,
    ) -> Result<Stream<S>, Error> {
        let under = Stream::connect(
            cx,
            resolver,
            Target::host(host, port),
            ConnectOptions::default(),
            under_options(),
            Plain,
        );
        self.wrap(cx, under, host, session, handler)
    }

    /// Starts TLS over `under` (connected or connecting), verifying the server as
    /// `server_name`; otherwise as [`connect`](TlsConnector::connect).
    ///
    /// # Errors
    /// As [`connect`](TlsConnector::connect).
    pub fn wrap<S: 'static, H: StreamHandler<S>>(
        &self,
        cx: &mut Ctx<S>,
        under: Stream<S>,
        server_name: &str,
        session: &Session,
        handler: H,
    ) -> Result<Stream<S>, Error> {
        let layer = TlsLayer::client(
            self.config.clone(),
            server_name,
            session.info.clone(),
            self.allow_dirty_shutdown,
        )?;
        Ok(Stream::filter(cx, under, layer, self.options, handler))
    }
}

/// Starts TLS server streams: a rustls server configuration (e.g. from
/// [`ServerPem::build`](super::ServerPem::build)), how the streams treat a missing
/// `close_notify`, and their bufio [`Options`]. Cheap to clone; one per configuration.
#[derive(Debug, Clone)]
pub struct TlsAcceptor {
    config: Arc<rustls::ServerConfig>,
    allow_dirty_shutdown: bool,
    options: Options,
}

impl TlsAcceptor {
    /// An acceptor for `config`, with default stream options and truncation refused.
    pub fn new(config: Arc<rustls::ServerConfig>) -> TlsAcceptor {
        TlsAcceptor {
            config,
            allow_dirty_shutdown: false,
            options: Options::default(),
        }
    }

    /// As [`TlsConnector::allow_dirty_shutdown`].
    #[must_use]
    pub fn allow_dirty_shutdown(mut self, allow: bool) -> TlsAcceptor {
        self.allow_dirty_shutdown = allow;
        self
    }

    /// As [`TlsConnector::options`].
    #[must_use]
    pub fn options(mut self, options: Options) -> TlsAcceptor {
        self.options = options;
        self
    }

    /// A TLS server over an accepted socket (e.g. from a
    /// [`Listener`](crate::socket::Listener)): the handshake starts with the client's
    /// first bytes, `handler` gets `StreamEvent::Connected` when it is done, and `session`
    /// then tells what it settled and who the client is.
    ///
    /// # Errors
    /// [`Error::Io`] when making the socket non-blocking failed, [`Error::Config`] when
    /// rustls refused the configuration.
    pub fn accept<S: 'static, H: StreamHandler<S>>(
        &self,
        cx: &mut Ctx<S>,
        socket: socket2::Socket,
        session: &Session,
        handler: H,
    ) -> Result<Stream<S>, Error> {
        let under = Stream::with_options(cx, socket, under_options(), Plain)?;
        self.wrap(cx, under, session, handler)
    }

    /// Starts TLS as the server over `under`; otherwise as [`accept`](TlsAcceptor::accept).
    ///
    /// # Errors
    /// [`Error::Config`] when rustls refused the configuration.
    pub fn wrap<S: 'static, H: StreamHandler<S>>(
        &self,
        cx: &mut Ctx<S>,
        under: Stream<S>,
        session: &Session,
        handler: H,
    ) -> Result<Stream<S>, Error> {
        let layer = TlsLayer::server(
            self.config.clone(),
            session.info.clone(),
            self.allow_dirty_shutdown,
        )?;
        Ok(Stream::filter(cx, under, layer, self.options, handler))
    }
}

/// The plain stream under a TLS stream moves up to 64 KiB per turn: a 16 KiB TLS record
/// plus its overhead would otherwise take two turns.
pub(crate) fn under_options() -> Options {
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
