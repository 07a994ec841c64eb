//! Creating listening sockets: every address of a `host:port`, and Unix paths.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

/// The listen backlog evnet uses unless told otherwise (the kernel caps it at
/// `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: i32 = 1024;

/// The addresses `host:port` names for listening. A wildcard host — `None`, `""`, `"*"`
/// or `"None"` (libevnet's spelling) — means both `0.0.0.0` and `::`; a literal address
/// means itself; any other name is resolved with the system resolver (this blocks: it is
/// meant for start-up).
///
/// ```
/// let all = evnet::socket::listen_addrs(None, 7020)?;
/// assert_eq!(all.len(), 2);
/// assert!(all.iter().any(|a| a.is_ipv4()) && all.iter().any(|a| a.is_ipv6()));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The name did not resolve, or resolved to nothing.
pub fn listen_addrs(host: Option<&str>, port: u16) -> io::Result<Vec<SocketAddr>> {
    let host = host
        .map(str::trim)
        .filter(|h| !matches!(*h, "" | "*" | "None"));
    let Some(host) = host else {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
        ]);
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut v: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    v.dedup();
    if v.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}: no addresses"),
        ));
    }
    Ok(v)
}

/// A non-blocking, close-on-exec stream socket for `addr`'s family. `IPV6_V6ONLY` is set
/// on every IPv6 socket, so `0.0.0.0:p` and `[::]:p` can both be bound (the bug in the
/// funcptr IPv6 article: without it, the second bind fails with `EADDRINUSE`).
pub(crate) fn stream_socket(addr: &SocketAddr) -> io::Result<Socket> {
    let s = nonblocking_stream(Domain::for_address(*addr))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    Ok(s)
}

/// A non-blocking, close-on-exec stream socket of `domain`. socket2 sets close-on-exec
/// (and, on Apple platforms, `SO_NOSIGPIPE`); `SOCK_NONBLOCK` saves a syscall where the
/// kernel has it.
pub(crate) fn nonblocking_stream(domain: Domain) -> io::Result<Socket> {
    nonblocking(domain, Type::STREAM)
}

/// A non-blocking, close-on-exec datagram socket of `domain` (the resolver's, one per
/// query), made as [`nonblocking_stream`] makes its sockets.
pub(crate) fn nonblocking_dgram(domain: Domain) -> io::Result<Socket> {
    nonblocking(domain, Type::DGRAM)
}

fn nonblocking(domain: Domain, ty: Type) -> io::Result<Socket> {
    #[cfg(evnet_sock_nonblock)]
    return Socket::new(domain, ty.nonblocking(), None);
    #[cfg(not(evnet_sock_nonblock))]
    {
        let s = Socket::new(domain, ty, None)?;
        s.set_nonblocking(true)?;
        Ok(s)
    }
}

/// Binds and listens on one address: non-blocking, close-on-exec, `SO_REUSEADDR`, and
/// `IPV6_V6ONLY` on IPv6.
///
/// # Errors
/// Any of `socket`, `setsockopt`, `bind` or `listen` failed (e.g. `EADDRINUSE`).
pub fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<Socket> {
    let s = stream_socket(&addr)?;
    s.set_reuse_address(true)?;
    s.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    s.listen(backlog)?;
    Ok(s)
}

/// Binds and listens on one address as one shard of several: as [`bind_tcp`], plus
/// `SO_REUSEPORT`, so every loop of a [`Loops`](crate::loops::Loops) can listen on the same
/// address with a socket of its own and the kernel spreads new connections over them (by
/// a hash of the connection's addresses, not by how busy each loop is).
///
/// The caveat nginx documents for `reuseport`: a connection the kernel gave to a loop that
/// is blocked (a long callback, a stall) waits for that loop even while the others are
/// idle, and a shard's queued connections are reset if it closes its socket. Keep every
/// loop's turns short (the point of evnet's budgets), and stop shards by draining, not by
/// closing one listener while the others accept.
///
/// With port 0 the kernel picks a port; bind the other shards to the port the first one
/// got (`local_addr`).
///
/// # Errors
/// Any of `socket`, `setsockopt`, `bind` or `listen` failed (e.g. `EADDRINUSE` when the
/// address is taken by a socket without `SO_REUSEPORT`, or by another user).
pub fn bind_tcp_shard(addr: SocketAddr, backlog: i32) -> io::Result<Socket> {
    let s = stream_socket(&addr)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    s.listen(backlog)?;
    Ok(s)
}

/// Listens on every address of `host:port` (see [`listen_addrs`]), e.g. `None:7020` gives
/// one socket on `0.0.0.0:7020` and one on `[::]:7020`. With port 0 the kernel picks a
/// free port for the first socket and the others use the same one.
///
/// # Errors
/// The first bind that fails, with the address in the message; sockets already bound
/// are closed.
pub fn bind_tcp_all(host: Option<&str>, port: u16) -> io::Result<Vec<Socket>> {
    let mut out = Vec::new();
    let mut port = port;
    for mut addr in listen_addrs(host, port)? {
        addr.set_port(port);
        let s = bind_tcp(addr, DEFAULT_BACKLOG)?;
        if port == 0 {
            port = s
                .local_addr()?
                .as_socket()
                .map_or(0, |a: SocketAddr| a.port());
        }
        out.push(s);
    }
    Ok(out)
}

/// Binds and listens on a Unix-domain stream socket at `path` (non-blocking,
/// close-on-exec). An existing file at `path` is removed first only if `remove_stale`
/// is set and it is a socket nobody accepts on (a connect is refused): a live server's
/// socket, or a file that is not a socket, is never removed.
///
/// # Errors
/// `EADDRINUSE` when the path exists and was not removed; any other bind/listen error.
pub fn bind_unix(path: impl AsRef<Path>, remove_stale: bool) -> io::Result<Socket> {
    let path = path.as_ref();
    let addr = SockAddr::unix(path)?;
    if remove_stale && is_stale_socket(path, &addr) {
        std::fs::remove_file(path)?;
    }
    let s = nonblocking_stream(Domain::UNIX)?;
    s.bind(&addr)
        .map_err(|e| io::Error::new(e.kind(), format!("bind {}: {e}", path.display())))?;
    s.listen(DEFAULT_BACKLOG)?;
    Ok(s)
}

fn is_stale_socket(path: &Path, addr: &SockAddr) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_socket() {
        return false;
    }
    let Ok(probe) = Socket::new(Domain::UNIX, Type::STREAM, None) else {
        return false;
    };
    matches!(probe.connect(addr), Err(e) if e.kind() == io::ErrorKind::ConnectionRefused)
}
