//! `tls`: TLS for evnet's streams, on rustls.
//!
//! This first part builds the configurations: [`ServerPem`] and [`ClientPem`] read a
//! certificate chain, a key and CA certificates from PEM files (mutual TLS with
//! `WebPkiClientVerifier`, TLS 1.3 by default, 1.2 on request, ALPN) and fail with an
//! [`Error`] that names the file and the problem; [`CertNames`] gives a certificate's
//! subject and issuer in RFC 4514 form, for authorizing a peer. The crypto provider is
//! ring, passed explicitly. Every rustls call lives in one file (`adapter.rs`).

mod adapter;
mod config;
mod error;
mod names;

pub use config::{ClientPem, ServerPem};
pub use error::Error;
pub use names::{rfc4514, CertNames};
