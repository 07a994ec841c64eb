//! TLS over in-memory pairs and under hostile input: a slow reader with tiny watermarks
//! gets 1 MiB with nothing stuck inside the TLS layer, random and truncated records fail
//! that stream alone with an error (never a panic), and garbage or a plain HTTP request on
//! the TLS port fails only its own connection while 100 others keep echoing.

mod util;

#[global_allocator]
static GLOBAL: util::alloc::Counting = util::alloc::Counting;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use evnet::bufio::{FlushMode, Options, Stream, StreamEvent};
use evnet::ev::Loop;
use evnet::socket::{bind_tcp_all, Accept, Listener};
use evnet::tls::{ClientPem, ServerPem, Session, TlsAcceptor, TlsConnector};
use util::pki::{temp_dir, Ca};
use util::{Fns, Rng};

const LIMIT: Duration = Duration::from_secs(60);

fn pki(
    tag: &str,
) -> (
    std::sync::Arc<rustls::ServerConfig>,
    std::sync::Arc<rustls::ClientConfig>,
) {
    let dir = temp_dir(tag);
    let ca = Ca::new(&dir, "Example", "Example CA");
    let s = ca.leaf(&dir, "server", &["server.test"], false);
    (
        ServerPem::new(&s.cert, &s.key).build().unwrap(),
        ClientPem::new(&ca.pem).build().unwrap(),
    )
}

#[derive(Default)]
struct St {
    got: Vec<u8>,
    events: Vec<String>,
    reader: Option<Stream<St>>,
}

#[test]
fn a_slow_reader_with_tiny_watermarks_gets_a_mib_with_nothing_stuck() {
    let (scfg, ccfg) = pki("pair");
    let mut ev = Loop::<St>::new().unwrap();
    let tiny = Options {
        read_high: 1024,
        max_read: 512,
        max_write: 512,
        ..Options::default()
    };
    let (a, b) = Stream::pair(
        &mut ev,
        tiny,
        Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
        Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
    );
    let client = TlsConnector::new(ccfg)
        .options(tiny)
        .wrap(
            &mut ev,
            a,
            "server.test",
            &Session::default(),
            Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
        )
        .unwrap();
    let server = TlsAcceptor::new(scfg)
        .options(tiny)
        .wrap(
            &mut ev,
            b,
            &Session::default(),
            Fns::new(
                |_, d, st: &mut St, _| st.got.extend_from_slice(&d),
                |_, e, st: &mut St, _| st.events.push(format!("{e:?}")),
            ),
        )
        .unwrap();
    let data: Vec<u8> = (0..1 << 20).map(|i: usize| (i % 253) as u8).collect();
    client.write(&mut ev, &data);
    client.flush(&mut ev, FlushMode::Finished);
    let ms = Duration::from_millis(1);
    // The slow reader: one chunk (at most the read high watermark) per millisecond.
    ev.timer(ms, Some(ms), |st: &mut St, cx, _| {
        if let Some(r) = &st.reader {
            r.read_chunk(cx);
        }
    });
    let mut st = St {
        reader: Some(server),
        ..St::default()
    };
    let ok = ev
        .run_until(&mut st, LIMIT, |s| s.events.iter().any(|e| e == "Eof"))
        .unwrap();
    assert!(
        ok,
        "{} of {} bytes, events {:?}",
        st.got.len(),
        data.len(),
        st.events
    );
    assert_eq!(st.got.len(), data.len());
    assert!(st.got == data, "byte-exact");
    drop(client);
}

#[test]
fn random_and_truncated_records_fail_the_stream_with_an_error_never_a_panic() {
    let (scfg, ccfg) = pki("fuzz");
    // A genuine ClientHello, to truncate.
    let mut ev = Loop::<St>::new().unwrap();
    let (a, b) = Stream::pair(
        &mut ev,
        Options::default(),
        Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
        Fns::new(
            |_, d, st: &mut St, _| st.got.extend_from_slice(&d),
            |_, _, _, _| {},
        ),
    );
    b.read_chunk(&mut ev);
    let _c = TlsConnector::new(ccfg)
        .wrap(
            &mut ev,
            a,
            "server.test",
            &Session::default(),
            Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
        )
        .unwrap();
    let mut st = St::default();
    ev.run_until(&mut st, LIMIT, |s| s.got.len() > 100).unwrap();
    let hello = std::mem::take(&mut st.got);
    drop((b, _c));

    let mut rng = Rng(0x5eed);
    let mut inputs: Vec<Vec<u8>> = (0..300)
        .map(|_| {
            let n = 1 + rng.below(2000) as usize;
            (0..n).map(|_| rng.next() as u8).collect()
        })
        .collect();
    // Records that look right: a handshake record header with random bodies and lengths.
    for _ in 0..200 {
        let n = rng.below(300) as usize;
        let mut r = vec![22, 3, 3, (n >> 8) as u8, n as u8];
        r.extend((0..n).map(|_| rng.next() as u8));
        inputs.push(r);
    }
    for k in [1, 5, 6, 40, hello.len() / 2, hello.len() - 1] {
        inputs.push(hello[..k].to_vec());
    }
    for input in &inputs {
        let mut ev = Loop::<St>::new().unwrap();
        let (a, b) = Stream::pair(
            &mut ev,
            Options::default(),
            Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
            Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
        );
        let server = TlsAcceptor::new(scfg.clone())
            .wrap(
                &mut ev,
                b,
                &Session::default(),
                Fns::new(
                    |_, _, st: &mut St, _| st.events.push("data".into()),
                    |_, e, st: &mut St, _| st.events.push(format!("{e:?}")),
                ),
            )
            .unwrap();
        server.read_chunk(&mut ev);
        a.write(&mut ev, input);
        a.flush(&mut ev, FlushMode::Finished); // then the end of the transport
        let mut st = St::default();
        let done = ev
            .run_until(&mut st, LIMIT, |s| !s.events.is_empty())
            .unwrap();
        assert!(done, "no verdict for {input:?}");
        // The first thing the server's handler hears is the TLS error: never a byte of
        // application data from a peer that never finished a handshake.
        assert!(
            st.events[0].starts_with("Error(Filter("),
            "{:?} for {} bytes",
            st.events,
            input.len()
        );
        assert!(
            !st.events.iter().any(|e| e == "data"),
            "{:?} for {} bytes",
            st.events,
            input.len()
        );
    }
}

