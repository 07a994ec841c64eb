//! The resolver's randomness (query ids, 0x20 case bits, RFC 2782 weighted draws): rand's
//! `ThreadRng`, a ChaCha12 stream seeded from the OS CSPRNG and reseeded from it every
//! 64 KiB of output. One OS call per 64 KiB instead of one per id or draw.
//!
//! A process that forks after its first lookup should not share ids with its child:
//! `rand` no longer reseeds on fork, so a daemon that forks workers resolves in them only
//! after the fork, or calls `rand::rng().reseed()` there.

use rand::Rng;

/// Random bytes into `buf`.
pub(crate) fn fill(buf: &mut [u8]) {
    rand::rng().fill_bytes(buf);
}

/// A random `u16` (a query id).
pub(crate) fn u16() -> u16 {
    (rand::rng().next_u32() >> 16) as u16
}

/// A random `u32`.
pub(crate) fn u32() -> u32 {
    rand::rng().next_u32()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_vary_and_cover_both_bytes() {
        let ids: std::collections::HashSet<u16> = (0..1000).map(|_| super::u16()).collect();
        assert!(ids.len() > 900, "{} distinct of 1000", ids.len());
        assert!(ids.iter().any(|i| i >> 8 != 0) && ids.iter().any(|i| i & 0xff != 0));
    }
}
