//! The accessors every watched socket offers (`ZmqWatcher` and the mio, calloop and
//! tokio front ends), written once.

/// The socket accessors every watched socket offers (`ZmqWatcher` and the front ends),
/// written once: forwarding to the state at `$($f).+`, which has a `core` and
/// `is_finished()`; the type itself has `interest_changed()`.
macro_rules! zmq_accessors {
    ($($f:ident).+) => {
        /// The socket, e.g. to send from a timer (use `ZMQ_DONTWAIT`) or set options.
        pub fn socket(&self) -> &zmq::Socket {
            self.$($f).+.core.user_socket()
        }

        /// Asks for (or drops) `writable()` calls, from outside the handler.
        pub fn set_writable(&self, on: bool) {
            self.$($f).+.core.set_writable(on);
            self.interest_changed();
        }

        /// Asks for (or drops) `readable()` calls, from outside the handler.
        pub fn set_readable(&self, on: bool) {
            self.$($f).+.core.set_readable(on);
            self.interest_changed();
        }

        /// What the handler currently asks for.
        pub fn interest(&self) -> $crate::ev::IoInterest {
            self.$($f).+.core.interest()
        }

        /// Changes the turn budget; applies from the next dispatch.
        pub fn set_budget(&self, budget: $crate::fair::Budget) {
            self.$($f).+.core.set_budget(budget);
        }

        /// The turn budget.
        pub fn budget(&self) -> $crate::fair::Budget {
            self.$($f).+.core.budget()
        }

        /// Whether the socket has stopped for good (closed by its handler, its context
        /// terminated, or failed): dispatching does nothing any more.
        pub fn is_finished(&self) -> bool {
            self.$($f).+.is_finished()
        }
    };
}
pub(crate) use zmq_accessors;
