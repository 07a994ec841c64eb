//! Versioned watcher ids.
//!
//! A [`WatcherId`] names a slot in the loop's watcher table *and* the version of that slot.
//! Removing a watcher bumps the slot's version, so an id kept after removal, or an event
//! queued for the old occupant, never reaches whatever watcher reuses the slot (calloop's
//! `token.rs` does the same).

/// The id of a watcher on a [`Loop`](super::Loop). `Copy`, cheap, and safe to keep after the
/// watcher is removed: every operation on a stale id is a no-op that reports `false`/`None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatcherId {
    pub(crate) index: u32,
    pub(crate) version: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_by_version() {
        let a = WatcherId {
            index: 3,
            version: 1,
        };
        let b = WatcherId {
            index: 3,
            version: 2,
        };
        assert_ne!(a, b);
    }
}
