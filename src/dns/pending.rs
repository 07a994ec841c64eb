//! One query in flight: its candidates, the server asked, its socket or stream, its
//! deadline and the callback that ends it.

use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Instant;

use hickory_proto::rr::{Name, Record, RecordType};

use super::answer::Answer;
use super::dot::DotSlot;
use super::{Error, ResolverOptions};
use crate::bufio::Stream;
use crate::ev::{Ctx, WatcherId};

pub(super) type Done<S> = Box<dyn FnOnce(&mut S, &mut Ctx<S>, Result<Answer, Error>)>;

/// Where a query's bytes go now.
pub(super) enum Transport<S: 'static> {
    Idle,
    Udp(UdpSocket, WatcherId),
    Tcp(Stream<S>),
    /// Written on TLS server `server`'s connection `generation` with this id.
    Dot {
        server: usize,
        id: u16,
        generation: u64,
    },
}

pub(super) struct Pending<S: 'static> {
    /// The names to try (search list applied), and which one is being tried.
    pub(super) candidates: Vec<Name>,
    pub(super) candidate: usize,
    pub(super) rtype: RecordType,
    /// The question on the wire: a candidate, or the end of a CNAME chain.
    pub(super) qname: Name,
    /// `qname` as sent: its letters' case randomized with `case_randomization` (0x20).
    pub(super) wire_name: Name,
    pub(super) chain: Vec<Record>,
    /// Where the rotation starts, and attempts made for this question so far.
    pub(super) first: usize,
    pub(super) tried: usize,
    /// The servers to try for this question, in order (by their health); made afresh
    /// for each new question (emptied when `tried` goes back to 0).
    pub(super) order: Vec<usize>,
    /// The current attempt: its server (an index into the list in use), whether that is
    /// the TLS list, and when the query left (`None` once the attempt is counted).
    pub(super) index: usize,
    pub(super) over_tls: bool,
    pub(super) sent_at: Option<Instant>,
    pub(super) edns: bool,
    pub(super) id: u16,
    pub(super) server: SocketAddr,
    pub(super) transport: Transport<S>,
    pub(super) timer: Option<WatcherId>,
    /// The error to report if every server fails.
    pub(super) last_error: Option<Error>,
    /// An earlier search candidate had the name without the type.
    pub(super) saw_nodata: bool,
    /// Asked in the clear: the opportunistic profile lost TLS for this lookup.
    pub(super) clear: bool,
    /// Already sent again once after its TLS connection closed under it.
    pub(super) resent: bool,
    /// The current UDP query carried a DNS cookie; and the lookup was already asked
    /// again once after a BADCOOKIE.
    pub(super) sent_cookie: bool,
    pub(super) cookie_retried: bool,
    /// The configuration this lookup started with: it keeps it to the end, whatever the
    /// resolver reads meanwhile.
    pub(super) config: Rc<ResolverOptions>,
    pub(super) done: Option<Done<S>>,
    /// Set by the [`Lookup`]'s drop: `done` must never run, whatever happens next.
    pub(super) cancelled: Rc<Cell<bool>>,
}

impl<S: 'static> Pending<S> {
    /// A lookup with nothing sent yet, which ends with `done`.
    pub(super) fn new(done: Done<S>) -> Pending<S> {
        Pending {
            candidates: Vec::new(),
            candidate: 0,
            rtype: RecordType::A,
            qname: Name::root(),
            wire_name: Name::root(),
            chain: Vec::new(),
            first: 0,
            tried: 0,
            order: Vec::new(),
            index: 0,
            over_tls: false,
            sent_at: None,
            edns: false,
            id: 0,
            server: SocketAddr::from(([0, 0, 0, 0], 0)),
            transport: Transport::Idle,
            timer: None,
            last_error: None,
            saw_nodata: false,
            clear: false,
            resent: false,
            sent_cookie: false,
            cookie_retried: false,
            config: Rc::default(),
            done: Some(done),
            cancelled: Rc::default(),
        }
    }

    /// Ends the current attempt: its deadline and UDP watcher go, then its socket (or its
    /// TCP stream, which closes itself; or its place on a TLS connection, which stays).
    pub(super) fn stop_io(&mut self, cx: &mut Ctx<S>, dot: &mut [DotSlot<S>]) {
        if let Some(t) = self.timer.take() {
            cx.remove(t);
        }
        match &self.transport {
            Transport::Udp(_, w) => {
                cx.remove(*w);
            }
            Transport::Dot {
                server,
                id,
                generation,
            } => {
                if let Some(slot) = dot.get_mut(*server) {
                    slot.forget(*id, *generation);
                }
            }
            _ => {}
        }
        self.transport = Transport::Idle;
    }
}
