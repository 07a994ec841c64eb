//! RFC 6587 octet counting (`MSG-LEN SP SYSLOG-MSG`, as RFC 5425 uses over TLS): cutting
//! whole messages out of what a peer sent. Shared by the relay client and the fuzz target
//! `relay_octet`.

use bytes::{Buf, BytesMut};

/// Digits an octet count may have (the longest message fits in 7).
pub const MAX_DIGITS: usize = 7;

/// The next whole message in `pending`, taken out of it; `Ok(None)` while it is
/// incomplete. A count that is not a number, has a leading zero (RFC 6587:
/// `NONZERO-DIGIT *DIGIT`), or is over `max` is an error: the stream cannot be resynchronised.
pub fn next_frame(pending: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, &'static str> {
    let Some(sp) = pending.iter().take(MAX_DIGITS + 1).position(|&b| b == b' ') else {
        if pending.len() > MAX_DIGITS {
            return Err("octet count too long");
        }
        if !pending.iter().all(u8::is_ascii_digit) {
            return Err("bad octet count");
        }
        return Ok(None);
    };
    let digits = pending.get(..sp).ok_or("bad octet count")?;
    if digits.first().is_none_or(|&d| d == b'0') || !digits.iter().all(u8::is_ascii_digit) {
        return Err("bad octet count");
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n <= max)
        .ok_or("bad octet count")?;
    if pending.len() < sp + 1 + len {
        return Ok(None);
    }
    pending.advance(sp + 1);
    Ok(Some(pending.split_to(len)))
}
