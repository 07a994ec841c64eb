//! A name server's UDP answer, through the resolver's check (id, question, source) and its
//! CNAME-chain step.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| evnet::fuzzing::dns_response(data));
