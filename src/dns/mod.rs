//! An asynchronous DNS stub resolver on the loop (libevnet's lookup.h, after c-ares):
//! queries by record type with typed answers, CNAME chains followed, `/etc/resolv.conf`
//! and `/etc/hosts`, UDP with a fresh source port and a random id per query (only the
//! queried server's reply to the same question counts), TCP when an answer is truncated,
//! the next server on a timeout, SERVFAIL or REFUSED.
//!
//! Wire format by [`hickory_proto`] (re-exported as [`proto`]): answers are its typed
//! [`Record`]s.

mod answer;
mod cache;
mod compound;
mod config;
mod connect;
mod error;
mod lookup;
mod pending;
mod present;
mod resolver;
mod tcp;
pub(crate) mod wire;

pub use answer::Answer;
pub use compound::{Compound, ServiceHost};
pub use config::{Hosts, ResolverOptions};
pub use error::Error;
pub use hickory_proto as proto;
pub use hickory_proto::rr::{Name, RData, Record, RecordType};
pub use lookup::Lookup;
pub use present::{RDataText, TypeText, ZoneLine};
pub use resolver::Resolver;
