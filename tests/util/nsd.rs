//! NSD, a real authoritative DNS server (`.ci/run` installs it), started on a loopback port
//! with the tests' own zones, stopped when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nsd {
    child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const EXAMPLE: &str = r#"$ORIGIN example.test.
$TTL 300
@        IN SOA ns1.example.test. admin.example.test. 2026112601 3600 600 86400 60
@        IN NS  ns1.example.test.
@        IN MX  20 mx2.example.test.
@        IN MX  10 mx1.example.test.
@        IN MX  30 mx3.example.test.
ns1      IN A   127.0.0.1
www      IN A   192.0.2.1
www      IN AAAA 2001:db8::1
mx1      IN A   192.0.2.11
mx2      IN A   192.0.2.12
mx2      IN AAAA 2001:db8::12
mx3      IN AAAA 2001:db8::13
c1       IN CNAME c2
c2       IN CNAME c3
c3       IN CNAME www
loop1    IN CNAME loop2
loop2    IN CNAME loop1
dangling IN CNAME nowhere.example.test.
nomail   IN MX  0 .
_sip._tcp        IN SRV 10 60 5060 sip1.example.test.
_sip._tcp        IN SRV 10 20 5060 sip2.example.test.
_sip._tcp        IN SRV 10 0  5060 sip3.example.test.
_sip._tcp        IN SRV 20 0  5061 backup.example.test.
_none._tcp       IN SRV 0 0 0 .
sip1     IN A   192.0.2.21
sip2     IN A   192.0.2.22
sip2     IN AAAA 2001:db8::22
sip3     IN A   192.0.2.23
backup   IN A   192.0.2.29
*.wild   IN A   192.0.2.99
*.srv    IN SRV 10 60 5060 sip1.example.test.
*.srv    IN SRV 20 0  5061 backup.example.test.
info     IN HINFO "x86 64" "Linux"
caa      IN CAA 0 issue "ca.example.net"
naptr    IN NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp.example.test.
ssh      IN SSHFP 1 1 123456789abcdef67890123456789abcdef67890
tlsa     IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
esc      IN TXT "quote \" and backslash \\" "tab\009bell\007" "utf8 \195\169" ""
unk      IN TYPE65534 \# 4 0A000001
"#;

const REV4: &str = r#"$ORIGIN 2.0.192.in-addr.arpa.
$TTL 300
@  IN SOA ns1.example.test. admin.example.test. 1 3600 600 86400 60
@  IN NS  ns1.example.test.
1  IN PTR www.example.test.
"#;

const REV6: &str = r#"$ORIGIN 8.b.d.0.1.0.0.2.ip6.arpa.
$TTL 300
@  IN SOA ns1.example.test. admin.example.test. 1 3600 600 86400 60
@  IN NS  ns1.example.test.
1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 IN PTR www.example.test.
"#;

/// Every record type in the tests' zones, each with a name that has records of it (the
/// CNAME chain's start for A too, and the null MX), as `dig` names the types.
pub const EVERY_TYPE: &[(&str, &str)] = &[
    ("A", "www.example.test"),
    ("AAAA", "www.example.test"),
    ("A", "c1.example.test"),
    ("CNAME", "c1.example.test"),
    ("NS", "example.test"),
    ("MX", "example.test"),
    ("MX", "nomail.example.test"),
    ("SOA", "example.test"),
    ("SRV", "_sip._tcp.example.test"),
    ("SRV", "x.srv.example.test"),
    ("TXT", "small.example.test"),
    ("TXT", "esc.example.test"),
    ("TXT", "big.example.test"),
    ("HINFO", "info.example.test"),
    ("CAA", "caa.example.test"),
    ("NAPTR", "naptr.example.test"),
    ("SSHFP", "ssh.example.test"),
    ("TLSA", "tlsa.example.test"),
    ("TYPE65534", "unk.example.test"),
    ("PTR", "1.2.0.192.in-addr.arpa"),
];

/// A TXT record of `n` strings of 200 bytes (too big for a 1232-byte UDP answer when n
/// is large enough: the server sets TC and the resolver must go to TCP).
fn big_txt(n: usize) -> String {
    let strings: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "\"{}\"",
                char::from(b'a' + (i % 26) as u8).to_string().repeat(200)
            )
        })
        .collect();
    format!(
        "big      IN TXT {}\nsmall    IN TXT \"v=spf1 -all\" \"second string\"\n",
        strings.join(" ")
    )
}

/// A loopback port free for both TCP and UDP at the time of asking.
pub fn free_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Nsd {
    pub fn start(tag: &str) -> Nsd {
        Nsd::start_with(tag, "")
    }

    /// As [`start`](Nsd::start), with `extra` records in example.test's zone.
    pub fn start_with(tag: &str, extra: &str) -> Nsd {
        Nsd::start_full(tag, extra, "")
    }

    /// As [`start_with`](Nsd::start_with), with `server` lines (indented) in its `server:`
    /// clause.
    pub fn start_full(tag: &str, extra: &str, server: &str) -> Nsd {
        let dir = super::pki::temp_dir(&format!("nsd-{tag}"));
        let port = free_port();
        std::fs::write(
            dir.join("example.test.zone"),
            format!("{EXAMPLE}{}{extra}", big_txt(12)),
        )
        .unwrap();
        std::fs::write(dir.join("rev4.zone"), REV4).unwrap();
        std::fs::write(dir.join("rev6.zone"), REV6).unwrap();
        let d = dir.display();
        let conf = format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  do-ip6: no\n  username: \"\"\n  \
             chroot: \"\"\n  zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  \
             zonelistfile: \"{d}/zone.list\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  \
             logfile: \"{d}/nsd.log\"\n  verbosity: 1\n  server-count: 1\n  \
             rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n{server}\
             remote-control:\n  control-enable: no\n\
             zone:\n  name: example.test\n  zonefile: example.test.zone\n\
             zone:\n  name: 2.0.192.in-addr.arpa\n  zonefile: rev4.zone\n\
             zone:\n  name: 8.b.d.0.1.0.0.2.ip6.arpa\n  zonefile: rev6.zone\n"
        );
        let conf_path = dir.join("nsd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let nsd = super::provision::tool("nsd");
        let child = Command::new(nsd)
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let n = Nsd { child, addr, dir };
        n.wait_ready();
        n
    }

    /// Waits until it answers the SOA query of example.test.
    fn wait_ready(&self) {
        if !answers_soa(self.addr, || true) {
            let log = std::fs::read_to_string(self.dir.join("nsd.log")).unwrap_or_default();
            panic!("nsd did not answer: {log}");
        }
    }
}

/// Whether the server at `addr` answers the SOA query of example.test with NOERROR (and
/// `also` holds) within 20 s, asking every 100 ms.
pub fn answers_soa(addr: SocketAddr, also: impl Fn() -> bool) -> bool {
    let q = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 4,
        b't', b'e', b's', b't', 0, 0, 6, 0, 1,
    ];
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        let _ = s.send_to(&q, addr);
        let mut buf = [0u8; 512];
        if let Ok(n) = s.recv(&mut buf) {
            if n > 12 && buf[3] & 0x0f == 0 && also() {
                return true;
            }
        }
    }
    false
}
