//! The real peers the tests run (NSD, Unbound, rsyslogd, dig, openssl, logger, kill, pyzmq), found or
//! installed on first use, so that `cargo test` passes on a fresh machine by itself.
//!
//! A tool is looked for on `PATH` and at the places Debian puts it. If it is missing and
//! the tests run as root with `apt-get`, its package is installed (one `apt-get update` per
//! test process); pyzmq goes into a venv under `target/`. Where that cannot be done, the
//! test that needs the tool fails with one line naming it and how to get it; the others
//! still run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// A tool: its command, the Debian package that has it, and where that puts it.
struct Tool {
    name: &'static str,
    package: &'static str,
    what: &'static str,
    paths: &'static [&'static str],
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "nsd",
        package: "nsd",
        what: "NLnet Labs NSD, the authoritative DNS server the DNS tests ask",
        paths: &["/usr/sbin/nsd"],
    },
    Tool {
        name: "unbound",
        package: "unbound",
        what: "NLnet Labs Unbound, the DNS-over-TLS server the DoT tests ask",
        paths: &["/usr/sbin/unbound"],
    },
    Tool {
        name: "rsyslogd",
        package: "rsyslog",
        what: "rsyslogd, the syslog daemon the relay client forwards to",
        paths: &["/usr/sbin/rsyslogd"],
    },
    Tool {
        name: "dig",
        package: "bind9-dnsutils",
        what: "dig, which the lookup example's output is compared with",
        paths: &["/usr/bin/dig"],
    },
    Tool {
        name: "openssl",
        package: "openssl",
        what: "openssl s_server/s_client, the TLS interop peers",
        paths: &["/usr/bin/openssl"],
    },
    Tool {
        name: "logger",
        package: "bsdutils",
        what: "util-linux logger, the relay test's syslog sender",
        paths: &["/usr/bin/logger", "/bin/logger"],
    },
    Tool {
        name: "kill",
        package: "procps",
        what: "kill(1), which the signal tests send signals with",
        paths: &["/usr/bin/kill", "/bin/kill"],
    },
    Tool {
        name: "python3",
        package: "python3",
        what: "Python 3, for pyzmq (a ZeroMQ peer not written in Rust)",
        paths: &["/usr/bin/python3"],
    },
];

/// A file a package puts in place (a plugin, not a command): `path`, installing `package`
/// if it is missing.
///
/// # Panics
/// With one line naming the package, when it is missing and cannot be installed here.
pub fn file(path: &str, package: &str, what: &str) -> PathBuf {
    let p = PathBuf::from(path);
    if p.exists() {
        return p;
    }
    let _g = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if p.exists() {
        return p;
    }
    match apt_install(package) {
        Ok(()) if p.exists() => p,
        Ok(()) => panic!("{what}: `apt-get install {package}` succeeded but {path} is not there"),
        Err(why) => panic!("{what} ({path}) is missing and {why}: apt-get install {package}"),
    }
}

/// Installs run one at a time (apt holds a lock of its own, and tests run in parallel).
static INSTALL: Mutex<()> = Mutex::new(());

/// The path of tool `name` (one of the table above), installing its package if needed.
///
/// # Panics
/// With one line naming the tool and how to install it, when it is missing and cannot be
/// installed here.
pub fn tool(name: &str) -> PathBuf {
    let t = TOOLS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("provision: no entry for tool {name:?}"));
    if let Some(p) = find(t) {
        return p;
    }
    let _g = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = find(t) {
        return p; // another test installed it meanwhile
    }
    match apt_install(t.package) {
        Ok(()) => find(t).unwrap_or_else(|| {
            panic!(
                "{} ({}): `apt-get install {}` succeeded but no `{}` appeared",
                t.name, t.what, t.package, t.name
            )
        }),
        Err(why) => panic!(
            "{} ({}) is missing and {why}: install it (Debian: apt-get install {})",
            t.name, t.what, t.package
        ),
    }
}

fn find(t: &Tool) -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(t.name)).collect())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(t.paths.iter().map(PathBuf::from))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `apt-get install -y package`, after one `apt-get update` per process.
fn apt_install(package: &str) -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Err("the tests do not run as root, so they cannot install it".into());
    }
    if !Path::new("/usr/bin/apt-get").exists() {
        return Err("there is no apt-get to install it with".into());
    }
    static UPDATED: OnceLock<Result<(), String>> = OnceLock::new();
    UPDATED.get_or_init(|| apt(&["update", "-qq"])).clone()?;
    apt(&["install", "-y", "-qq", "--no-install-recommends", package])
}

fn apt(args: &[&str]) -> Result<(), String> {
    eprintln!("provision: apt-get {}", args.join(" "));
    let out = Command::new("apt-get")
        .args(["-o", "DPkg::Lock::Timeout=300"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("apt-get could not run ({e})"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "`apt-get {}` failed ({})",
        args.join(" "),
        last_line(&out.stderr)
    ))
}

/// The last line of a command's stderr that says something.
fn last_line(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    let last = err.lines().rev().find(|l| !l.trim().is_empty());
    last.unwrap_or("").to_owned()
}

/// A Python with pyzmq: `$EVNET_PYTHON` if set, else a venv under `target/` made (and
/// pyzmq installed into it from PyPI) on first use.
///
/// # Panics
/// With one line saying what is missing, when no such Python can be had here.
pub fn pyzmq_python() -> PathBuf {
    if let Some(p) = std::env::var_os("EVNET_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = target_dir().join("pyzmq-venv");
    let py = venv.join("bin/python");
    let has_zmq = |py: &Path| {
        Command::new(py)
            .args(["-c", "import zmq"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has_zmq(&py) {
        return py;
    }
    let _g = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if has_zmq(&py) {
        return py;
    }
    let python3 = tool("python3");
    let ensurepip = Command::new(&python3)
        .args(["-c", "import ensurepip"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ensurepip {
        if let Err(why) = apt_install("python3-venv") {
            panic!("pyzmq: python3 cannot make a venv (no ensurepip) and {why}: apt-get install python3-venv");
        }
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("pyzmq: {what} could not run: {e}"));
        if !out.status.success() {
            panic!(
                "pyzmq: {what} failed ({}); or set EVNET_PYTHON to a Python with pyzmq",
                last_line(&out.stderr)
            );
        }
    };
    eprintln!("provision: a venv with pyzmq in {}", venv.display());
    run(
        Command::new(&python3)
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/pip")).args(["install", "-q", "pyzmq"]),
        "pip install pyzmq",
    );
    assert!(
        has_zmq(&py),
        "pyzmq: installed, but `import zmq` still fails"
    );
    py
}

/// Cargo's target directory, from this test binary's place in it
/// (`target/<profile>/deps/<test>`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}
