//! Unbound, a real recursive resolver that also serves DNS over TLS (RFC 7858), started on
//! loopback ports in front of an [`Nsd`] (stub zones for the tests' zones), with a
//! certificate the tests make; stopped when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::nsd::{free_port, Nsd};
use super::pki::{Ca, Leaf};

pub struct Unbound {
    child: Child,
    /// Its plain port (UDP and TCP).
    pub plain: SocketAddr,
    /// Its DNS-over-TLS port.
    pub tls: SocketAddr,
    /// The CA that signed its certificate, and the certificate (for `name`).
    pub ca: Ca,
    pub leaf: Leaf,
    pub name: &'static str,
    pub dir: PathBuf,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Unbound {
    /// Unbound in front of `nsd`, its TLS certificate for `dns.example.test` signed by a
    /// CA of its own; `idle_ms` is its TCP/TLS idle timeout.
    pub fn start(tag: &str, nsd: &Nsd, idle_ms: u64) -> Unbound {
        Unbound::start_with(tag, nsd, idle_ms, "")
    }

    /// As [`start`](Unbound::start), with `extra` lines (indented) in its `server:` clause.
    pub fn start_with(tag: &str, nsd: &Nsd, idle_ms: u64, extra: &str) -> Unbound {
        let dir = super::pki::temp_dir(&format!("unbound-{tag}"));
        let name = "dns.example.test";
        let ca = Ca::new(&dir, "evnet unbound test", "unbound test CA");
        let leaf = ca.leaf(&dir, name, &[name], false);
        let (plain, tls) = (free_port(), free_port());
        let d = dir.display();
        let stub = |zone: &str| {
            format!(
                "stub-zone:\n  name: \"{zone}\"\n  stub-addr: {}@{}\n",
                nsd.addr.ip(),
                nsd.addr.port()
            )
        };
        let conf = format!(
            "server:\n  interface: 127.0.0.1@{plain}\n  interface: 127.0.0.1@{tls}\n  \
             tls-port: {tls}\n  port: {plain}\n  tls-service-key: \"{key}\"\n  \
             tls-service-pem: \"{cert}\"\n  do-ip6: no\n  username: \"\"\n  chroot: \"\"\n  \
             directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  logfile: \"{d}/unbound.log\"\n  \
             use-syslog: no\n  verbosity: 1\n  num-threads: 1\n  \
             access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  \
             module-config: \"iterator\"\n  qname-minimisation: no\n  \
             local-zone: \"test.\" nodefault\n  \
             local-zone: \"2.0.192.in-addr.arpa.\" nodefault\n  \
             local-zone: \"8.b.d.0.1.0.0.2.ip6.arpa.\" nodefault\n  \
             incoming-num-tcp: 64\n  tcp-idle-timeout: {idle_ms}\n  \
             ratelimit: 0\n  ip-ratelimit: 0\n  rrset-roundrobin: no\n{extra}\
             remote-control:\n  control-enable: no\n{}{}{}",
            stub("example.test"),
            stub("2.0.192.in-addr.arpa"),
            stub("8.b.d.0.1.0.0.2.ip6.arpa"),
            key = leaf.key.display(),
            cert = leaf.cert.display(),
        );
        let conf_path = dir.join("unbound.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let unbound = super::provision::tool("unbound");
        let child = Command::new(unbound)
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let u = Unbound {
            child,
            plain: SocketAddr::from(([127, 0, 0, 1], plain)),
            tls: SocketAddr::from(([127, 0, 0, 1], tls)),
            ca,
            leaf,
            name,
            dir,
        };
        u.wait_ready();
        u
    }

    /// Waits until it answers the SOA query of example.test (from NSD, over its plain
    /// port) and takes TCP on its TLS port.
    fn wait_ready(&self) {
        let tls = self.tls;
        if !super::nsd::answers_soa(self.plain, || std::net::TcpStream::connect(tls).is_ok()) {
            let log = std::fs::read_to_string(self.dir.join("unbound.log")).unwrap_or_default();
            panic!("unbound did not answer: {log}");
        }
    }
}
