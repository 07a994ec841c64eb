//! The syslog relay's RFC 6587 octet-counted framing, fed in the chunks the input's first
//! byte sizes: every frame within the limit, never more bytes out than in, and an error
//! ends the stream.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[path = "../../examples/util/octet.rs"]
mod octet;

const MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut pending = BytesMut::new();
    let mut out = 0usize;
    for piece in data.chunks(chunk) {
        pending.extend_from_slice(piece);
        loop {
            match octet::next_frame(&mut pending, MAX) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= MAX);
                    out += frame.len();
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    assert!(out <= data.len());
});
