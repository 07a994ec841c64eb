//! The relay's resume protocol, both ways: the server reading a client's first bytes as a
//! hello, and the client reading the server's answer and `<seq> <len> <msg>` frames, fed
//! in the chunks the input's first byte sizes. No panic, every frame within the limit,
//! never more bytes out than in, and an error ends the stream.
#![no_main]
use evnet::bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../examples/syslog_relay/replay.rs"]
mod replay;
#[allow(dead_code)]
#[path = "../../examples/syslog_relay/resume.rs"]
mod resume;

const MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let _ = replay::parse_hello(data);
    let Some((&chunk, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut r = resume::Resume::load(std::path::PathBuf::from("/nonexistent/evnet-fuzz"));
    let _ = r.hello();
    let mut pending = BytesMut::new();
    let mut out = 0usize;
    for piece in data.chunks(chunk) {
        pending.extend_from_slice(piece);
        if r.awaiting {
            match r.answer(&mut pending) {
                Ok(None) => continue,
                Ok(Some(_)) => {}
                Err(_) => return,
            }
        }
        loop {
            match resume::next_frame(&mut pending, MAX) {
                Ok(Some((_, frame))) => {
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
