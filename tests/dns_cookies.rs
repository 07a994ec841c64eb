//! DNS cookies (RFC 7873/9018): against NSD with `answer-cookie: yes` (a server that
//! does cookies) and Unbound 1.17 (one that does not), then in-test servers that forge:
//! an answer with the right id and question but another client cookie, an answer
//! without the cookie a server that does cookies must send, and BADCOOKIE.

mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evnet::dns::proto::op::{Edns, Message, MessageType, ResponseCode};
use evnet::dns::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use evnet::dns::proto::rr::rdata::A;
use evnet::dns::proto::rr::{RData, Record};
use evnet::dns::{Answer, Error, RecordType, Resolver, ResolverOptions};
use evnet::ev::Loop;
use util::dns_fake::last_octet;
use util::nsd::Nsd;
use util::unbound::Unbound;

const LIMIT: Duration = Duration::from_secs(30);

type Log = Vec<Result<Answer, Error>>;

/// Runs lookups of `names` one after another on one resolver; their results.
fn ask_each(cfg: ResolverOptions, names: &[&str]) -> (Log, Resolver<Log>) {
    let mut ev = Loop::<Log>::new().unwrap();
    let dns = Resolver::new(&ev, cfg);
    let mut log = Log::new();
    for (i, name) in names.iter().enumerate() {
        let l = dns.query(&mut ev, name, RecordType::A, |log: &mut Log, _, r| {
            log.push(r)
        });
        assert!(ev.run_until(&mut log, LIMIT, |l| l.len() > i).unwrap());
        drop(l);
    }
    (log, dns)
}

fn options(server: SocketAddr) -> ResolverOptions {
    ResolverOptions {
        timeout: Duration::from_secs(2),
        ..ResolverOptions::with_servers(&[server])
    }
}

#[test]
fn nsd_with_cookies_answers_and_its_cookie_is_kept_and_unbound_without_them_still_answers() {
    let nsd = Nsd::start_full("cookies", "", "  answer-cookie: yes\n");
    let (got, dns) = ask_each(options(nsd.addr), &["www.example.test", "mx1.example.test"]);
    assert_eq!(last_octet(&got[0]), 1);
    assert_eq!(last_octet(&got[1]), 11);
    let s = &dns.servers()[0];
    assert!(s.cookie, "NSD sent a server cookie: {s:?}");
    assert_eq!(
        s.answered, 2,
        "both taken, the second with NSD's cookie sent back: {s:?}"
    );
    // Unbound 1.17 has no cookies and ignores the option: the answers are taken as before.
    let u = Unbound::start("cookies", &nsd, 30_000);
    let (got, dns) = ask_each(options(u.plain), &["www.example.test", "mx1.example.test"]);
    assert_eq!((last_octet(&got[0]), last_octet(&got[1])), (1, 11));
    assert!(!dns.servers()[0].cookie);
}

/// The COOKIE option of a query, if any.
fn cookie_of(m: &Message) -> Option<Vec<u8>> {
    match m.edns.as_ref()?.options().get(EdnsCode::Cookie)? {
        EdnsOption::Unknown(_, b) => Some(b.clone()),
        _ => None,
    }
}

/// An answer to `q` (A `192.0.2.<last>`) carrying `cookie` (none: no COOKIE option).
fn answer(q: &Message, last: u8, cookie: Option<Vec<u8>>, rcode: ResponseCode) -> Vec<u8> {
    let mut m = Message::new(q.metadata.id, MessageType::Response, q.metadata.op_code);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.metadata.response_code = rcode;
    let question = q.queries[0].clone();
    let name = question.name().clone();
    m.add_query(question);
    if rcode == ResponseCode::NoError {
        m.add_answer(Record::from_rdata(
            name,
            60,
            RData::A(A::new(192, 0, 2, last)),
        ));
    }
    let mut e = Edns::new();
    e.set_max_payload(1232);
    if let Some(c) = cookie {
        e.options_mut().insert(EdnsOption::Unknown(10, c));
    }
    // BADCOOKIE (23) does not fit the header's 4 bits: its high bits ride in the OPT.
    e.set_rcode_high(rcode.high());
    m.set_edns(e);
    m.to_vec().unwrap()
}

/// A UDP server that runs `reply` for each query (with its index) and sends what it
/// returns, in order; the queries it got are kept.
fn fake(
    reply: impl Fn(usize, &Message) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<Message>>>) {
    fake_on(UdpSocket::bind("127.0.0.1:0").unwrap(), reply)
}

/// A TCP listener and a UDP socket on the same loopback port.
fn same_port() -> (TcpListener, UdpSocket) {
    loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        if let Ok(u) = UdpSocket::bind(t.local_addr().unwrap()) {
            return (t, u);
        }
    }
}

