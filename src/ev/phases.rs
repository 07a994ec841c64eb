//! The phase lists: which prepare, check, idle and wake watchers are active, in the order
//! they were started (the order their callbacks run in).

use super::WatcherId;

/// A phase of the turn with a list of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Prepare,
    Check,
    Idle,
    /// Wake watchers, checked for a raised flag after each poll.
    Wake,
}

/// The active watchers of each phase.
#[derive(Default)]
pub(super) struct Phases {
    prepare: Vec<WatcherId>,
    check: Vec<WatcherId>,
    idle: Vec<WatcherId>,
    wake: Vec<WatcherId>,
}

impl Phases {
    fn list_mut(&mut self, p: Phase) -> &mut Vec<WatcherId> {
        match p {
            Phase::Prepare => &mut self.prepare,
            Phase::Check => &mut self.check,
            Phase::Idle => &mut self.idle,
            Phase::Wake => &mut self.wake,
        }
    }

    /// `p`'s active watchers, in start order.
    pub(super) fn list(&self, p: Phase) -> &[WatcherId] {
        match p {
            Phase::Prepare => &self.prepare,
            Phase::Check => &self.check,
            Phase::Idle => &self.idle,
            Phase::Wake => &self.wake,
        }
    }

    pub(super) fn is_empty(&self, p: Phase) -> bool {
        self.list(p).is_empty()
    }

    /// `w` started: it runs after the ones started before it.
    pub(super) fn add(&mut self, p: Phase, w: WatcherId) {
        self.list_mut(p).push(w);
    }

    /// `w` stopped.
    pub(super) fn remove(&mut self, p: Phase, w: WatcherId) {
        self.list_mut(p).retain(|x| *x != w);
    }
}
