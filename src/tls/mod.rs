//! `tls`: TLS for evnet's streams, on rustls.
//!
//! A [`TlsConnector`] (client) and a [`TlsAcceptor`] (server) put rustls over any bufio
//! stream through the filter seam (the same handler runs over plain bufio or TLS): writes
//! wait for the handshake, `StreamEvent::Connected` marks its end, [`Session`] tells what
//! it settled and who the peer is, `close` sends `close_notify`, a received `close_notify`
//! is end of stream and a truncated stream an error (unless
//! [`TlsConnector::allow_dirty_shutdown`]).
//!
//! The configurations: [`ServerPem`] and [`ClientPem`] read a
//! certificate chain, a key and CA certificates from PEM files (mutual TLS with
//! `WebPkiClientVerifier`, TLS 1.3 by default, 1.2 on request, ALPN) and fail with an
//! [`Error`] that names the file and the problem; [`CertNames`] gives a certificate's
//! subject and issuer in RFC 4514 form, for authorizing a peer. The crypto provider is
//! ring, passed explicitly. Every rustls call lives in `adapter.rs`, and the server checks
//! (CA roots or an SPKI pin, strict or after the fact) in `verify.rs`.

mod adapter;
mod config;
mod error;
mod names;
mod stream;
mod verify;

pub use adapter::Negotiated;
pub use config::{ClientPem, ServerPem};
pub use error::Error;
pub use names::CertNames;
pub(crate) use stream::{under_options, Plain};
pub use stream::{Session, TlsAcceptor, TlsConnector};
pub use verify::spki_sha256;
pub(crate) use verify::{checked_client_config, ServerCheck};

/// The rustls this crate is built on: its types appear in [`Error`] (alerts, certificate
/// errors), so they are named through this re-export and always match.
pub use rustls;
