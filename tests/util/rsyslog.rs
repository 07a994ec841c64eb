//! rsyslogd, a real syslog daemon at its default settings, started by the tests with a
//! Unix datagram socket of its own (imuxsock, as `/dev/log` is) and a TCP port (imtcp,
//! RFC 6587), writing each message's text to a file; stopped when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Rsyslog {
    child: Child,
    /// imuxsock's socket.
    pub socket: PathBuf,
    /// imtcp's address.
    pub tcp: SocketAddr,
    pub dir: PathBuf,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Rsyslog {
    pub fn start(tag: &str) -> Rsyslog {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Rsyslog::start_at(&super::pki::temp_dir(&format!("rsyslog-{tag}")), port)
    }

    /// As [`start`](Rsyslog::start), its socket and files in `dir`, imtcp on `port`.
    pub fn start_at(dir: &std::path::Path, port: u16) -> Rsyslog {
        let dir = dir.to_path_buf();
        let d = dir.display();
        let conf = format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{d}/log.sock\")\n\
             module(load=\"imtcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             template(name=\"text\" type=\"string\" string=\"%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{d}/out.log\" template=\"text\")\n"
        );
        let child = spawn(&dir, &conf);
        let r = Rsyslog {
            child,
            socket: dir.join("log.sock"),
            tcp: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let t0 = Instant::now();
        while !(r.socket.exists() && std::net::TcpStream::connect(r.tcp).is_ok()) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "rsyslogd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// rsyslogd as a sender: what arrives at its socket (`socket`) goes to `target` over
    /// TLS with its `ossl` stream driver (RFC 5425, octet-counted), presenting `cert` and
    /// `key`, requiring the server to prove `name` with a certificate from `ca`.
    pub fn tls_sender(
        dir: &std::path::Path,
        target: SocketAddr,
        name: &str,
        ca: &std::path::Path,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Rsyslog {
        super::provision::file(
            "/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so",
            "rsyslog-openssl",
            "rsyslog's OpenSSL stream driver",
        );
        let d = dir.display();
        let conf = format!(
            "global(workDirectory=\"{d}\" DefaultNetstreamDriver=\"ossl\"\n\
             DefaultNetstreamDriverCAFile=\"{}\" DefaultNetstreamDriverCertFile=\"{}\"\n\
             DefaultNetstreamDriverKeyFile=\"{}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{d}/log.sock\")\n\
             action(type=\"omfwd\" target=\"{}\" port=\"{}\" protocol=\"tcp\"\n\
               StreamDriver=\"ossl\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\"\n\
               StreamDriverPermittedPeers=\"{name}\" TCP_Framing=\"octet-counted\")\n",
            ca.display(),
            cert.display(),
            key.display(),
            target.ip(),
            target.port()
        );
        let child = spawn(dir, &conf);
        let r = Rsyslog {
            child,
            socket: dir.join("log.sock"),
            tcp: target,
            dir: dir.to_path_buf(),
        };
        let t0 = Instant::now();
        while !r.socket.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "rsyslogd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// The messages' texts written so far, in order, trimmed. imuxsock parses a local
    /// sender's `<PRI>TIMESTAMP TAG: MSG` only, so a forwarded RFC 5424 line keeps its
    /// header in the text: compare the ends.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("out.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_owned())
            .collect()
    }
}

/// rsyslogd in the foreground with `conf`, its files in `dir`.
fn spawn(dir: &std::path::Path, conf: &str) -> Child {
    let conf_path = dir.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).unwrap();
    Command::new(super::provision::tool("rsyslogd"))
        .arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
