//! `openssl s_server` and `openssl s_client` as test peers: started with their output
//! collected, their protocol messages (`-msg`) in a file, killed when dropped.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the openssl process reads as its stdin (what it sends to its peer).
pub enum Input {
    /// A file: sent, then (at its end) s_server closes with close_notify and s_client too
    /// when run with `-no_ign_eof`.
    File(PathBuf),
    /// A pipe kept open while the process lives: it sends nothing and stays up.
    Held,
}

/// A running openssl, killed when dropped.
pub struct Openssl {
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    msgs: PathBuf,
    err: PathBuf,
}

impl Openssl {
    /// `openssl <mode> <args> -msg -msgfile <dir>/<tag>.msg`, stdout collected.
    pub fn spawn(dir: &Path, tag: &str, mode: &str, args: &[String], input: Input) -> Openssl {
        let msgs = dir.join(format!("{tag}.msg"));
        let err = dir.join(format!("{tag}.err"));
        let stdin = match input {
            Input::File(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            Input::Held => Stdio::piped(),
        };
        let mut child = Command::new(super::provision::tool("openssl"))
            .arg(mode)
            .args(args)
            .arg("-msg")
            .arg("-msgfile")
            .arg(&msgs)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&err).unwrap()))
            .spawn()
            .expect("openssl (CI installs it)");
        let mut stdout = child.stdout.take().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&out);
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Openssl {
            child,
            out,
            reader: Some(reader),
            msgs,
            err,
        }
    }

    /// `s_server -quiet -naccept 1` on a free loopback port, once it listens.
    pub fn server(dir: &Path, tag: &str, args: &[String], input: Input) -> (Openssl, u16) {
        for _ in 0..20 {
            let port = free_port();
            let mut all: Vec<String> = ["-quiet", "-naccept", "1", "-accept"]
                .map(String::from)
                .to_vec();
            all.push(format!("127.0.0.1:{port}"));
            all.extend_from_slice(args);
            let input = match &input {
                Input::File(p) => Input::File(p.clone()),
                Input::Held => Input::Held,
            };
            let mut s = Openssl::spawn(dir, tag, "s_server", &all, input);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if listening(port) {
                    return (s, port);
                }
                if s.exited().is_some() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            s.kill();
        }
        panic!("openssl s_server never listened");
    }

    /// `s_client -connect 127.0.0.1:<port> <args>`.
    pub fn client(dir: &Path, tag: &str, port: u16, args: &[String], input: Input) -> Openssl {
        let mut all = vec!["-connect".to_owned(), format!("127.0.0.1:{port}")];
        all.extend_from_slice(args);
        Openssl::spawn(dir, tag, "s_client", &all, input)
    }

    /// Its exit status, once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Everything it wrote to stdout (what its peer sent), once it has exited.
    pub fn output(&mut self) -> Vec<u8> {
        if let Some(t) = self.reader.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.out.lock().unwrap())
    }

    /// How many bytes it has written to stdout so far.
    pub fn seen(&self) -> usize {
        self.out.lock().unwrap().len()
    }

    /// Writes `data` to its stdin (an [`Input::Held`] pipe): it sends them to its peer.
    pub fn send(&mut self, data: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("Input::Held");
        stdin.write_all(data).unwrap();
        stdin.flush().unwrap();
    }

    /// Its `-msg` trace: one line per record, `<<<` received and `>>>` sent.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(&self.msgs).unwrap_or_default()
    }

    /// What it wrote to stderr.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Whether its trace shows a close_notify received from the peer.
    pub fn got_close_notify(&self) -> bool {
        self.messages()
            .lines()
            .any(|l| l.starts_with("<<<") && l.contains("close_notify"))
    }

    /// Writes `data` to its stdin from a thread, then closes stdin: it sends them, and at
    /// their end s_server closes with close_notify. (A file given as stdin from the start
    /// races s_server's handshake: when the first `select` finds both stdin and the socket
    /// readable, the handshake runs inside `SSL_write`, and the `SSL_read` that follows
    /// blocks forever on the socket's stale readability.)
    pub fn feed(&mut self, data: Vec<u8>) {
        let mut stdin = self.child.stdin.take().expect("Input::Held");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }

    /// Where the process is (for a failure message): its state and the syscall it sits in.
    pub fn whereabouts(&self) -> String {
        let pid = self.child.id();
        let read =
            |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap_or_default();
        let state = read("stat")
            .split_whitespace()
            .nth(2)
            .unwrap_or("?")
            .to_owned();
        format!(
            "pid {pid} state {state} wchan {} syscall {}",
            read("wchan"),
            read("syscall").trim()
        )
    }

    /// SIGKILL: the peer sees its socket close with no close_notify.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Openssl {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether something listens on 127.0.0.1:`port` (from /proc/net/tcp: no probe
/// connection, which would use up `-naccept 1`).
fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == "0A"
        })
}
