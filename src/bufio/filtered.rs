//! A stream stacked on another through a [`Filter`](super::Filter): the glue between the
//! two layers (the filter's input and output sides) and the handler the filter installs on
//! the underlying stream.

use std::rc::Weak;

use bytes::{Bytes, BytesMut};

use super::engine::over_write_high;
use super::error::{Error, StreamEvent};
use super::filter::{Filter, FilterResult, FlushMode};
use super::output::Output;
use super::read::needs_more;
use super::stream::{Conn, Link, Stream, StreamHandler};
use crate::ev::Ctx;

pub(super) struct Filtered<S: 'static> {
    pub(super) under: Stream<S>,
    pub(super) filter: Box<dyn Filter>,
    /// Bytes from the underlying stream the filter has not taken yet.
    pub(super) raw_in: BytesMut,
    /// Bytes written to this stream the filter has not taken yet.
    pub(super) raw_out: BytesMut,
    /// The underlying stream reached end of stream.
    pub(super) under_eof: bool,
    /// The filter was handshaking and [`StreamEvent::Connected`] has not been delivered yet.
    pub(super) handshake_pending: bool,
}

impl<S: 'static> Conn<S> {
    /// Runs the input side of a filter over bytes from the underlying stream, as far as
    /// this stream has room. Returns whether input grew (or end of stream arrived).
    pub(super) fn pump_in(&self, cx: &mut Ctx<S>) -> bool {
        let mut handshake_over = false;
        let r = self.pump_in_step(cx, &mut handshake_over);
        if handshake_over {
            self.arm_timeouts(cx); // without the handshake deadline
        }
        r
    }

    fn pump_in_step(&self, cx: &mut Ctx<S>, handshake_over: &mut bool) -> bool {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if !g.rd.state.is_open() || g.closing || over_write_high(g) {
            return false;
        }
        let room = if needs_more(g.rd.req, g.rd.input.len(), g.opts.limits()) {
            g.opts.max_read
        } else {
            g.opts.read_high.saturating_sub(g.rd.input.len())
        };
        let Link::Filter(f) = &mut g.link else {
            return false;
        };
        if room == 0 || (f.raw_in.is_empty() && !f.under_eof && !f.filter.buffered_input()) {
            return false;
        }
        let mode = if f.under_eof {
            FlushMode::Finished
        } else {
            FlushMode::Normal
        };
        let before = g.rd.input.len();
        let r = f.filter.input(&mut f.raw_in, &mut g.rd.input, room, mode);
        let grew = g.rd.input.len() - before;
        let ended = f.under_eof && f.raw_in.is_empty();
        // What the input step owes the peer goes out now, whatever the step's outcome (an
        // alert explains a failure to the peer).
        let mut progress = f.flush_own(cx);
        if f.handshake_pending && !f.filter.handshaking() {
            f.handshake_pending = false;
            g.connected_due = true;
            progress = true;
            *handshake_over = g.handshake_deadline.take().is_some();
        }
        if grew > 0 {
            g.rd.total_read += grew as u64;
            g.rd.last_read = g.now;
        }
        match r {
            FilterResult::Error(m) => {
                g.rd.state.fail();
                g.error.get_or_insert(Error::Filter(m));
                return true;
            }
            FilterResult::End => {
                g.rd.state.end();
                return true;
            }
            FilterResult::NeedMore if f.under_eof => {
                // The stream ended inside a unit the filter needed whole.
                g.rd.state.fail();
                g.error
                    .get_or_insert(Error::Filter("end of stream inside a filtered unit".into()));
                return true;
            }
            _ => {}
        }
        if ended {
            g.rd.state.end();
            return true;
        }
        grew > 0 || progress
    }

    /// Bytes (or the end) from the underlying stream of a filter.
    pub(super) fn take_from_under(&self, data: Option<Bytes>, err: Option<Error>) {
        let mut g = self.st.borrow_mut();
        let g = &mut *g;
        if let Some(e) = err {
            g.rd.state.fail();
            g.error.get_or_insert(e);
        }
        if let Link::Filter(f) = &mut g.link {
            match data {
                // A large read the filter has nothing before: its memory becomes `raw_in`
                // when `data` is its only owner (see `Bridge::read`), not copied.
                Some(d) if f.raw_in.is_empty() && d.len() >= ADOPT_MIN => match d.try_into_mut() {
                    Ok(m) => f.raw_in = m,
                    Err(d) => f.raw_in.extend_from_slice(&d),
                },
                Some(d) => f.raw_in.extend_from_slice(&d),
                None => f.under_eof = true,
            }
        }
    }
}

