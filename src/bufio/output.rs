//! The output queue: a contiguous buffer, plus one whole `Bytes` sent without a copy.

use bytes::{Buf, Bytes, BytesMut};

/// Queued output. A [`Bytes`] written while the queue is empty is kept as it is and sent
/// from its own memory (an echo server writes back what it read without copying it);
/// anything else is appended to one contiguous buffer.
#[derive(Debug, Default)]
pub(crate) struct Output {
    front: Bytes,
    rest: BytesMut,
}

impl Output {
    pub(crate) fn len(&self) -> usize {
        self.front.len() + self.rest.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.front.is_empty() && self.rest.is_empty()
    }

    pub(crate) fn push_slice(&mut self, data: &[u8]) {
        self.rest.extend_from_slice(data);
    }

    pub(crate) fn push_bytes(&mut self, data: Bytes) {
        if self.is_empty() {
            self.front = data;
        } else {
            self.rest.extend_from_slice(&data);
        }
    }

    /// The next contiguous bytes to send.
    pub(crate) fn chunk(&self) -> &[u8] {
        if self.front.is_empty() {
            &self.rest
        } else {
            &self.front
        }
    }

    pub(crate) fn advance(&mut self, n: usize) {
        if self.front.is_empty() {
            self.rest.advance(n);
        } else {
            self.front.advance(n);
            if self.front.is_empty() {
                // Let go of the allocation now: an empty `Bytes` still holds it, and the
                // input buffer it came from could not be reused.
                self.front = Bytes::new();
            }
        }
    }

    /// Moves up to `max` bytes, oldest first, to the end of `dst`; returns how many. Into
    /// an empty `dst`, a whole `Bytes` that is the sole owner of its memory moves without
    /// a copy.
    pub(crate) fn move_into(&mut self, dst: &mut BytesMut, max: usize) -> usize {
        let mut moved = 0;
        if dst.is_empty() && !self.front.is_empty() && self.front.len() <= max {
            match std::mem::take(&mut self.front).try_into_mut() {
                Ok(m) => {
                    moved = m.len();
                    *dst = m;
                }
                Err(b) => self.front = b,
            }
        }
        while moved < max && !self.is_empty() {
            let c = self.chunk();
            let n = c.len().min(max - moved);
            dst.extend_from_slice(&c[..n]);
            self.advance(n);
            moved += n;
        }
        moved
    }

    pub(crate) fn clear(&mut self) {
        self.front = Bytes::new();
        self.rest.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_then_slices_keep_order() {
        let mut o = Output::default();
        o.push_bytes(Bytes::from_static(b"ab"));
        o.push_slice(b"cd");
        o.push_bytes(Bytes::from_static(b"ef"));
        assert_eq!(o.len(), 6);
        let mut got = Vec::new();
        while !o.is_empty() {
            let c = o.chunk()[..1].to_vec();
            got.extend_from_slice(&c);
            o.advance(1);
        }
        assert_eq!(got, b"abcdef");
    }

    #[test]
    fn move_into_respects_the_limit_across_both_parts() {
        let mut o = Output::default();
        o.push_bytes(Bytes::from_static(b"ab"));
        o.push_slice(b"cde");
        let mut dst = BytesMut::new();
        assert_eq!(o.move_into(&mut dst, 3), 3);
        assert_eq!(&dst[..], b"abc");
        assert_eq!(o.move_into(&mut dst, usize::MAX), 2);
        assert_eq!(&dst[..], b"abcde");
        assert!(o.is_empty());
    }

    #[test]
    fn a_sole_owner_moves_without_a_copy_and_a_shared_one_is_copied() {
        let mut o = Output::default();
        let data = Bytes::from(vec![1u8; 100]);
        let at = data.as_ptr();
        o.push_bytes(data);
        o.push_slice(b"xy");
        let mut dst = BytesMut::new();
        // The front alone: moved, not copied. (Checked before anything is appended: the
        // append may reallocate the full buffer, wherever the allocator puts it.)
        assert_eq!(o.move_into(&mut dst, 100), 100);
        assert_eq!(dst.as_ptr(), at, "the same memory");
        assert_eq!(o.move_into(&mut dst, 1000), 2);
        assert_eq!(&dst[98..], &[1, 1, b'x', b'y']);
        let shared = Bytes::from(vec![2u8; 10]);
        let mut o = Output::default();
        o.push_bytes(shared.clone());
        let mut dst = BytesMut::new();
        assert_eq!(o.move_into(&mut dst, 1000), 10);
        assert_ne!(dst.as_ptr(), shared.as_ptr());
        assert_eq!(&dst[..], &shared[..]);
    }
}
