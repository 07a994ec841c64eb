//! Every call into rustls lives in this file (rustls 0.24 changes this API): the crypto
//! provider, PEM loading through rustls-pki-types, and building configurations.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::config::{ClientPem, ServerPem};
use super::Error;

/// The one crypto provider evnet uses, passed explicitly (no process-wide default).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&TLS13];
static TLS13_AND_12: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];

fn versions(tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    if tls12 {
        &TLS13_AND_12
    } else {
        &TLS13_ONLY
    }
}

fn pem_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Pem {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Reads the file first, so "cannot read" and "no certificate in it" are told apart.
fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| pem_error(path, format!("cannot read: {e}")))
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, format!("malformed PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            pem_error(path, "no PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1)")
        }
        e => pem_error(path, format!("malformed PEM: {e}")),
    })
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, Error> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store
            .add(c)
            .map_err(|e| pem_error(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}

pub(crate) fn server_config(p: &ServerPem) -> Result<ServerConfig, Error> {
    let chain = certs(&p.chain)?;
    let key = key(&p.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(p.tls12))
        .map_err(|e| Error::Config(e.to_string()))?;
    let builder = match &p.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let v = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
            let v = if p.require_client_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            let v = v.build().map_err(|e| Error::Config(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| Error::Config(format!("{} / {}: {e}", p.chain.display(), p.key.display())))?;
    cfg.alpn_protocols.clone_from(&p.alpn);
    Ok(cfg)
}

pub(crate) fn client_config(p: &ClientPem) -> Result<ClientConfig, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(p.tls12))
        .map_err(|e| Error::Config(e.to_string()))?
        .with_root_certificates(roots(&p.ca)?);
    let mut cfg = match &p.identity {
        None => builder.with_no_client_auth(),
        Some((chain, key_path)) => builder
            .with_client_auth_cert(certs(chain)?, key(key_path)?)
            .map_err(|e| {
                Error::Config(format!("{} / {}: {e}", chain.display(), key_path.display()))
            })?,
    };
    cfg.alpn_protocols.clone_from(&p.alpn);
    Ok(cfg)
}