/// Runs the output side of a filter over up to `cap` bytes of `out`, into the underlying
/// stream. Returns how many bytes of `out` the filter took.
pub(super) fn filter_out<S: 'static>(
    f: &mut Filtered<S>,
    out: &mut Output,
    cap: usize,
    finishing: bool,
    cx: &mut Ctx<S>,
) -> Result<usize, Error> {
    // The underlying stream still holds a full write's worth: wait until it drains (its
    // write callback brings us back) rather than pile ciphertext up below.
    if f.under.conn.backlogged() {
        return Ok(0);
    }
    // During a handshake the application's bytes wait here, in `out`.
    let holding = f.filter.handshaking();
    let taken = if holding {
        0
    } else {
        out.move_into(&mut f.raw_out, cap)
    };
    let mode = if finishing && out.is_empty() && !holding {
        FlushMode::Finished
    } else if taken > 0 || f.filter.wants_output() {
        FlushMode::Normal
    } else {
        return Ok(0);
    };
    let (bytes, err) = f.emit(mode);
    if let Some(e) = err {
        return Err(e);
    }
    if !bytes.is_empty() {
        f.under.write_bytes(cx, bytes);
    }
    Ok(taken)
}

impl<S: 'static> Filtered<S> {
    /// Sends what the filter produced on its own (see [`Filter::wants_output`]) down to
    /// the underlying stream. Returns whether anything went.
    pub(super) fn flush_own(&mut self, cx: &mut Ctx<S>) -> bool {
        if !self.filter.wants_output() {
            return false;
        }
        let (bytes, _err) = self.emit(FlushMode::Normal);
        // An error here shows again on the input or output step that follows.
        let sent = !bytes.is_empty();
        if sent {
            self.under.write_bytes(cx, bytes);
        }
        sent
    }

    /// Runs the output side of the filter over what it holds (`raw_out`) with `mode`:
    /// what it produced for the underlying stream, and its error if it failed.
    pub(super) fn emit(&mut self, mode: FlushMode) -> (Bytes, Option<Error>) {
        let mut dst = BytesMut::new();
        let err = match self
            .filter
            .output(&mut self.raw_out, &mut dst, usize::MAX, mode)
        {
            FilterResult::Ok | FilterResult::NeedMore | FilterResult::End => None,
            FilterResult::Error(m) => Some(Error::Filter(m)),
        };
        (dst.freeze(), err)
    }
}

/// Reads at least this large move into the filter's input buffer rather than being copied
/// (small ones are cheaper to copy than to give the underlying stream a new buffer for).
pub(super) const ADOPT_MIN: usize = 4096;

/// The handler a filter installs on its underlying stream: everything goes up.
pub(super) struct Bridge<S: 'static> {
    pub(super) upper: Weak<Conn<S>>,
}

impl<S: 'static> StreamHandler<S> for Bridge<S> {
    fn read(&mut self, under: &Conn<S>, data: Bytes, st: &mut S, cx: &mut Ctx<S>) {
        if let Some(up) = self.upper.upgrade() {
            if data.len() >= ADOPT_MIN {
                // `data` was split off the underlying input buffer, which still shares its
                // memory; an empty one lets go, so `data` can move up uncopied.
                let mut g = under.st.borrow_mut();
                if g.rd.input.is_empty() {
                    g.rd.input = BytesMut::new();
                }
            }
            up.take_from_under(Some(data), None);
            // Keep pulling while the upper stream wants input; its settle stops us.
            under.read_chunk(cx);
            up.dispatch(st, cx);
        }
    }

    fn write(&mut self, _: &Conn<S>, st: &mut S, cx: &mut Ctx<S>) {
        // The underlying output drained: the filter may move more of the upper output.
        if let Some(up) = self.upper.upgrade() {
            up.dispatch(st, cx);
        }
    }

    fn event(&mut self, under: &Conn<S>, e: StreamEvent, st: &mut S, cx: &mut Ctx<S>) {
        let Some(up) = self.upper.upgrade() else {
            return;
        };
        match e {
            StreamEvent::Eof => {
                // What the underlying stream still buffers comes before the end.
                let rest = under.take_input(cx);
                if !rest.is_empty() {
                    up.take_from_under(Some(rest), None);
                }
                up.take_from_under(None, None);
            }
            StreamEvent::Error(e) => up.take_from_under(None, Some(e)),
            StreamEvent::Connected => {}
            StreamEvent::ReadTimeout => up.st.borrow_mut().rd.read_timed_out = true,
            StreamEvent::WriteTimeout => up.st.borrow_mut().wr.write_timed_out = true,
        }
        up.dispatch(st, cx);
    }
}
