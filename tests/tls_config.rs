//! `tls` configurations from PEM files made at test time (rcgen): mutual TLS accepted and
//! refused in an in-memory handshake, certificate names in RFC 4514 form, and errors that
//! name the file and the problem.

mod util;

use std::sync::Arc;

use evnet::tls::{CertNames, ClientPem, Error, ServerPem};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use util::pki::{temp_dir, Ca};

/// Runs a handshake in memory; returns the first error and which side met it.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
    name: &str,
) -> (
    ClientConnection,
    ServerConnection,
    Result<(), (&'static str, rustls::Error)>,
) {
    let mut c =
        ClientConnection::new(client, ServerName::try_from(name.to_owned()).unwrap()).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    let mut result = Ok(());
    for _ in 0..20 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            s.read_tls(&mut &buf[..]).unwrap();
            if let Err(e) = s.process_new_packets() {
                result = Err(("server", e));
                break;
            }
        }
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            c.read_tls(&mut &buf[..]).unwrap();
            if let Err(e) = c.process_new_packets() {
                result = Err(("client", e));
                break;
            }
        }
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            break;
        }
    }
    (c, s, result)
}

#[test]
fn mutual_tls_from_pem_files_completes_and_names_the_client() {
    let dir = temp_dir("mtls");
    let ca = Ca::new(&dir, "Example, Inc.", "Example CA");
    let server = ca.leaf(&dir, "server", &["server.test"], false);
    let client = ca.leaf(&dir, "client 1", &[], false);
    for tls12 in [false, true] {
        let scfg = ServerPem::new(&server.cert, &server.key)
            .client_ca(&ca.pem, true)
            .tls12(tls12)
            .alpn(&[b"syslog"])
            .build()
            .unwrap();
        let ccfg = ClientPem::new(&ca.pem)
            .identity(&client.cert, &client.key)
            .tls12(tls12)
            .alpn(&[b"syslog"])
            .build()
            .unwrap();
        let (c, s, r) = handshake(ccfg, scfg, "server.test");
        r.unwrap();
        assert_eq!(c.alpn_protocol(), Some(&b"syslog"[..]));
        let peer = s.peer_certificates().unwrap();
        let names = CertNames::from_der(&peer[0]).unwrap();
        assert_eq!(names.subject, "CN=client 1");
        // As `openssl x509 -noout -issuer -nameopt RFC2253` prints it (rcgen writes the CN
        // first, and RFC 4514 lists the last RDN first).
        assert_eq!(names.issuer, "O=Example\\, Inc.,CN=Example CA");
        assert_eq!(CertNames::from_der(&client.der).unwrap(), names);
    }
}

#[test]
fn clients_without_a_good_certificate_are_refused_when_one_is_required() {
    let dir = temp_dir("refused");
    let ca = Ca::new(&dir, "Example", "Example CA");
    let other = Ca::new(&dir, "Elsewhere", "Other CA");
    let server = ca.leaf(&dir, "server", &["server.test"], false);
    let scfg = ServerPem::new(&server.cert, &server.key)
        .client_ca(&ca.pem, true)
        .build()
        .unwrap();
    let stranger = other.leaf(&dir, "stranger", &[], false);
    let expired = ca.leaf(&dir, "expired", &[], true);
    let cases = [
        ("no certificate", ClientPem::new(&ca.pem)),
        (
            "another CA",
            ClientPem::new(&ca.pem).identity(&stranger.cert, &stranger.key),
        ),
        (
            "expired",
            ClientPem::new(&ca.pem).identity(&expired.cert, &expired.key),
        ),
    ];
    for (what, client) in cases {
        let (_, _, r) = handshake(client.build().unwrap(), scfg.clone(), "server.test");
        let (side, e) = r.expect_err(what);
        assert_eq!(side, "server", "{what}: {e}");
        let text = e.to_string();
        assert!(
            text.contains("certificate") || text.contains("Certificate"),
            "{what}: {text}"
        );
    }
    // Optional client certificates: no certificate is fine, a bad one still is not.
    let optional = ServerPem::new(&server.cert, &server.key)
        .client_ca(&ca.pem, false)
        .build()
        .unwrap();
    let (_, _, r) = handshake(
        ClientPem::new(&ca.pem).build().unwrap(),
        optional.clone(),
        "server.test",
    );
    r.unwrap();
    let bad = ClientPem::new(&ca.pem).identity(&stranger.cert, &stranger.key);
    let (_, _, r) = handshake(bad.build().unwrap(), optional, "server.test");
    assert!(r.is_err());
    // And a client refuses a server for another name or from another CA.
    let (_, _, r) = handshake(
        ClientPem::new(&ca.pem).build().unwrap(),
        ServerPem::new(&server.cert, &server.key).build().unwrap(),
        "wrong.test",
    );
    assert_eq!(r.unwrap_err().0, "client");
    let (_, _, r) = handshake(
        ClientPem::new(&other.pem).build().unwrap(),
        ServerPem::new(&server.cert, &server.key).build().unwrap(),
        "server.test",
    );
    assert_eq!(r.unwrap_err().0, "client");
}

