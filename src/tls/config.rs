//! Building rustls configurations from PEM files, with errors that name the file and say
//! what is wrong with it.

use std::path::PathBuf;
use std::sync::Arc;

use super::{adapter, Error};

/// A TLS server's certificate chain and key, and how it treats client certificates.
///
/// ```no_run
/// use evnet::tls::ServerPem;
/// // Mutual TLS: clients must present a certificate issued by ca.pem.
/// let _config = ServerPem::new("server.pem", "server.key")
///     .client_ca("ca.pem", true)
///     .build()?;
/// # Ok::<(), evnet::tls::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPem {
    /// The certificate chain, leaf first.
    pub(crate) chain: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub(crate) key: PathBuf,
    /// CA certificates that client certificates are verified against; `None`: no client
    /// authentication.
    pub(crate) client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse clients without a certificate (else they are accepted and
    /// a certificate, when given, must still verify). Set only with `client_ca`.
    pub(crate) require_client_cert: bool,
    /// With `client_ca`: also require the client certificate's issuer to be this
    /// distinguished name (RFC 4514, as [`CertNames`](super::CertNames) writes it); a
    /// mismatch fails the handshake with an `access_denied` alert. Without `client_ca`,
    /// [`build`](Self::build) refuses it.
    pub(crate) issuer: Option<String>,
    /// Allow TLS 1.2 besides 1.3.
    pub(crate) tls12: bool,
    /// ALPN protocols offered, most preferred first.
    pub(crate) alpn: Vec<Vec<u8>>,
}

impl ServerPem {
    /// A server presenting `chain` with `key`: TLS 1.3 only, no client authentication.
    pub fn new(chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ServerPem {
        ServerPem {
            chain: chain.into(),
            key: key.into(),
            client_ca: None,
            require_client_cert: false,
            issuer: None,
            tls12: false,
            alpn: Vec::new(),
        }
    }

    /// Verifies client certificates against the CAs in `ca`; `required` refuses clients
    /// without one.
    #[must_use]
    pub fn client_ca(mut self, ca: impl Into<PathBuf>, required: bool) -> ServerPem {
        self.client_ca = Some(ca.into());
        self.require_client_cert = required;
        self
    }

    /// Accepts only client certificates issued by `dn`. Needs a
    /// [`client_ca`](Self::client_ca): without one, [`build`](Self::build) refuses it.
    #[must_use]
    pub fn issuer(mut self, dn: impl Into<String>) -> ServerPem {
        self.issuer = Some(dn.into());
        self
    }

    /// Allows TLS 1.2 too.
    #[must_use]
    pub fn tls12(mut self, on: bool) -> ServerPem {
        self.tls12 = on;
        self
    }

    /// Offers these ALPN protocols.
    #[must_use]
    pub fn alpn(mut self, protocols: &[&[u8]]) -> ServerPem {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Reads the files and builds the configuration.
    ///
    /// # Errors
    /// [`Error::Pem`] naming the file that cannot be read or lacks what it should hold;
    /// [`Error::Config`] when rustls refuses the result (e.g. the key does not match the
    /// certificate); [`Error::Incomplete`] for an [`issuer`](Self::issuer) check or a
    /// required client certificate without a [`client_ca`](Self::client_ca), which would
    /// authenticate nobody.
    pub fn build(&self) -> Result<Arc<rustls::ServerConfig>, Error> {
        adapter::server_config(self).map(Arc::new)
    }
}

/// What a TLS client trusts and, for mutual TLS, the certificate it presents.
///
/// ```no_run
/// use evnet::tls::ClientPem;
/// let _config = ClientPem::new("ca.pem").identity("client.pem", "client.key").build()?;
/// # Ok::<(), evnet::tls::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPem {
    /// CA certificates the server's certificate is verified against.
    pub(crate) ca: PathBuf,
    /// A certificate chain and key to present (mutual TLS).
    pub(crate) identity: Option<(PathBuf, PathBuf)>,
    /// Allow TLS 1.2 besides 1.3.
    pub(crate) tls12: bool,
    /// ALPN protocols offered, most preferred first.
    pub(crate) alpn: Vec<Vec<u8>>,
}

impl ClientPem {
    /// A client that trusts the CAs in `ca`: TLS 1.3 only, no client certificate.
    pub fn new(ca: impl Into<PathBuf>) -> ClientPem {
        ClientPem {
            ca: ca.into(),
            identity: None,
            tls12: false,
            alpn: Vec::new(),
        }
    }

    /// Presents `chain` with `key` when the server asks for a certificate.
    #[must_use]
    pub fn identity(mut self, chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ClientPem {
        self.identity = Some((chain.into(), key.into()));
        self
    }

    /// Allows TLS 1.2 too.
    #[must_use]
    pub fn tls12(mut self, on: bool) -> ClientPem {
        self.tls12 = on;
        self
    }

    /// Offers these ALPN protocols.
    #[must_use]
    pub fn alpn(mut self, protocols: &[&[u8]]) -> ClientPem {
        self.alpn = protocols.iter().map(|p| p.to_vec()).collect();
        self
    }

    /// Reads the files and builds the configuration.
    ///
    /// # Errors
    /// As [`ServerPem::build`].
    pub fn build(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        adapter::client_config(self).map(Arc::new)
    }
}
