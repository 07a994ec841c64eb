//! [`Lookup`]: the handle of one lookup in flight, which cancels it when dropped.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use super::resolver::Inner;

/// A lookup in flight. Dropping it cancels the lookup: its callback never runs and its
/// socket and timer go. That holds from anywhere: its own callback, another lookup's,
/// the drop of a callback that owned it (a lookup whose callback owns further lookups
/// cancels them all), a `Drop` impl, or after the resolver is gone.
/// [`detach`](Lookup::detach) lets it run to its callback instead.
#[must_use = "dropping a Lookup cancels it"]
pub struct Lookup<S: 'static> {
    key: u64,
    inner: Weak<RefCell<Inner<S>>>,
    /// Shared with the query: once set, its callback never runs.
    cancelled: Rc<Cell<bool>>,
    detached: bool,
}

impl<S: 'static> std::fmt::Debug for Lookup<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookup").field("key", &self.key).finish()
    }
}

impl<S: 'static> Lookup<S> {
    pub(super) fn new(
        key: u64,
        inner: Weak<RefCell<Inner<S>>>,
        cancelled: Rc<Cell<bool>>,
    ) -> Lookup<S> {
        Lookup {
            key,
            inner,
            cancelled,
            detached: false,
        }
    }

    /// Lets the lookup run to its callback without this handle.
    pub fn detach(mut self) {
        self.detached = true;
    }
}

impl<S: 'static> Drop for Lookup<S> {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        // First the flag, which needs nothing borrowed: whatever happens below, the
        // callback will not run.
        self.cancelled.set(true);
        let Some(inner) = self.inner.upgrade() else {
            return; // the resolver is gone, and its queries with it
        };
        // Out under a short borrow, dropped after it: the callback going with it may own
        // other lookups of this resolver, whose drops borrow it in turn. If the resolver
        // is borrowed right now, the query ends at its next event instead (`finish` and
        // `send` honour the flag).
        let pending = inner
            .try_borrow_mut()
            .ok()
            .and_then(|mut g| g.cancel(self.key));
        drop(pending);
    }
}