/// Every typed cause is kept and reachable through `source()`, printed once in a chain,
/// and `?` turns the error into an `io::Error` that still holds it.
#[test]
fn configuration_errors_keep_their_typed_cause_for_error_chains() {
    use std::error::Error as _;
    let dir = temp_dir("causes");
    let ca = Ca::new(&dir, "Example", "Example CA");
    let server = ca.leaf(&dir, "server", &["server.test"], false);
    let other = ca.leaf(&dir, "other", &["other.test"], false);
    let missing = dir.join("missing.pem");

    let e = ServerPem::new(&missing, &server.key).build().unwrap_err();
    let io = e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("a failed read keeps its io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    let chain = format!("{:#}", anyhow::Error::from(e.clone()));
    assert_eq!(
        chain.matches("No such file or directory").count(),
        1,
        "the cause is printed once: {chain}"
    );

    let e = ServerPem::new(&server.cert, &other.key)
        .build()
        .unwrap_err();
    assert!(
        e.source()
            .and_then(|s| s.downcast_ref::<evnet::tls::rustls::Error>())
            .is_some(),
        "rustls's error is the source: {e:?}"
    );
    let as_io: std::io::Error = e.clone().into();
    assert_eq!(as_io.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(
        as_io.get_ref().and_then(|i| i.downcast_ref::<Error>()),
        Some(&e),
        "the io::Error holds the tls::Error"
    );

    let e = CertNames::from_der(b"garbage").unwrap_err();
    assert!(e.source().is_some(), "the parser's error is the source");
}

#[test]
fn pem_problems_name_the_file_and_say_what_is_wrong() {
    let dir = temp_dir("errors");
    let ca = Ca::new(&dir, "Example", "Example CA");
    let server = ca.leaf(&dir, "server", &["server.test"], false);
    let other = ca.leaf(&dir, "other", &["other.test"], false);
    let missing = dir.join("missing.pem");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "nothing to see\n").unwrap();
    let problem = |r: Result<_, Error>| match r {
        Err(Error::Pem { path, problem, .. }) => (path, problem),
        Err(e) => panic!("expected a PEM error, got {e}"),
        Ok(_) => panic!("expected an error"),
    };
    let (p, why) = problem(ServerPem::new(&missing, &server.key).build());
    assert_eq!(p, missing);
    assert!(why.starts_with("cannot read"), "{why}");
    let (p, why) = problem(ServerPem::new(&empty, &server.key).build());
    assert_eq!((p, why), (empty.clone(), "no CERTIFICATE block"));
    let (p, why) = problem(ServerPem::new(&server.cert, &server.cert).build());
    assert_eq!(p, server.cert);
    assert!(why.contains("no PRIVATE KEY"), "{why}");
    let (p, _) = problem(
        ServerPem::new(&server.cert, &server.key)
            .client_ca(&empty, true)
            .build(),
    );
    assert_eq!(p, empty);
    match ClientPem::new(&missing).build() {
        Err(Error::Pem { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
    // A key that belongs to another certificate.
    match ServerPem::new(&server.cert, &other.key).build() {
        Err(Error::Config { context, .. }) => assert!(context.contains("server.pem"), "{context}"),
        other => panic!("{other:?}"),
    }
    let shown = ServerPem::new(&empty, &server.key)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        shown.contains("empty.pem") && shown.contains("no CERTIFICATE block"),
        "{shown}"
    );
    // Not a certificate at all.
    assert!(matches!(
        CertNames::from_der(b"garbage"),
        Err(Error::Certificate(_))
    ));
}

#[test]
fn an_issuer_check_refuses_other_issuers_in_the_handshake_with_an_alert() {
    let dir = temp_dir("issuer");
    let ca = Ca::new(&dir, "Example", "Example CA");
    let server = ca.leaf(&dir, "server", &["server.test"], false);
    let client = ca.leaf(&dir, "client 1", &[], false);
    let ccfg = ClientPem::new(&ca.pem)
        .identity(&client.cert, &client.key)
        .build()
        .unwrap();
    for (dn, accepted) in [("O=Example,CN=Example CA", true), ("CN=Example CA", false)] {
        let scfg = ServerPem::new(&server.cert, &server.key)
            .client_ca(&ca.pem, true)
            .issuer(dn)
            .build()
            .unwrap();
        let (_, _, r) = handshake(ccfg.clone(), scfg, "server.test");
        if accepted {
            r.unwrap();
        } else {
            let (side, e) = r.unwrap_err();
            assert_eq!(side, "server");
            assert!(
                e.to_string().contains("ApplicationVerificationFailure"),
                "{e}"
            );
        }
    }
}

#[test]
fn client_certificate_options_without_a_client_ca_are_refused_when_built() {
    let dir = temp_dir("no-client-ca");
    let ca = Ca::new(&dir, "Example", "Example CA");
    let server = ca.leaf(&dir, "server", &["localhost"], false);
    // An issuer check that nothing could verify: a server that authenticates nobody must
    // not start. (A required client certificate comes with its CA, `client_ca(ca, true)`:
    // it cannot be asked for without one.)
    let issuer = ServerPem::new(&server.cert, &server.key).issuer("CN=Example CA");
    match issuer.build() {
        Err(e @ Error::Incomplete { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains("issuer") && text.contains("client_ca"),
                "{text}"
            );
        }
        other => panic!("issuer without client_ca: {other:?}"),
    }
    // With the CA, both take effect.
    let full = ServerPem::new(&server.cert, &server.key)
        .client_ca(&ca.pem, true)
        .issuer("O=Example,CN=Example CA");
    assert!(full.build().is_ok());
}
