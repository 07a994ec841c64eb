//! Authenticating a server by CA roots or by an SPKI pin (RFC 7858 §4.2), strictly (a
//! failure fails the handshake) or after the fact (RFC 8310's opportunistic profile: the
//! handshake goes on, and the caller asks whether the server authenticated).

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::adapter::{config_error, provider, roots, versions};
use super::Error;

/// The SHA-256 of a certificate's SubjectPublicKeyInfo: the pin RFC 7858 §4.2 (and HPKP)
/// compare, which survives a re-issued certificate with the same key.
///
/// # Errors
/// [`Error::Certificate`] when `cert_der` is not a certificate.
pub fn spki_sha256(cert_der: &[u8]) -> Result<[u8; 32], Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| Error::Certificate(Arc::new(e)))?;
    Ok(sha256(cert.public_key().raw))
}

fn sha256(data: &[u8]) -> [u8; 32] {
    // ring's SHA-256, through the cipher suite that names it (no second crypto crate).
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let mut out = [0u8; 32];
    if let Some(s) = suite.tls13() {
        let h = s.common.hash_provider.hash(data);
        out.copy_from_slice(&h.as_ref()[..32]);
    }
    out
}

/// Who a client accepts as the server: a certificate chain to one of the CA roots that
/// names the server, or a leaf whose key matches a pin. A pin is enough by itself; without
/// a pin, the CA check decides; with neither, nothing authenticates.
#[derive(Debug)]
pub(crate) struct ServerCheck {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<[u8; 32]>,
}

impl ServerCheck {
    /// A check against the CA certificates in `ca` and the SPKI `pins`.
    pub(crate) fn new(ca: Option<&Path>, pins: &[[u8; 32]]) -> Result<ServerCheck, Error> {
        let webpki = match ca {
            Some(path) => Some(
                WebPkiServerVerifier::builder_with_provider(roots(path)?, provider())
                    .build()
                    .map_err(|e| Error::Config {
                        context: format!("CA roots from {}", path.display()),
                        cause: rustls::Error::General(e.to_string()),
                    })?,
            ),
            None => None,
        };
        Ok(ServerCheck {
            webpki,
            pins: pins.to_vec(),
        })
    }

    /// Whether this check can authenticate anyone at all.
    pub(crate) fn can_authenticate(&self) -> bool {
        self.webpki.is_some() || !self.pins.is_empty()
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        if !self.pins.is_empty() {
            let pin = spki_sha256(end_entity).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })?;
            if self.pins.contains(&pin) {
                return Ok(());
            }
            if self.webpki.is_none() {
                return Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        match &self.webpki {
            Some(w) => w
                .verify_server_cert(end_entity, intermediates, name, &[], now)
                .map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    /// After a handshake the check did not gate: does `chain` (leaf first, DER)
    /// authenticate `name`?
    pub(crate) fn authenticates(&self, chain: &[Vec<u8>], name: &str) -> bool {
        let Some((leaf, rest)) = chain.split_first() else {
            return false;
        };
        let Ok(name) = ServerName::try_from(name.to_owned()) else {
            return false;
        };
        let leaf = CertificateDer::from(leaf.as_slice());
        let rest: Vec<CertificateDer<'_>> = rest
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        self.check(&leaf, &rest, &name, UnixTime::now()).is_ok()
    }
}

/// The verifier of a client configuration built on a [`ServerCheck`]: `strict` fails the
/// handshake when the check fails; otherwise any certificate is taken (the handshake's
/// signature is still verified, so the session is bound to that certificate's key).
#[derive(Debug)]
struct CheckVerifier {
    check: Arc<ServerCheck>,
    strict: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CheckVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.strict {
            self.check.check(end_entity, intermediates, name, now)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration (TLS 1.3 and 1.2, session resumption on: rustls keeps 256
/// sessions in memory per configuration) that verifies servers with `check`, failing the
/// handshake when `strict`.
pub(crate) fn checked_client_config(
    check: Arc<ServerCheck>,
    strict: bool,
) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let verifier = Arc::new(CheckVerifier {
        check,
        strict,
        provider: provider.clone(),
    });
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(true))
        .map_err(config_error("protocol versions"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}
