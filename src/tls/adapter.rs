//! Every call into rustls lives in this file (rustls 0.24 changes this API): the crypto
//! provider, PEM loading through rustls-pki-types, and building configurations.

use std::cell::RefCell;
use std::io::{BufRead, Write};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, BufMut, BytesMut};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::config::{ClientPem, ServerPem};
use super::Error;
use crate::bufio::{Filter, FilterError, FilterResult, FlushMode};

/// The one crypto provider evnet uses, passed explicitly (no process-wide default).
pub(super) fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&TLS13];
static TLS13_AND_12: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];

pub(super) fn versions(tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    if tls12 {
        &TLS13_AND_12
    } else {
        &TLS13_ONLY
    }
}

fn pem_error(
    path: &Path,
    problem: &'static str,
    cause: Option<impl std::error::Error + Send + Sync + 'static>,
) -> Error {
    Error::Pem {
        path: path.to_owned(),
        problem,
        cause: cause.map(|c| Arc::new(c) as _),
    }
}

/// No underlying error (the file held nothing of the kind).
const NO_CAUSE: Option<std::io::Error> = None;

/// Reads the file first, so "cannot read" and "no certificate in it" are told apart.
fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| pem_error(path, "cannot read", Some(e)))
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "malformed PEM", Some(e)))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block", NO_CAUSE));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => pem_error(
            path,
            "no PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1)",
            NO_CAUSE,
        ),
        e => pem_error(path, "malformed PEM", Some(e)),
    })
}

pub(super) fn roots(path: &Path) -> Result<Arc<RootCertStore>, Error> {
    let mut store = RootCertStore::empty();
    for c in certs(path)? {
        store
            .add(c)
            .map_err(|e| pem_error(path, "not a usable CA certificate", Some(e)))?;
    }
    Ok(Arc::new(store))
}

/// rustls refused what was being configured.
pub(super) fn config_error(context: impl Into<String>) -> impl FnOnce(rustls::Error) -> Error {
    let context = context.into();
    move |cause| Error::Config { context, cause }
}

pub(crate) fn server_config(p: &ServerPem) -> Result<ServerConfig, Error> {
    // Client-certificate options are checked against a client CA; without one they would
    // silently authenticate nobody.
    if p.client_ca.is_none() && p.issuer.is_some() {
        return Err(Error::Incomplete {
            option: "issuer",
            missing: "client_ca",
        });
    }
    let chain = certs(&p.chain)?;
    let key = key(&p.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(p.tls12))
        .map_err(config_error("protocol versions"))?;
    let builder = match &p.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let v = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
            let v = if p.require_client_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            let v = v
                .build()
                .map_err(|e| pem_error(ca, "no usable CA certificate", Some(e)))?;
            let v: Arc<dyn ClientCertVerifier> = match &p.issuer {
                Some(dn) => Arc::new(IssuerCheck {
                    inner: v,
                    issuer: dn.clone(),
                }),
                None => v,
            };
            builder.with_client_cert_verifier(v)
        }
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(config_error(format!(
            "{} / {}",
            p.chain.display(),
            p.key.display()
        )))?;
    cfg.alpn_protocols.clone_from(&p.alpn);
    Ok(cfg)
}

pub(crate) fn client_config(p: &ClientPem) -> Result<ClientConfig, Error> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(p.tls12))
        .map_err(config_error("protocol versions"))?
        .with_root_certificates(roots(&p.ca)?);
    let mut cfg = match &p.identity {
        None => builder.with_no_client_auth(),
        Some((chain, key_path)) => builder
            .with_client_auth_cert(certs(chain)?, key(key_path)?)
            .map_err(config_error(format!(
                "{} / {}",
                chain.display(),
                key_path.display()
            )))?,
    };
    cfg.alpn_protocols.clone_from(&p.alpn);
    Ok(cfg)
}

// ----- the connection: rustls as a bufio filter ----------------------------------------

/// What the handshake settled, for the application (see [`super::Session`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The protocol version, e.g. `TLSv1_3`.
    pub version: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The ALPN protocol both sides chose, if any.
    pub alpn: Option<Vec<u8>>,
    /// The peer's certificate chain (DER), leaf first; empty when it sent none.
    pub peer_chain: Vec<Vec<u8>>,
    /// The handshake resumed an earlier session (TLS 1.3 tickets, TLS 1.2 ids or tickets)
    /// instead of a full one: a client that reuses its configuration resumes.
    pub resumed: bool,
}

/// A rustls connection (client or server) as the [`Filter`] under a TLS stream.
pub(crate) struct TlsLayer {
    conn: rustls::Connection,
    info: Rc<RefCell<Option<Negotiated>>>,
    allow_dirty_shutdown: bool,
    /// Plaintext rustls has decrypted and not handed over yet.
    plaintext: usize,
    eof_fed: bool,
    close_sent: bool,
}

