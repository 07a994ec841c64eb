//! The relay examples as real processes, for the relay's tests: a process with its stderr
//! collected, a UDP sink, the certificates, the server and client command lines, and
//! util-linux `logger` as the syslog sender.

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::example;
use super::pki::{temp_dir, Ca, Leaf};

pub const LIMIT: Duration = Duration::from_secs(60);

pub type Lines = Arc<Mutex<Vec<String>>>;

/// A running example: its stderr lines collected, killed when dropped.
pub struct Proc {
    pub child: Child,
    pub log: Lines,
}

impl Proc {
    /// Starts `name` and returns it with the first line it printed on stdout.
    pub fn start(name: &str, args: &[String]) -> (Proc, String) {
        let mut child = Command::new(example(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {e} (cargo test builds the examples)"));
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let log: Lines = Arc::default();
        let sink = log.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        (Proc { child, log }, first)
    }

    pub fn count(&self, what: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    }

    pub fn wait_log(&self, what: &str, n: usize) {
        let ok = wait(|| self.count(what) >= n);
        assert!(ok, "no {n}× {what:?} in {:#?}", self.log.lock().unwrap());
    }

    /// SIGTERM, then the exit status within 20 s.
    pub fn terminate(self) -> std::process::ExitStatus {
        self.sigterm();
        self.exit_status()
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends signal `name` (`TERM`, `USR1`, ...) with kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        Command::new(super::provision::tool("kill"))
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
    }

    /// The stderr lines that contain `what`.
    pub fn lines_with(&self, what: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(what)).cloned().collect()
    }

    /// The exit status within 20 s.
    pub fn exit_status(mut self) -> std::process::ExitStatus {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "no exit within 20 s of SIGTERM: {:#?}",
            self.log.lock().unwrap()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait(mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < LIMIT {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// A UDP sink collecting datagrams.
pub struct Sink {
    pub addr: String,
    pub got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Sink {
    pub fn new() -> Sink {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Room for bursts while this thread waits for a CPU (up to net.core.rmem_max).
        let _ = socket2::SockRef::from(&s).set_recv_buffer_size(8 << 20);
        let addr = s.local_addr().unwrap().to_string();
        let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let g = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0; 70_000];
            while let Ok(n) = s.recv(&mut buf) {
                g.lock().unwrap().push(buf[..n].to_vec());
            }
        });
        Sink { addr, got }
    }

    pub fn len(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.got.lock().unwrap())
    }
}

pub struct Pki {
    pub dir: std::path::PathBuf,
    pub ca: Ca,
    pub server: Leaf,
    pub clients: Vec<Leaf>,
    pub stranger: Leaf,
}

pub fn pki() -> Pki {
    let dir = temp_dir("relay");
    let ca = Ca::new(&dir, "Example", "Example CA");
    let other = Ca::new(&dir, "Elsewhere", "Other CA");
    let server = ca.leaf(&dir, "relay", &["relay.test"], false);
    let clients = (1..=3)
        .map(|i| ca.leaf(&dir, &format!("client {i}"), &[], false))
        .collect();
    let stranger = other.leaf(&dir, "stranger", &[], false);
    Pki {
        dir,
        ca,
        server,
        clients,
        stranger,
    }
}

pub fn s(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn server(p: &Pki, listen: &str, extra: &[&str]) -> (Proc, String, String) {
    let mut args = vec![
        "--syslog".into(),
        "127.0.0.1:0".into(),
        "--listen".into(),
        listen.into(),
        "--cert".into(),
        s(&p.server.cert),
        "--key".into(),
        s(&p.server.key),
        "--ca".into(),
        s(&p.ca.pem),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let (proc_, first) = Proc::start("syslog_relay_server", &args);
    // "listening: syslog udp 127.0.0.1:P, tls 127.0.0.1:Q"
    let udp = first
        .split("udp ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    let tls = first.split("tls ").nth(1).unwrap().trim().to_owned();
    (proc_, udp, tls)
}

pub fn client(p: &Pki, who: &Leaf, tls: &str, sink: &Sink) -> Proc {
    client_with(p, who, tls, sink, &[])
}

pub fn client_with(p: &Pki, who: &Leaf, tls: &str, sink: &Sink, extra: &[&str]) -> Proc {
    client_to(p, who, tls, &sink.addr, extra)
}

/// A relay client forwarding to `forward` (any `--forward` form).
pub fn client_to(p: &Pki, who: &Leaf, tls: &str, forward: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--server".into(),
        tls.into(),
        "--servername".into(),
        "relay.test".into(),
        "--cert".into(),
        s(&who.cert),
        "--key".into(),
        s(&who.key),
        "--ca".into(),
        s(&p.ca.pem),
        "--forward".into(),
        forward.into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Proc::start("syslog_relay_client", &args).0
}

/// Sends `lines` through util-linux `logger` over UDP, paced so that the kernel's UDP
/// buffers (not the relay) never drop one.
pub fn logger(udp: &str, lines: &[String]) {
    let (host, port) = udp.rsplit_once(':').unwrap();
    let mut child = Command::new(super::provision::tool("logger"))
        .args(["--udp", "-n", host, "-P", port, "-t", "relaytest"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("logger (util-linux; CI installs it)");
    let stdin = child.stdin.as_mut().unwrap();
    for chunk in lines.chunks(50) {
        for l in chunk {
            writeln!(stdin, "{l}").unwrap();
        }
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}
