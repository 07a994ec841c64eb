//! Chooses evnet's poller backend: the direct epoll layer on Linux, the portable one on
//! the `polling` crate (kqueue, or epoll) everywhere else or when the `backend-polling`
//! feature asks for it on Linux. `cfg(evnet_portable)` marks the portable forms (the
//! poller, the self-pipe waker and the self-pipe signal handler).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(evnet_portable)");
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let epoll = matches!(os.as_str(), "linux" | "android");
    if !epoll || std::env::var_os("CARGO_FEATURE_BACKEND_POLLING").is_some() {
        println!("cargo::rustc-cfg=evnet_portable");
    }
}