#[derive(Default)]
struct Server {
    errors: Vec<String>,
}

#[test]
fn garbage_and_plain_http_fail_only_their_own_connection_while_100_others_echo() {
    let (scfg, ccfg) = pki("garbage");
    let mut ev = Loop::<Server>::new().unwrap();
    let socks = bind_tcp_all(Some("127.0.0.1"), 0).unwrap();
    let port = socks[0].local_addr().unwrap().as_socket().unwrap().port();
    let _l = Listener::new(&mut ev, socks, move |_: &mut Server, cx, a| {
        let Accept::Conn(c) = a else { return };
        let under = Stream::new(cx, c.socket, Fns::new(|_, _, _, _| {}, |_, _, _, _| {})).unwrap();
        let s = TlsAcceptor::new(scfg.clone())
            .wrap(
                cx,
                under,
                &Session::default(),
                Fns::new(
                    |c, line, _: &mut Server, cx| {
                        c.write(cx, &line);
                        c.write(cx, b"\n");
                        c.read_line(cx);
                    },
                    |c, e, st: &mut Server, cx| {
                        match e {
                            StreamEvent::Connected => return,

                            StreamEvent::Error(e) => {
                                st.errors.push(format!("{:#}", anyhow::Error::from(e)))
                            }
                            _ => {}
                        }
                        c.abort(cx);
                    },
                ),
            )
            .unwrap();
        s.read_line(cx);
        s.detach();
    });
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = done.clone();
    let clients = std::thread::spawn(move || {
        // The offenders first.
        let mut http = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut sink = Vec::new();
        let _ = http.read_to_end(&mut sink);
        let mut junk = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // The server may reset the connection while the junk is still being written.
        let _ = junk.write_all(&[0x16; 3]);
        let _ = junk.write_all(&(0..5000).map(|i| (i * 7) as u8).collect::<Vec<_>>());
        let _ = junk.read_to_end(&mut sink);
        // 100 well-behaved TLS clients, 10 lines each, with rustls directly.
        let threads: Vec<_> = (0..100)
            .map(|id| {
                let ccfg = ccfg.clone();
                let d = d.clone();
                std::thread::spawn(move || {
                    let name = rustls::pki_types::ServerName::try_from("server.test").unwrap();
                    let mut conn = rustls::ClientConnection::new(ccfg, name).unwrap();
                    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(30)))
                        .unwrap();
                    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
                    for r in 0..10 {
                        let line = format!("client {id} line {r}\n");
                        tls.write_all(line.as_bytes()).unwrap();
                        let mut buf = vec![0u8; line.len()];
                        tls.read_exact(&mut buf).unwrap();
                        assert_eq!(buf, line.as_bytes());
                    }
                    tls.conn.send_close_notify(); // a clean end, not a truncation
                    tls.flush().unwrap();
                    d.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    });
    let mut st = Server::default();
    let ok = ev
        .run_until(&mut st, LIMIT, |_| {
            done.load(std::sync::atomic::Ordering::SeqCst) == 100
        })
        .unwrap();
    clients.join().unwrap();
    assert!(ok);
    assert_eq!(st.errors.len(), 2, "{:?}", st.errors);
    assert!(
        st.errors.iter().all(|e| e.contains("tls")),
        "{:?}",
        st.errors
    );
}

/// Found by the `tls_input` fuzz target (its memory grew by the megabyte per second): a
/// loop dropped right after its streams' handles kept memory for good, through the removal
/// queue they had put themselves in.
#[test]
fn dropping_the_loop_right_after_its_streams_frees_them() {
    let (scfg, _) = pki("drop-loop");
    let once = || {
        let mut ev = Loop::<St>::new().unwrap();
        let (a, b) = Stream::pair(
            &mut ev,
            Options::default(),
            Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
            Fns::new(|_, _, _, _| {}, |_, _, _, _| {}),
        );
        let server = TlsAcceptor::new(scfg.clone())
            .wrap(
                &mut ev,
                b,
                &Session::default(),
                Fns::new(
                    |_, _, _: &mut St, _| {},
                    |_, e, st: &mut St, _| st.events.push(format!("{e:?}")),
                ),
            )
            .unwrap();
        server.read_chunk(&mut ev);
        a.write(&mut ev, b"not a TLS record at all");
        a.flush(&mut ev, FlushMode::Finished);
        let mut st = St::default();
        assert!(ev
            .run_until(&mut st, LIMIT, |s| !s.events.is_empty())
            .unwrap());
        drop((a, server));
        // The loop goes here, with the removals its streams queued still pending.
    };
    once();
    util::alloc::count_this_thread(true);
    let before = util::alloc::live_bytes();
    for _ in 0..200 {
        once();
    }
    let grew = util::alloc::live_bytes() - before;
    util::alloc::count_this_thread(false);
    assert!(
        grew < 64 * 1024,
        "{grew} bytes kept after 200 loops were dropped"
    );
}
