//! The replay ring (`--replay-messages`, `--replay-bytes`): the last messages, each with a
//! sequence number, so that a client that reconnects gets what it missed.
//!
//! # The resume protocol (version 1)
//! Right after its handshake, a resuming client sends one line:
//!
//! ```text
//! EVNET-RELAY 1 <epoch> <last-seq>\n        (0 0: nothing forwarded yet)
//! ```
//!
//! The server answers with one line, then every message as `<seq> <len> <msg>` (octet
//! counting with the sequence in front), first those after `<last-seq>` that the ring still
//! holds, then the live stream:
//!
//! ```text
//! EVNET-RELAY 1 <epoch> <missed>\n
//! ```
//!
//! `<epoch>` is different for each server start: a client whose epoch differs (the server
//! restarted) gets the whole ring, and `<missed>` counts what the ring no longer reached
//! back to. A client that sends no hello within `--hello-wait-ms` is a plain client: it
//! gets the messages since it connected in the configured framing, as before the ring
//! existed, so the seed's line clients keep working.

use std::collections::VecDeque;

use evnet::bytes::{Bytes, BytesMut};

/// The hello's and the answer's first words.
pub const MAGIC: &str = "EVNET-RELAY 1 ";

/// The last messages, by sequence number.
pub struct Ring {
    pub epoch: u64,
    /// The sequence number the next message gets (the first is 1).
    pub next_seq: u64,
    msgs: VecDeque<(u64, Bytes)>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
}

impl Ring {
    pub fn new(max_messages: usize, max_bytes: usize) -> Ring {
        // Different for each server start: the start time in ns, and the process id.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ring {
            epoch: (nanos ^ u64::from(std::process::id()) << 40) >> 1,
            next_seq: 1,
            msgs: VecDeque::new(),
            bytes: 0,
            max_messages,
            max_bytes,
        }
    }

    /// Keeps `msg` (the oldest go past the bounds); its sequence number.
    pub fn push(&mut self, msg: Bytes) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += msg.len();
        self.msgs.push_back((seq, msg));
        while self.msgs.len() > self.max_messages || self.bytes > self.max_bytes {
            match self.msgs.pop_front() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
        seq
    }

    /// The messages from sequence `from` on that the ring holds, and how many before
    /// them (from `from`) it no longer holds.
    pub fn since(&self, from: u64) -> (Vec<(u64, Bytes)>, u64) {
        let first = self.msgs.front().map_or(self.next_seq, |(s, _)| *s);
        let missed = first.saturating_sub(from);
        let out = self
            .msgs
            .iter()
            .filter(|(s, _)| *s >= from)
            .cloned()
            .collect();
        (out, missed)
    }
}

/// A message framed for a resuming client: `<seq> <len> <msg>`.
pub fn seq_frame(seq: u64, msg: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(msg.len() + 24);
    b.extend_from_slice(format!("{seq} {} ", msg.len()).as_bytes());
    b.extend_from_slice(msg);
    b.freeze()
}

/// What a client's first bytes say: a hello `(epoch, last_seq)`, not a hello, or not
/// enough yet.
pub enum Hello {
    Resume(u64, u64),
    Other,
    Incomplete,
}

/// Reads a hello from the start of `buf`.
pub fn parse_hello(buf: &[u8]) -> Hello {
    let n = buf.len().min(MAGIC.len());
    if buf[..n] != MAGIC.as_bytes()[..n] {
        return Hello::Other;
    }
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > 64 {
            Hello::Other
        } else {
            Hello::Incomplete
        };
    };
    let line = String::from_utf8_lossy(&buf[MAGIC.len().min(lf)..lf]).into_owned();
    let mut words = line.split_whitespace().map(str::parse::<u64>);
    match (words.next(), words.next(), words.next()) {
        (Some(Ok(epoch)), Some(Ok(seq)), None) => Hello::Resume(epoch, seq),
        _ => Hello::Other,
    }
}