/// As [`fake`], on `s`.
fn fake_on(
    s: UdpSocket,
    reply: impl Fn(usize, &Message) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<Message>>>) {
    let addr = s.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut i = 0;
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            let q = Message::from_vec(&buf[..n]).unwrap();
            seen2.lock().unwrap().push(q.clone());
            for r in reply(i, &q) {
                let _ = s.send_to(&r, from);
            }
            i += 1;
        }
    });
    (addr, seen)
}

#[test]
fn an_answer_with_another_client_cookie_is_ignored_as_forged() {
    // Each query gets a forgery first (right id and question, a wrong client cookie,
    // 192.0.2.66), then the real answer echoing the client cookie (192.0.2.1).
    let (addr, seen) = fake(|_, q| {
        let mut ours = cookie_of(q).expect("the query carries a client cookie");
        assert_eq!(ours.len(), 8, "a client cookie alone, the first time");
        let mut forged = ours.clone();
        forged[3] ^= 0x55;
        forged.extend_from_slice(&[1; 8]);
        ours.extend_from_slice(&[2; 8]);
        vec![
            answer(q, 66, Some(forged), ResponseCode::NoError),
            answer(q, 1, Some(ours), ResponseCode::NoError),
        ]
    });
    let (got, dns) = ask_each(options(addr), &["a.test"]);
    assert_eq!(last_octet(&got[0]), 1, "the forgery was not taken");
    assert!(dns.servers()[0].cookie);
    assert_eq!(seen.lock().unwrap().len(), 1);
    // With cookies off no cookie is sent, and the forgery (first to arrive) would win:
    // the check above is what stopped it.
    let (addr, _) = fake(|_, q| {
        assert!(cookie_of(q).is_none(), "cookies off: none sent");
        vec![
            answer(q, 66, Some(vec![9; 16]), ResponseCode::NoError),
            answer(q, 1, None, ResponseCode::NoError),
        ]
    });
    let cfg = ResolverOptions {
        cookies: false,
        ..options(addr)
    };
    let (got, _) = ask_each(cfg, &["a.test"]);
    assert_eq!(last_octet(&got[0]), 66);
}

#[test]
fn a_server_that_did_cookies_and_answers_without_one_is_asked_again_over_tcp() {
    // Over UDP: the first answer carries the cookies; the second comes without any
    // (what an off-path forger who cannot see our cookie would send): 192.0.2.66.
    let (tcp, udp) = same_port();
    let (addr, seen) = fake_on(udp, |i, q| {
        let mut c = cookie_of(q).unwrap();
        if i == 0 {
            c.extend_from_slice(&[3; 16]);
            vec![answer(q, 1, Some(c), ResponseCode::NoError)]
        } else {
            assert_eq!(&c[8..], &[3; 16], "the server cookie is sent back");
            vec![answer(q, 66, None, ResponseCode::NoError)]
        }
    });
    // Over TCP on the same port, the real answer: 192.0.2.2.
    std::thread::spawn(move || {
        for s in tcp.incoming() {
            let Ok(mut s) = s else { return };
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut q).is_err() {
                continue;
            }
            let q = Message::from_vec(&q).unwrap();
            let a = answer(&q, 2, None, ResponseCode::NoError);
            let mut out = (a.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&a);
            let _ = s.write_all(&out);
        }
    });
    let (got, _) = ask_each(options(addr), &["a.test", "b.test"]);
    assert_eq!(last_octet(&got[0]), 1);
    assert_eq!(
        last_octet(&got[1]),
        2,
        "asked again over TCP, not the cookieless answer"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn badcookie_is_asked_again_once_with_the_new_server_cookie() {
    let (addr, seen) = fake(|i, q| {
        let ours = cookie_of(q).unwrap();
        let mut c = ours[..8].to_vec();
        match i {
            0 => {
                c.extend_from_slice(&[4; 8]);
                vec![answer(q, 0, Some(c), ResponseCode::BADCOOKIE)]
            }
            _ => {
                c.extend_from_slice(&[5; 8]);
                vec![answer(q, 1, Some(c), ResponseCode::NoError)]
            }
        }
    });
    let (got, _) = ask_each(options(addr), &["a.test"]);
    assert_eq!(last_octet(&got[0]), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "asked once more");
    assert_eq!(
        &cookie_of(&seen[1]).unwrap()[8..],
        &[4; 8],
        "with the new server cookie"
    );
    // A server that answers BADCOOKIE every time: once more, then the next server.
    let (addr, seen) = fake(|_, q| {
        let mut c = cookie_of(q).unwrap()[..8].to_vec();
        c.extend_from_slice(&[6; 8]);
        vec![answer(q, 0, Some(c), ResponseCode::BADCOOKIE)]
    });
    let cfg = ResolverOptions {
        attempts: 1,
        ..options(addr)
    };
    let (got, _) = ask_each(cfg, &["a.test"]);
    assert!(got[0].is_err(), "{:?}", got[0]);
    assert_eq!(seen.lock().unwrap().len(), 2);
}
