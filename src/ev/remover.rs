//! [`Remover`]: removing watchers (and deferring loop work) from code that has no
//! [`Ctx`], such as a handle's `Drop`.

use std::any::Any;
use std::cell::RefCell;
use std::rc::Rc;

use super::{Ctx, WatcherId};

/// Work deferred to the start of the next turn.
type Deferred<S> = Box<dyn FnOnce(&mut Ctx<S>)>;

pub(crate) struct Removals<S> {
    pub(crate) watchers: Vec<WatcherId>,
    /// Dropped after the watchers above are removed: typically the fd they watch.
    pub(crate) owned: Vec<Box<dyn Any>>,
    pub(crate) deferred: Vec<Deferred<S>>,
}

impl<S> Default for Removals<S> {
    fn default() -> Removals<S> {
        Removals {
            watchers: Vec::new(),
            owned: Vec::new(),
            deferred: Vec::new(),
        }
    }
}

/// Queues watcher removals for the start of the loop's next turn, before any callback runs.
///
/// Services use it where a handle is dropped outside any callback: the handle cannot
/// reach the loop, so it queues its watchers, and whatever must outlive them (an fd must
/// stay open until its io watcher is gone) with
/// [`remove_then_drop`](Remover::remove_then_drop). Get one from
/// [`Ctx::remover`](super::Ctx::remover). Like the loop, it is `!Send`.
///
/// ```
/// use std::time::Duration;
/// use evnet::ev::Loop;
///
/// let mut ev = Loop::<()>::new()?;
/// let t = ev.timer(Duration::from_secs(3600), None, |_, _, _| {});
/// let remover = ev.remover();
/// remover.remove(t);
/// ev.run(&mut ())?; // the timer is removed at the start of the first turn, so this returns
/// assert!(!ev.is_active(t));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Remover<S> {
    pub(crate) queue: Rc<RefCell<Removals<S>>>,
}

impl<S> Clone for Remover<S> {
    fn clone(&self) -> Remover<S> {
        Remover {
            queue: self.queue.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Remover<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.queue.borrow();
        f.debug_struct("Remover")
            .field("queued", &q.watchers.len())
            .finish()
    }
}

impl<S> Remover<S> {
    /// Removes `w` at the start of the next turn (a stale id is ignored then).
    pub fn remove(&self, w: WatcherId) {
        self.queue.borrow_mut().watchers.push(w);
    }

    /// Removes `watchers` at the start of the next turn, then drops `value`.
    pub fn remove_then_drop<T: 'static>(&self, watchers: &[WatcherId], value: T) {
        let mut q = self.queue.borrow_mut();
        q.watchers.extend_from_slice(watchers);
        q.owned.push(Box::new(value));
    }

    /// Runs `f` with the loop context at the start of the next turn, after the queued
    /// removals: for teardown that needs the loop (closing a stream gracefully from a
    /// `Drop`).
    pub fn defer(&self, f: impl FnOnce(&mut Ctx<S>) + 'static) {
        self.queue.borrow_mut().deferred.push(Box::new(f));
    }
}
