//! `socket` against real loopback sockets: dual-stack binds, Unix listeners, accept
//! batches, connect fallback, timeout and name resolution.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use evnet::ev::{Ctx, Loop};
use evnet::pool::Pool;
use evnet::socket::{
    bind_tcp, bind_tcp_all, bind_unix, connect, Accept, ConnectOptions, Endpoint, Listener,
    NoLookup, Target,
};

fn port_of(s: &socket2::Socket) -> SocketAddr {
    s.local_addr().unwrap().as_socket().unwrap()
}

#[test]
fn wildcard_binds_v4_and_v6_on_the_same_port_with_v6only() {
    let socks = bind_tcp_all(None, 0).expect("both binds succeed: IPV6_V6ONLY is set");
    assert_eq!(socks.len(), 2);
    let (a, b) = (port_of(&socks[0]), port_of(&socks[1]));
    assert!(a.is_ipv4() && b.is_ipv6());
    assert_eq!(a.port(), b.port(), "one port for both families");
    assert!(socks[1].only_v6().unwrap());

    // Each family reaches its own listener.
    let mut ev = Loop::<Vec<bool>>::new().unwrap();
    let _l = Listener::new(&mut ev, socks, |seen: &mut Vec<bool>, _cx, a| {
        if let Accept::Conn(c) = a {
            seen.push(c.peer.as_socket().unwrap().is_ipv6());
        }
    });
    let _c4 = TcpStream::connect(("127.0.0.1", a.port())).unwrap();
    let _c6 = TcpStream::connect(("::1", a.port())).unwrap();
    let mut seen = Vec::new();
    ev.run_until(&mut seen, Duration::from_secs(5), |s| s.len() == 2)
        .unwrap();
    seen.sort();
    assert_eq!(seen, [false, true]);
}

#[test]
fn without_v6only_the_second_bind_would_collide() {
    // The seed article's bug, shown with plain socket2: a dual-stack [::] socket takes the
    // IPv4 port too. This is what `bind_tcp_all` avoids.
    use socket2::{Domain, Socket, Type};
    let v4 = bind_tcp("0.0.0.0:0".parse().unwrap(), 16).unwrap();
    let port = port_of(&v4).port();
    let s = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
    s.set_only_v6(false).unwrap();
    s.set_reuse_address(true).unwrap();
    let addr: SocketAddr = format!("[::]:{port}").parse().unwrap();
    let r = s.bind(&addr.into()).and_then(|()| s.listen(16));
    assert_eq!(r.unwrap_err().kind(), io::ErrorKind::AddrInUse);
    // And with V6ONLY it works.
    assert!(bind_tcp(addr, 16).is_ok());
}

