//! The client's side of the resume protocol (`syslog_relay/replay.rs` has the protocol):
//! the last sequence forwarded, kept on disk in `--state FILE` (written to a temporary
//! file and renamed over it, so a crash leaves the old or the new, never half), the hello,
//! the server's answer, and the `<seq> <len> <msg>` frames.
//!
//! The sequence is written after each message is forwarded: a kill between the two
//! repeats that one message after the restart (at least once); nothing is skipped.

use std::path::PathBuf;

use evnet::bytes::{Buf, BytesMut};

/// The resume protocol's first words (the server's `replay::MAGIC`).
const MAGIC: &[u8] = b"EVNET-RELAY 1 ";
/// The longest sequence number or length field.
const MAX_DIGITS: usize = 20;

/// Where the client is in the stream.
pub struct Resume {
    path: PathBuf,
    pub epoch: u64,
    pub last: u64,
    /// The server's answer has not come yet.
    pub awaiting: bool,
}

/// What the start of the stream was.
pub enum Answer {
    /// The server resumes; this many messages were beyond its ring.
    Resumed(u64),
    /// Not the protocol: a server without a ring (what came is plain messages).
    Plain,
}

impl Resume {
    /// The state kept in `path` (none yet: epoch 0, sequence 0).
    pub fn load(path: PathBuf) -> Resume {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let mut words = text
            .split_whitespace()
            .map(|w| w.parse::<u64>().unwrap_or(0));
        let (epoch, last) = (words.next().unwrap_or(0), words.next().unwrap_or(0));
        Resume {
            path,
            epoch,
            last,
            awaiting: false,
        }
    }

    /// The hello for a new session; the answer is awaited from now on.
    pub fn hello(&mut self) -> String {
        self.awaiting = true;
        format!("EVNET-RELAY 1 {} {}\n", self.epoch, self.last)
    }

    /// Takes the server's answer off the front of `pending`, if it is all there.
    pub fn answer(&mut self, pending: &mut BytesMut) -> Result<Option<Answer>, &'static str> {
        let n = pending.len().min(MAGIC.len());
        if pending[..n] != MAGIC[..n] {
            self.awaiting = false;
            return Ok(Some(Answer::Plain));
        }
        let Some(lf) = pending.iter().position(|&b| b == b'\n') else {
            return if pending.len() > 64 {
                Err("the resume answer is too long")
            } else {
                Ok(None)
            };
        };
        let line = String::from_utf8_lossy(&pending[MAGIC.len().min(lf)..lf]).into_owned();
        pending.advance(lf + 1);
        let mut w = line.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(epoch)), Some(Ok(missed))) = (w.next(), w.next()) else {
            return Err("a malformed resume answer");
        };
        if epoch != self.epoch {
            // Another server start: its sequence numbers begin again.
            self.epoch = epoch;
            self.last = 0;
        }
        self.awaiting = false;
        Ok(Some(Answer::Resumed(missed)))
    }

    /// Records that message `seq` was forwarded (0 is a notice: not recorded), on disk.
    pub fn record(&mut self, seq: u64) -> std::io::Result<()> {
        if seq == 0 {
            return Ok(());
        }
        self.last = seq;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("{} {}\n", self.epoch, seq))?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Whether `seq` was forwarded already (a replay that overlaps).
    pub fn seen(&self, seq: u64) -> bool {
        seq != 0 && seq <= self.last
    }
}

/// The next `<seq> <len> <msg>` frame in `pending`, taken out of it.
pub fn next_frame(
    pending: &mut BytesMut,
    max: usize,
) -> Result<Option<(u64, BytesMut)>, &'static str> {
    let Some(sp1) = pending.iter().take(MAX_DIGITS + 1).position(|&b| b == b' ') else {
        return if pending.len() > MAX_DIGITS {
            Err("sequence number too long")
        } else {
            Ok(None)
        };
    };
    let seq = number(&pending[..sp1]).ok_or("bad sequence number")?;
    let rest = &pending[sp1 + 1..];
    let Some(sp2) = rest.iter().take(MAX_DIGITS + 1).position(|&b| b == b' ') else {
        return if rest.len() > MAX_DIGITS {
            Err("length too long")
        } else {
            Ok(None)
        };
    };
    let len = number(&rest[..sp2])
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= max)
        .ok_or("bad length")?;
    let start = sp1 + 1 + sp2 + 1;
    if pending.len() < start + len {
        return Ok(None);
    }
    pending.advance(start);
    Ok(Some((seq, pending.split_to(len))))
}

fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
