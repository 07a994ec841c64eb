//! A stream's read and write lifecycles, as states rather than loose flags: each side only
//! moves forward, and the states that cannot happen (an end reported twice, a side that is
//! both finished and still finishing) cannot be written down.

/// Where reading stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reading {
    /// Bytes may still come.
    Open,
    /// The end of stream arrived; `reported` once the handler has had its `Eof`.
    Ended { reported: bool },
    /// Reading stopped for good (an error, a line too long). `end` is `Some(reported)`
    /// when the end of stream had arrived before: it is still reported, once, after the
    /// data and the error.
    Failed { end: Option<bool> },
}

impl Reading {
    /// Whether reading goes on (neither ended nor failed).
    pub(super) fn is_open(self) -> bool {
        self == Reading::Open
    }

    /// Whether the end of stream arrived (before or without a failure).
    pub(super) fn ended(self) -> bool {
        matches!(
            self,
            Reading::Ended { .. } | Reading::Failed { end: Some(_) }
        )
    }

    /// Whether reading failed.
    pub(super) fn failed(self) -> bool {
        matches!(self, Reading::Failed { .. })
    }

    /// The end of stream arrived. A failed side stays failed (its reader stopped first).
    pub(super) fn end(&mut self) {
        if *self == Reading::Open {
            *self = Reading::Ended { reported: false };
        }
    }

    /// Reading failed; an end that arrived before is kept, to be reported.
    pub(super) fn fail(&mut self) {
        *self = match *self {
            Reading::Open => Reading::Failed { end: None },
            Reading::Ended { reported } => Reading::Failed {
                end: Some(reported),
            },
            failed @ Reading::Failed { .. } => failed,
        };
    }

    /// Whether an unreported end is due, marking it reported: true at most once.
    pub(super) fn report_end(&mut self) -> bool {
        match self {
            Reading::Ended { reported }
            | Reading::Failed {
                end: Some(reported),
            } if !*reported => {
                *reported = true;
                true
            }
            _ => false,
        }
    }
}

/// Where writing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Writing {
    /// Output goes out as it comes.
    Open,
    /// Once output drains: shut down (socket), EOF to the partner (pair), finish the
    /// underlying stream (filter).
    Finishing,
    /// The end went downstream, once.
    Finished,
    /// Writing stopped for good; queued output is dropped, new output refused.
    Failed,
}

impl Writing {
    /// Whether writing failed.
    pub(super) fn failed(self) -> bool {
        self == Writing::Failed
    }

    /// The application asked for the graceful end. A finished or failed side stays so.
    pub(super) fn finish(&mut self) {
        if *self == Writing::Open {
            *self = Writing::Finishing;
        }
    }

    /// Whether the end is due downstream now (`drained`: no output left), marking it
    /// sent: true at most once.
    pub(super) fn take_end(&mut self, drained: bool) -> bool {
        if *self == Writing::Finishing && drained {
            *self = Writing::Finished;
            return true;
        }
        false
    }

    /// Writing failed.
    pub(super) fn fail(&mut self) {
        *self = Writing::Failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_is_reported_once_even_when_a_failure_follows_it() {
        let mut r = Reading::Open;
        assert!(!r.report_end());
        r.end();
        assert!(r.ended() && !r.failed() && !r.is_open());
        r.fail();
        assert!(r.ended() && r.failed());
        assert!(r.report_end());
        assert!(!r.report_end());
        r.fail();
        assert!(!r.report_end(), "a second failure re-armed the end");
    }

    #[test]
    fn a_failed_reader_never_ends_later() {
        let mut r = Reading::Open;
        r.fail();
        r.end();
        assert!(!r.ended());
        assert!(!r.report_end());
    }

    #[test]
    fn the_end_goes_downstream_once_and_only_after_the_output_drained() {
        let mut w = Writing::Open;
        assert!(!w.take_end(true), "an open side has no end to send");
        w.finish();
        assert!(!w.take_end(false));
        assert!(w.take_end(true));
        assert!(!w.take_end(true));
        w.finish();
        assert_eq!(w, Writing::Finished, "finish re-opened a finished side");
        w.fail();
        w.finish();
        assert!(w.failed() && !w.take_end(true));
    }
}
