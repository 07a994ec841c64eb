//! What the loop's signal fd gives, decoded as signalfd records and as self-pipe bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| evnet::fuzzing::signal_bytes(data));
