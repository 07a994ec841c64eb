//! The relay server's counters, written as one line (every `--stats-interval` seconds and
//! on SIGUSR1) and, with `--zmq-stats`, published as JSON on the ZeroMQ tap.
//!
//! | counter | what it counts |
//! |---|---|
//! | `in` | syslog datagrams read from the UDP socket |
//! | `out` | messages written to TLS clients, in all and per client (`peer=n`) |
//! | `queued` | messages waiting in the clients' queues now |
//! | `dropped slow` | oldest messages dropped for clients too slow for the flow (`--slow drop`) |
//! | `dropped loops` | messages a loop a whole channel behind could not take (`--threads`) |
//! | `dropped tap` | messages not published because the tap's queue was full |
//! | `replayed` | messages sent again from the replay ring to clients that reconnected (and, with a ring, to new clients for the moments before they were served) |
//! | `disconnected slow` | clients dropped for being too slow (`--slow disconnect`) |
//! | `clients` | TLS clients connected now |
//! | `connections` | TLS handshakes completed since the start (reconnects included) |
//! | `refused` | connections refused (client limit) or whose handshake failed |
//!
//! The JSON has the same names (`out` an object of `total` and `clients`), and goes out as
//! a two-frame message, `evnet-relay-stats` then the JSON, so a subscriber can subscribe
//! to that topic alone; the relayed messages are single frames.

use std::fmt::Write as _;

/// The server's counters (one loop's, with `--threads`).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub received: u64,
    pub slow_dropped: u64,
    pub loop_dropped: u64,
    pub tap_dropped: u64,
    pub replayed: u64,
    pub slow_disconnected: u64,
    pub connections: u64,
    pub refused: u64,
}

/// One client, as the stats show it.
pub struct ClientStats {
    pub peer: String,
    pub sent: u64,
    pub queued: usize,
}

/// The topic the JSON is published under.
pub const TOPIC: &str = "evnet-relay-stats";

impl Stats {
    /// The one-line summary.
    pub fn line(&self, clients: &[ClientStats]) -> String {
        let (out, queued) = totals(clients);
        let mut per = String::new();
        for c in clients {
            let _ = write!(
                per,
                "{}{}={}",
                if per.is_empty() { "" } else { " " },
                c.peer,
                c.sent
            );
        }
        format!(
            "stats: in {}, out {out} ({per}), queued {queued}, dropped slow {} loops {} tap {}, \
             replayed {}, disconnected slow {}, clients {}, connections {}, refused {}",
            self.received,
            self.slow_dropped,
            self.loop_dropped,
            self.tap_dropped,
            self.replayed,
            self.slow_disconnected,
            clients.len(),
            self.connections,
            self.refused
        )
    }

    /// The same as JSON.
    pub fn json(&self, clients: &[ClientStats]) -> String {
        let (out, queued) = totals(clients);
        let per: Vec<String> = clients
            .iter()
            .map(|c| format!("{}:{}", super::out::json_str(&c.peer), c.sent))
            .collect();
        format!(
            "{{\"in\":{},\"out\":{{\"total\":{out},\"clients\":{{{}}}}},\"queued\":{queued},\
             \"dropped\":{{\"slow\":{},\"loops\":{},\"tap\":{}}},\"replayed\":{},\"disconnected_slow\":{},\
             \"clients\":{},\"connections\":{},\"refused\":{}}}",
            self.received,
            per.join(","),
            self.slow_dropped,
            self.loop_dropped,
            self.tap_dropped,
            self.replayed,
            self.slow_disconnected,
            clients.len(),
            self.connections,
            self.refused
        )
    }
}

/// Messages written to the clients, and queued for them.
fn totals(clients: &[ClientStats]) -> (u64, usize) {
    let out = clients.iter().map(|c| c.sent).sum();
    let queued = clients.iter().map(|c| c.queued).sum();
    (out, queued)
}

/// Whether a ZeroMQ endpoint stays on this machine: `ipc://`, `inproc://`, or TCP on a
/// loopback address.
pub fn is_local_endpoint(ep: &str) -> bool {
    let Some(rest) = ep.strip_prefix("tcp://") else {
        return ep.starts_with("ipc://") || ep.starts_with("inproc://");
    };
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    let host = host.trim_matches(['[', ']']);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
