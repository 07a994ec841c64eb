//! The watcher slab: every watcher's slot, by index, with a version per slot so that an
//! id whose watcher was removed (and its slot reused) is recognized as stale.

use std::ops::{Index, IndexMut};

use super::loop_logic::{Callback, Kind, Slot};
use super::WatcherId;

/// The slots and the free list; owns the id scheme.
pub(super) struct Slab<S> {
    slots: Vec<Slot<S>>,
    /// Indices of freed slots, reused last-freed first.
    free: Vec<u32>,
}

impl<S> Slab<S> {
    pub(super) fn new() -> Slab<S> {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
        }
    }

    /// A new, inactive watcher of `kind` with `cb`; a freed slot is reused under its next
    /// version.
    pub(super) fn insert(&mut self, kind: Kind, cb: Callback<S>) -> WatcherId {
        let slot = Slot {
            version: 0,
            kind,
            active: false,
            pending: 0,
            due: None,
            cb: Some(cb),
        };
        match self
            .free
            .pop()
            .and_then(|i| Some((i, self.slots.get_mut(i as usize)?)))
        {
            Some((i, s)) => {
                let version = s.version;
                *s = Slot { version, ..slot };
                WatcherId { index: i, version }
            }
            None => {
                self.slots.push(slot);
                WatcherId {
                    index: (self.slots.len() - 1) as u32,
                    version: 0,
                }
            }
        }
    }

    /// `w`'s slot, unless `w` is stale.
    pub(super) fn get(&self, w: WatcherId) -> Option<&Slot<S>> {
        self.slots
            .get(w.index as usize)
            .filter(|s| s.version == w.version && !matches!(s.kind, Kind::Free))
    }

    /// `w`'s slot, unless `w` is stale.
    pub(super) fn get_mut(&mut self, w: WatcherId) -> Option<&mut Slot<S>> {
        self.slots
            .get_mut(w.index as usize)
            .filter(|s| s.version == w.version && !matches!(s.kind, Kind::Free))
    }

    /// Frees `w`'s slot (the caller checked `w` is live): its id goes stale. Returns what
    /// it held, for the caller to undo (an io watcher's fd) and drop.
    pub(super) fn release(&mut self, w: WatcherId) -> (Kind, Option<Callback<S>>) {
        let s = &mut self.slots[w.index as usize];
        let kind = std::mem::replace(&mut s.kind, Kind::Free);
        s.version = s.version.wrapping_add(1);
        s.due = None;
        let cb = s.cb.take();
        self.free.push(w.index);
        (kind, cb)
    }

    /// How many watchers exist.
    pub(super) fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

/// The slot at `w`'s index, whatever its version (for ids the loop itself just checked or
/// queued).
impl<S> Index<WatcherId> for Slab<S> {
    type Output = Slot<S>;

    fn index(&self, w: WatcherId) -> &Slot<S> {
        &self.slots[w.index as usize]
    }
}

impl<S> IndexMut<WatcherId> for Slab<S> {
    fn index_mut(&mut self, w: WatcherId) -> &mut Slot<S> {
        &mut self.slots[w.index as usize]
    }
}