#[test]
fn unix_listener_removes_only_stale_sockets() {
    let path = std::env::temp_dir().join(format!("evnet-unix-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let live = bind_unix(&path, false).unwrap();
    // A live server's socket is never removed.
    assert_eq!(
        bind_unix(&path, true).unwrap_err().kind(),
        io::ErrorKind::AddrInUse
    );
    drop(live); // the file stays behind: stale now
    assert_eq!(
        bind_unix(&path, false).unwrap_err().kind(),
        io::ErrorKind::AddrInUse,
        "not removed unless asked"
    );
    let l = bind_unix(&path, true).expect("stale socket removed on request");

    let mut ev = Loop::<usize>::new().unwrap();
    let _l = Listener::new(&mut ev, vec![l], |n: &mut usize, _cx, a| {
        if let Accept::Conn(_) = a {
            *n += 1;
        }
    });
    let _c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let mut n = 0;
    ev.run_until(&mut n, Duration::from_secs(5), |n| *n == 1)
        .unwrap();
    assert_eq!(n, 1);
    // A regular file is never removed.
    let file = std::env::temp_dir().join(format!("evnet-file-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    assert!(bind_unix(&file, true).is_err());
    assert!(file.exists());
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_connection_storm_is_accepted_in_bounded_batches() {
    const N: usize = 200;
    const BATCH: usize = 8;
    struct St {
        accepted: usize,
        this_turn: usize,
        max_per_turn: usize,
        conns: Vec<socket2::Socket>,
    }
    let socks = bind_tcp_all(Some("127.0.0.1"), 0).unwrap();
    let addr = port_of(&socks[0]);
    let clients: Vec<TcpStream> = (0..N).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut ev = Loop::<St>::new().unwrap();
    let _l = Listener::with_batch(&mut ev, socks, BATCH, |st: &mut St, _cx, a| {
        if let Accept::Conn(c) = a {
            st.accepted += 1;
            st.this_turn += 1;
            st.max_per_turn = st.max_per_turn.max(st.this_turn);
            st.conns.push(c.socket);
        }
    });
    ev.prepare(|st, _cx, _| st.this_turn = 0);
    let mut st = St {
        accepted: 0,
        this_turn: 0,
        max_per_turn: 0,
        conns: Vec::new(),
    };
    ev.run_until(&mut st, Duration::from_secs(10), |s| s.accepted == N)
        .unwrap();
    assert_eq!(st.accepted, N);
    assert!(st.max_per_turn <= BATCH, "{} in one turn", st.max_per_turn);
    assert!(st.conns.iter().all(|s| s.nonblocking().unwrap()));
    drop(clients);
}

type Out = Option<io::Result<Endpoint>>;

fn connect_and_wait(eps: Vec<Endpoint>, opts: ConnectOptions) -> io::Result<Endpoint> {
    let mut ev = Loop::<Out>::new().unwrap();
    connect(&mut ev, &NoLookup, eps, opts, |out: &mut Out, _cx, r| {
        *out = Some(r.map(|c| c.peer))
    })
    .detach();
    let mut out = None;
    ev.run_until(&mut out, Duration::from_secs(10), |o| o.is_some())
        .unwrap();
    out.expect("connect finished")
}

#[test]
fn connect_falls_back_past_refusing_addresses_and_reports_the_last_error() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let good = server.local_addr().unwrap();
    let refused_v4 = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused_v6 = std::net::TcpListener::bind("[::1]:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let missing_unix = Endpoint::Unix(std::env::temp_dir().join("evnet-nobody-here.sock"));
    let peer = connect_and_wait(
        vec![
            Endpoint::from(refused_v6),
            missing_unix.clone(),
            Endpoint::from(refused_v4),
            Endpoint::from(good),
        ],
        ConnectOptions::default(),
    )
    .unwrap();
    assert_eq!(peer, Endpoint::Inet(good));

    let err = connect_and_wait(
        vec![Endpoint::from(refused_v4), missing_unix],
        ConnectOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("connect"), "{err}");
    let err = connect_and_wait(vec![], ConnectOptions::default()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn connect_to_a_unix_path() {
    let path = std::env::temp_dir().join(format!("evnet-conn-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let peer = connect_and_wait(
        vec![Endpoint::Unix(path.clone())],
        ConnectOptions::default(),
    );
    assert_eq!(peer.unwrap(), Endpoint::Unix(path.clone()));
    let _ = std::fs::remove_file(&path);
}

/// A listener that never accepts, with its accept queue filled: the kernel drops further
/// SYNs, so a connect to it neither succeeds nor fails. Keep all three alive.
fn hanging_listener() -> (socket2::Socket, SocketAddr, Vec<socket2::Socket>) {
    let l = bind_tcp("127.0.0.1:0".parse().unwrap(), 0).unwrap();
    let addr = port_of(&l);
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    // Full once a filler's handshake completed (listen(0) queues one connection).
    let t0 = std::time::Instant::now();
    while !fillers.iter().any(|f| f.peer_addr().is_ok()) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no filler connected"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    (l, addr, fillers)
}

/// Sockets of this process's network namespace in SYN_SENT towards `to`, but for those
/// bound to `except` (`/proc/net/tcp`).
fn syn_sent_to(to: SocketAddr, except: &[SocketAddr]) -> usize {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    };
    let (want, skip): (String, Vec<String>) = (hex(to), except.iter().map(|a| hex(*a)).collect());
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(3) == Some(&"02")
                && f.get(2) == Some(&want.as_str())
                && !skip.iter().any(|s| f.get(1) == Some(&s.as_str()))
        })
        .count()
}

#[test]
fn connect_times_out_on_a_full_accept_queue() {
    // A listener that never accepts, its backlog filled: the kernel drops further SYNs, so
    // a connect neither succeeds nor fails, on loopback.
    let (_l, addr, _fillers) = hanging_listener();
    let opts = ConnectOptions {
        timeout: Some(Duration::from_millis(300)),
        ..ConnectOptions::default()
    };
    let err = connect_and_wait(vec![Endpoint::from(addr)], opts).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut);
}

#[test]
fn dropping_a_connect_handle_cancels_it() {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut ev = Loop::<Out>::new().unwrap();
    let h = connect(
        &mut ev,
        &NoLookup,
        vec![Endpoint::from(server.local_addr().unwrap())],
        ConnectOptions::default(),
        |out: &mut Out, _cx, r| *out = Some(r.map(|c| c.peer)),
    );
    drop(h);
    let mut out = None;
    // `run` returns: the cancelled attempt's watchers are removed on the next turn.
    ev.run(&mut out).unwrap();
    assert!(out.is_none(), "on_done never ran");
}

#[test]
fn connect_by_host_name_resolves_on_the_pool() {
    struct St {
        pool: Pool<St>,
        out: Out,
    }
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut ev = Loop::<St>::new().unwrap();
    let pool = Pool::new(&mut ev).unwrap();
    let h = connect(
        &mut ev,
        &pool,
        Target::host("localhost", port),
        ConnectOptions::default(),
        |st: &mut St, _cx: &mut Ctx<St>, r| st.out = Some(r.map(|c| c.peer)),
    );
    let mut st = St { pool, out: None };
    ev.run_until(&mut st, Duration::from_secs(10), |s| s.out.is_some())
        .unwrap();
    drop(h);
    match st.out.unwrap().unwrap() {
        Endpoint::Inet(a) => assert!(a.ip().is_loopback() && a.port() == port),
        other => panic!("{other:?}"),
    }
    // A name that does not resolve is an error for this connect alone.
    let h = connect(
        &mut ev,
        &st.pool,
        Target::host("no-such-host.invalid", port),
        ConnectOptions::default(),
        |st: &mut St, _cx: &mut Ctx<St>, r| st.out = Some(r.map(|c| c.peer)),
    );
    st.out = None;
    ev.run_until(&mut st, Duration::from_secs(20), |s| s.out.is_some())
        .unwrap();
    drop(h);
    assert!(st.out.unwrap().is_err());
}

#[test]
fn a_hanging_first_address_is_overtaken_after_the_stagger_and_closed() {
    // The first address never answers (a full accept queue); the second does. The second
    // attempt starts one stagger after the first, wins, and the first is closed.
    let (_hang, hang_addr, fillers) = hanging_listener();
    let fillers_at: Vec<SocketAddr> = fillers
        .iter()
        .map(|f| f.local_addr().unwrap().as_socket().unwrap())
        .collect();
    let good = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let opts = ConnectOptions {
        stagger: Duration::from_millis(100),
        timeout: Some(Duration::from_secs(5)),
    };
    let t = std::time::Instant::now();
    let mut ev = Loop::<Out>::new().unwrap();
    connect(
        &mut ev,
        &NoLookup,
        vec![
            Endpoint::from(hang_addr),
            Endpoint::from(good.local_addr().unwrap()),
        ],
        opts,
        |out: &mut Out, _cx, r| *out = Some(r.map(|c| c.peer)),
    )
    .detach();
    // The first attempt is out, hanging.
    let mut out = None;
    assert!(ev
        .run_until(&mut out, Duration::from_secs(10), |o| {
            o.is_some() || syn_sent_to(hang_addr, &fillers_at) == 1
        })
        .unwrap());
    assert!(ev
        .run_until(&mut out, Duration::from_secs(10), |o| o.is_some())
        .unwrap());
    let took = t.elapsed();
    assert_eq!(
        out.take().unwrap().unwrap(),
        Endpoint::Inet(good.local_addr().unwrap())
    );
    // Not before the stagger (the second attempt waited for it), well before the timeout.
    assert!(took >= Duration::from_millis(100), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // And the loser is closed, with the loop still running.
    ev.run_nowait(&mut out).unwrap();
    assert_eq!(
        syn_sent_to(hang_addr, &fillers_at),
        0,
        "the first attempt is still out"
    );
}

#[test]
fn a_resolver_without_srv_or_mx_refuses_those_targets_and_no_lookup_refuses_names() {
    struct St {
        out: Vec<io::ErrorKind>,
    }
    let mut ev = Loop::<St>::new().unwrap();
    let pool = Pool::new(&mut ev).unwrap();
    let record = |st: &mut St, _cx: &mut Ctx<St>, r: io::Result<evnet::socket::Connected>| {
        st.out.push(r.map(|_| ()).unwrap_err().kind())
    };
    let targets = [
        Target::service("echo", "tcp", "example.test"),
        Target::mail("example.test"),
    ];
    let mut handles = Vec::new();
    for t in targets {
        handles.push(connect(
            &mut ev,
            &pool,
            t,
            ConnectOptions::default(),
            record,
        ));
    }
    handles.push(connect(
        &mut ev,
        &NoLookup,
        Target::host("localhost", 1),
        ConnectOptions::default(),
        record,
    ));
    let mut st = St { out: Vec::new() };
    ev.run_until(&mut st, Duration::from_secs(10), |s| s.out.len() == 3)
        .unwrap();
    assert_eq!(
        st.out,
        [
            io::ErrorKind::Unsupported,
            io::ErrorKind::Unsupported,
            io::ErrorKind::InvalidInput
        ]
    );
}
