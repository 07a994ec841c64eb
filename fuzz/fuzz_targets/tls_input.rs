//! The TLS filter's input path: a TLS server over an in-memory pair, fed a peer's bytes
//! (garbage, records with random bodies, truncated handshakes). The stream must end with
//! an event, never a panic, and no application data may reach the handler from a peer
//! that never finished a handshake.
#![no_main]
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use evnet::bufio::{Conn, FlushMode, Options, Stream, StreamEvent, StreamHandler};
use evnet::ev::{Ctx, Loop};
use evnet::tls::{ServerPem, Session, TlsAcceptor};
use libfuzzer_sys::fuzz_target;

/// A self-signed server certificate, made once per process.
fn config() -> Arc<rustls::ServerConfig> {
    static CFG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("evnet-fuzz-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["fuzz.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        ServerPem::new(&c, &k).build().unwrap()
    })
    .clone()
}

#[derive(Default)]
struct St {
    data: usize,
    ended: bool,
}

struct Quiet;
impl StreamHandler<St> for Quiet {
    fn read(&mut self, _: &Conn<St>, _: Bytes, _: &mut St, _: &mut Ctx<St>) {}
    fn event(&mut self, _: &Conn<St>, _: StreamEvent, _: &mut St, _: &mut Ctx<St>) {}
}

struct Server;
impl StreamHandler<St> for Server {
    fn read(&mut self, c: &Conn<St>, data: Bytes, st: &mut St, cx: &mut Ctx<St>) {
        st.data += data.len();
        c.read_chunk(cx);
    }
    fn event(&mut self, _: &Conn<St>, _: StreamEvent, st: &mut St, _: &mut Ctx<St>) {
        st.ended = true;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut ev = Loop::<St>::new().unwrap();
    let (a, b) = Stream::pair(&mut ev, Options::default(), Quiet, Quiet);
    let server = TlsAcceptor::new(config())
        .wrap(&mut ev, b, &Session::default(), Server)
        .unwrap();
    server.read_chunk(&mut ev);
    a.write(&mut ev, data);
    a.flush(&mut ev, FlushMode::Finished);
    let mut st = St::default();
    for _ in 0..10_000 {
        if st.ended {
            break;
        }
        ev.run_nowait(&mut st).unwrap();
    }
    assert!(st.ended, "the TLS stream never ended");
    assert_eq!(st.data, 0, "application data without a handshake");
    drop((a, server));
});
