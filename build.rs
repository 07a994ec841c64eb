//! Chooses evnet's poller backend: the direct epoll layer on Linux, the portable one on
//! the `polling` crate (kqueue, or epoll) everywhere else or when the `backend-polling`
//! feature asks for it on Linux. `cfg(evnet_portable)` marks the portable forms (the
//! poller, the self-pipe waker and the self-pipe signal handler). `cfg(evnet_sock_nonblock)`
//! marks the kernels whose `socket(2)` takes `SOCK_NONBLOCK` (saving an `fcntl` per socket).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(evnet_portable)");
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
    println!("cargo::rustc-check-cfg=cfg(docsrs)");
    println!("cargo::rustc-check-cfg=cfg(evnet_sock_nonblock)");
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let epoll = matches!(os.as_str(), "linux" | "android");
    if !epoll || std::env::var_os("CARGO_FEATURE_BACKEND_POLLING").is_some() {
        println!("cargo::rustc-cfg=evnet_portable");
    }
    let sock_nonblock = [
        "linux",
        "android",
        "freebsd",
        "netbsd",
        "openbsd",
        "dragonfly",
        "illumos",
    ];
    if sock_nonblock.contains(&os.as_str()) {
        println!("cargo::rustc-cfg=evnet_sock_nonblock");
    }
}
