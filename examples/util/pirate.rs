//! The wire protocol of the `broker` and `worker` examples: the reliable request-reply
//! pattern of the ZeroMQ guide, chapter 4 ("Paranoid Pirate"), with request ids so the
//! broker can retry and answer each request exactly once.
//!
//! Worker → broker (DEALER → ROUTER): `[READY]`, `[HEARTBEAT]`, `[REPLY, id, body]`.
//! Broker → worker: `[REQUEST, id, body]`, `[HEARTBEAT]`.
//! Client → broker (DEALER or REQ → ROUTER): `[tag.., body]`, answered `[tag.., reply]`.
#![allow(dead_code)]

pub const READY: &[u8] = b"READY";
pub const HEARTBEAT: &[u8] = b"HEARTBEAT";
pub const REQUEST: &[u8] = b"REQUEST";
pub const REPLY: &[u8] = b"REPLY";

/// A peer missing this many heartbeats in a row is taken for dead.
pub const LIVENESS: u32 = 3;

/// The work itself: idempotent, so a retried request gets the same answer.
pub fn answer(body: &[u8]) -> Vec<u8> {
    let mut out = b"done: ".to_vec();
    out.extend(body.iter().rev());
    out
}
