//! An asynchronous DNS stub resolver on the loop (libevnet's lookup.h, after c-ares):
//! queries by record type with typed answers, CNAME chains followed, `/etc/resolv.conf`
//! and `/etc/hosts`, UDP with a fresh source port and a random id per query (only the
//! queried server's reply to the same question counts), TCP when an answer is truncated,
//! the next server on a timeout, SERVFAIL or REFUSED; or DNS over TLS (RFC 7858, strict
//! or opportunistic per RFC 8310) to [`ResolverOptions::tls_servers`], one pipelined
//! connection per server.
//!
//! # What each failure costs
//!
//! Every query goes to one server at a time, in [`ResolverOptions::servers`] order (or
//! spread over them with `rotate`); each server gets [`ResolverOptions::attempts`] tries
//! in all, and the lookup ends when one answers or every try has failed.
//!
//! The resolver remembers how each server did ([`Resolver::servers`]), as c-ares does: a
//! server that failed is tried after the ones that did not, until it answers again; once
//! per [`ResolverOptions::server_retry_delay`] one query probes it first. So a dead server
//! at the top of `resolv.conf` costs its timeout once, then once per retry delay, not on
//! every lookup. A server's timeout is four of its smoothed round trips, within
//! [`ResolverOptions::min_timeout`] and [`ResolverOptions::timeout`].
//!
//! | the server... | costs the lookup | then |
//! |---|---|---|
//! | answers SERVFAIL or REFUSED | its round trip | the next server |
//! | cannot be reached: ICMP port, host or network unreachable, or a send the kernel refuses | a round trip to the kernel (on loopback, well under a millisecond) | the next server |
//! | is silent, or its packets are lost | the full [`ResolverOptions::timeout`] | the next server |
//! | answers with something that is not ours (source, id, question) | nothing: it is ignored and the wait goes on | — |
//! | sends a truncated answer | its round trip | the same question over TCP to that server |
//!
//! When every try has failed, the lookup reports the clearest failure seen (SERVFAIL,
//! REFUSED or the refusal's [`std::io::Error`]) rather than [`Error::Timeout`]. So with
//! servers `[a dead address, a working one]`, a lookup costs a timeout only when the dead
//! one drops packets silently; a closed port costs next to nothing, as with glibc and
//! c-ares.
//!
//! Wire format by [`hickory_proto`] (re-exported as [`proto`]): answers are its typed
//! [`Record`]s.

mod answer;
mod cache;
mod compound;
mod config;
mod connect;
pub(crate) mod cookies;
mod dot;
mod error;
mod follow;
mod health;
mod lookup;
mod pending;
mod present;
mod random;
mod resolver;
mod servers;
mod tcp;
mod tls_server;
mod udp;
pub(crate) mod wire;

pub use answer::Answer;
pub use compound::{Compound, ServiceHost};
pub use config::{Hosts, ResolverOptions};
pub use error::Error;
pub use follow::SystemFiles;
pub use hickory_proto as proto;
pub use hickory_proto::rr::{Name, RData, Record, RecordType};
pub use lookup::Lookup;
pub use present::{RDataText, TypeText, ZoneLine};
pub use resolver::Resolver;
pub use servers::ServerState;
pub use tls_server::{Privacy, TlsProfile, TlsServer};