impl TlsLayer {
    pub(crate) fn client(
        config: Arc<ClientConfig>,
        server_name: &str,
        info: Rc<RefCell<Option<Negotiated>>>,
        allow_dirty_shutdown: bool,
    ) -> Result<TlsLayer, Error> {
        let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())
            .map_err(|_| Error::ServerName(server_name.to_owned()))?;
        let conn = rustls::ClientConnection::new(config, name)
            .map_err(config_error("client connection"))?;
        Ok(TlsLayer::new(conn.into(), info, allow_dirty_shutdown))
    }

    pub(crate) fn server(
        config: Arc<ServerConfig>,
        info: Rc<RefCell<Option<Negotiated>>>,
        allow_dirty_shutdown: bool,
    ) -> Result<TlsLayer, Error> {
        let conn =
            rustls::ServerConnection::new(config).map_err(config_error("server connection"))?;
        Ok(TlsLayer::new(conn.into(), info, allow_dirty_shutdown))
    }

    fn new(
        conn: rustls::Connection,
        info: Rc<RefCell<Option<Negotiated>>>,
        allow_dirty_shutdown: bool,
    ) -> TlsLayer {
        TlsLayer {
            conn,
            info,
            allow_dirty_shutdown,
            plaintext: 0,
            eof_fed: false,
            close_sent: false,
        }
    }

    /// Processes what was fed in; records what the handshake settled.
    fn process(&mut self) -> Result<(), Error> {
        match self.conn.process_new_packets() {
            Ok(io) => {
                self.plaintext = io.plaintext_bytes_to_read();
                if !self.conn.is_handshaking() && self.info.borrow().is_none() {
                    *self.info.borrow_mut() = Some(Negotiated {
                        version: self
                            .conn
                            .protocol_version()
                            .map(|v| format!("{v:?}"))
                            .unwrap_or_default(),
                        cipher_suite: self
                            .conn
                            .negotiated_cipher_suite()
                            .map(|s| format!("{:?}", s.suite()))
                            .unwrap_or_default(),
                        alpn: self.conn.alpn_protocol().map(<[u8]>::to_vec),
                        peer_chain: self
                            .conn
                            .peer_certificates()
                            .map(|c| c.iter().map(|d| d.to_vec()).collect())
                            .unwrap_or_default(),
                        resumed: self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
                    });
                }
                Ok(())
            }
            Err(e) => Err(tls_error(e)),
        }
    }
}

/// A client certificate verifier that, after the CA check, also requires the
/// certificate's issuer to be one distinguished name (RFC 4514, as [`super::CertNames`]
/// writes it). A mismatch fails the handshake with an `access_denied` alert, so the client
/// is told why, instead of seeing its connection dropped after the handshake.
#[derive(Debug)]
struct IssuerCheck {
    inner: Arc<dyn ClientCertVerifier>,
    issuer: String,
}

impl ClientCertVerifier for IssuerCheck {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match super::CertNames::from_der(end_entity) {
            Ok(n) if n.issuer == self.issuer => Ok(ok),
            _ => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A rustls error as evnet's.
pub(super) fn tls_error(e: rustls::Error) -> Error {
    match e {
        rustls::Error::AlertReceived(a) => Error::PeerAlert(a),
        rustls::Error::InvalidCertificate(c) => Error::BadCertificate(c),
        rustls::Error::NoCertificatesPresented => Error::NoPeerCertificate,
        e => Error::Protocol(e),
    }
}

fn fail(e: Error) -> FilterResult {
    FilterResult::Error(FilterError::new(e))
}

impl Filter for TlsLayer {
    fn input(
        &mut self,
        src: &mut BytesMut,
        dst: &mut BytesMut,
        limit: usize,
        mode: FlushMode,
    ) -> FilterResult {
        // Ciphertext in, as far as rustls takes it (it stops at 16 KiB of unread plaintext:
        // the rest waits in `src` until the application reads).
        while !src.is_empty() && self.conn.wants_read() {
            let mut rd: &[u8] = src;
            let n = match self.conn.read_tls(&mut rd) {
                Ok(n) => n,
                Err(e) => return fail(Error::from(e)),
            };
            src.advance(n);
            if let Err(e) = self.process() {
                return fail(e);
            }
            if n == 0 {
                break;
            }
        }
        if mode == FlushMode::Finished && src.is_empty() && !self.eof_fed {
            // The transport ended: tell rustls, which then knows a truncation from a close.
            self.eof_fed = true;
            let _ = self.conn.read_tls(&mut &[][..]);
            if let Err(e) = self.process() {
                return fail(e);
            }
        }
        // Plaintext out, up to the room the stream has: copied once, from rustls's buffer
        // into `dst` (`fill_buf`, not `read`, which would need `dst` zeroed first).
        let mut given = 0;
        let mut reader = self.conn.reader();
        while given < limit {
            match reader.fill_buf() {
                Ok([]) => return FilterResult::End, // close_notify: a clean end
                Ok(chunk) => {
                    let n = chunk.len().min(limit - given);
                    dst.extend_from_slice(&chunk[..n]);
                    reader.consume(n);
                    given += n;
                    self.plaintext = self.plaintext.saturating_sub(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    if self.allow_dirty_shutdown {
                        return FilterResult::End;
                    }
                    return fail(Error::Truncated);
                }
                Err(e) => return fail(Error::from(e)),
            }
        }
        if self.conn.is_handshaking() || given > 0 {
            FilterResult::Ok
        } else {
            FilterResult::NeedMore
        }
    }

    fn output(
        &mut self,
        src: &mut BytesMut,
        dst: &mut BytesMut,
        _limit: usize,
        mode: FlushMode,
    ) -> FilterResult {
        if !self.conn.is_handshaking() && !src.is_empty() {
            match self.conn.writer().write(src) {
                Ok(n) => src.advance(n),
                Err(e) => return fail(Error::from(e)),
            }
        }
        if mode == FlushMode::Finished && src.is_empty() && !self.close_sent {
            self.close_sent = true;
            self.conn.send_close_notify();
        }
        while self.conn.wants_write() {
            let mut w = dst.writer();
            match self.conn.write_tls(&mut w) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return fail(Error::from(e)),
            }
        }
        FilterResult::Ok
    }

    fn wants_output(&self) -> bool {
        self.conn.wants_write()
    }

    fn handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    fn buffered_input(&self) -> bool {
        self.plaintext > 0
    }
}
