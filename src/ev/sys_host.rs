//! Registrations with host loops whose APIs leave I/O safety to the caller: the one place
//! the front ends of `zmq` need `unsafe`.

#[cfg(feature = "tokio")]
use std::io;
#[cfg(feature = "tokio")]
use std::os::fd::OwnedFd;

/// `fd` registered with the current tokio reactor for readability.
///
/// # Panics
/// Outside a tokio runtime with I/O enabled.
#[cfg(feature = "tokio")]
pub(crate) fn tokio_readable(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns `fd` for its whole lifetime, so the descriptor stays open
    // and names the same open file until the AsyncFd is dropped, and `OwnedFd::as_raw_fd`
    // always returns that descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)
}
