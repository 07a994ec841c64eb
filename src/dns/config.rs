//! Resolver configuration: from `/etc/resolv.conf` and `/etc/hosts` (the system's), or
//! given explicitly.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{TlsProfile, TlsServer};

/// How a [`Resolver`](super::Resolver) asks: which servers, for which names, how long and
/// how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverOptions {
    /// Name servers, tried in order (or in rotation with `rotate`).
    pub servers: Vec<SocketAddr>,
    /// Domains appended to names with fewer than `ndots` dots (resolv.conf's `search`).
    pub search: Vec<String>,
    /// A name with at least this many dots is tried as is first. 0 is allowed: every
    /// name is tried as is first.
    pub ndots: u8,
    /// The longest wait for one server's answer. Each server gets a timeout of its own,
    /// four of its smoothed round trips within [`min_timeout`](Self::min_timeout) and
    /// this; until it has answered once, this.
    pub timeout: Duration,
    /// The shortest per-server timeout. Default 250 ms.
    pub min_timeout: Duration,
    /// A server that failed is tried after the others; once this long has passed, one
    /// query probes it (goes to it first), and an answer brings it back. Default 5 s
    /// (c-ares's `server_retry_delay`).
    pub server_retry_delay: Duration,
    /// Rounds over the server list before giving up; at least one round is made (0 is
    /// taken as 1).
    pub attempts: u32,
    /// Spread queries over the servers (resolv.conf's `options rotate`).
    pub rotate: bool,
    /// Send EDNS0 (a 1232-byte UDP payload); a server that answers FORMERR is asked again
    /// without it.
    pub edns: bool,
    /// Longest CNAME chain followed.
    pub cname_limit: usize,
    /// Names answered from a hosts file before asking a server (A, AAAA and PTR).
    pub hosts: Hosts,
    /// Responses kept for their TTL (negative answers for the SOA's), at most this many;
    /// 0 (the default) keeps none.
    pub cache: usize,
    /// Randomize the case of the name's letters in each query and require the answer to
    /// echo it exactly (0x20): more bits for a forger to guess. Off by default (a few
    /// servers do not echo the case).
    pub case_randomization: bool,
    /// Send DNS cookies with UDP queries (RFC 7873; needs `edns`) and check them in
    /// answers: a forger must also guess 64 random bits. Servers without cookie support
    /// answer as before. Default on.
    pub cookies: bool,
    /// DNS-over-TLS servers (RFC 7858). When there are any, every query goes to them
    /// (in order, or in rotation), over one reused, pipelined connection each;
    /// [`servers`](Self::servers) is then asked only as the opportunistic profile's
    /// clear-text fallback.
    pub tls_servers: Vec<TlsServer>,
    /// Whether a TLS server must authenticate (the default) or TLS is used when it works.
    pub tls_profile: TlsProfile,
    /// A TLS connection that has carried nothing for this long is closed (the next query
    /// makes a new one, resuming the session). Default 10 s.
    pub tls_idle_timeout: Duration,
}

impl Default for ResolverOptions {
    /// No servers (add some, or use [`ResolverOptions::system`]); resolv.conf's defaults otherwise.
    fn default() -> ResolverOptions {
        ResolverOptions {
            servers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            min_timeout: Duration::from_millis(250),
            server_retry_delay: Duration::from_secs(5),
            attempts: 2,
            rotate: false,
            edns: true,
            cname_limit: 8,
            hosts: Hosts::default(),
            cache: 0,
            case_randomization: false,
            cookies: true,
            tls_servers: Vec::new(),
            tls_profile: TlsProfile::Strict,
            tls_idle_timeout: Duration::from_secs(10),
        }
    }
}

impl ResolverOptions {
    /// Asks `servers` only: no search list, no hosts file.
    pub fn with_servers(servers: &[SocketAddr]) -> ResolverOptions {
        ResolverOptions {
            servers: servers.to_vec(),
            ..ResolverOptions::default()
        }
    }

    /// The system's configuration as it is now: `/etc/resolv.conf` and `/etc/hosts` (a
    /// missing file gives the defaults: the local server on port 53, no hosts). To start
    /// from and change; a resolver that should follow the files as they change is
    /// [`Resolver::system`](super::Resolver::system).
    pub fn system() -> ResolverOptions {
        super::follow::read(&super::SystemFiles::default())
    }

    /// Parses resolv.conf text (unknown lines are skipped, as the C library does).
    pub fn from_resolv_conf(text: &[u8]) -> ResolverOptions {
        let (rc, _errors) = resolv_conf::Config::parse_with_errors(text);
        let mut servers: Vec<SocketAddr> = rc
            .nameservers
            .iter()
            .map(|ip| SocketAddr::new(IpAddr::from(ip.clone()), 53))
            .collect();
        if servers.is_empty() {
            servers.push(SocketAddr::from(([127, 0, 0, 1], 53)));
        }
        let search = match rc.get_search() {
            Some(s) => s.clone(),
            None => rc.get_domain().into_iter().cloned().collect(),
        };
        ResolverOptions {
            servers,
            search,
            ndots: rc.ndots.min(15) as u8,
            timeout: Duration::from_secs(u64::from(rc.timeout.clamp(1, 30))),
            attempts: rc.attempts.clamp(1, 5),
            rotate: rc.rotate,
            ..ResolverOptions::default()
        }
    }

    /// The names to try for `name`, in order: as is first when it has at least `ndots`
    /// dots (or ends with a dot, which also means no search), then with each search domain.
    pub(crate) fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(abs) = name.strip_suffix('.') {
            return vec![format!("{abs}.")];
        }
        let dots = name.bytes().filter(|&b| b == b'.').count();
        let searched = self
            .search
            .iter()
            .map(|d| format!("{name}.{}.", d.trim_end_matches('.')));
        let bare = format!("{name}.");
        if dots >= usize::from(self.ndots) {
            std::iter::once(bare).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(bare)).collect()
        }
    }
}

/// A hosts file: names to addresses, and addresses back to names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosts {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_addr: HashMap<IpAddr, String>,
}

impl Hosts {
    /// Parses hosts-file text: `address name [aliases...]`, `#` comments.
    pub fn parse(text: &str) -> Hosts {
        let mut h = Hosts::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(Ok(addr)) = words.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for (i, name) in words.enumerate() {
                let key = name.trim_end_matches('.').to_ascii_lowercase();
                if i == 0 {
                    h.by_addr.entry(addr).or_insert_with(|| key.clone());
                }
                let list = h.by_name.entry(key).or_default();
                if !list.contains(&addr) {
                    list.push(addr);
                }
            }
        }
        h
    }

    /// The addresses listed for `name` (any case, with or without the final dot).
    pub fn lookup(&self, name: &str) -> &[IpAddr] {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        self.by_name.get(&key).map_or(&[], Vec::as_slice)
    }

    /// The first name listed for `addr`.
    pub fn name_of(&self, addr: IpAddr) -> Option<&str> {
        self.by_addr.get(&addr).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_servers_search_and_options() {
        let c = ResolverOptions::from_resolv_conf(
            b"nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch a.test b.test\n\
              options ndots:0 timeout:2 attempts:3 rotate\n",
        );
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.servers[1].port(), 53);
        assert_eq!(c.search, ["a.test", "b.test"]);
        assert_eq!(c.ndots, 0);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.attempts, 3);
        assert!(c.rotate);
        // ndots:0 — every name is tried as is first (c-ares #734).
        assert_eq!(c.candidates("www"), ["www.", "www.a.test.", "www.b.test."]);
    }

    #[test]
    fn candidates_follow_ndots_and_an_absolute_name_is_not_searched() {
        let mut c = ResolverOptions::with_servers(&[]);
        c.search = vec!["corp.test".into()];
        assert_eq!(c.candidates("www"), ["www.corp.test.", "www."]);
        assert_eq!(c.candidates("a.b"), ["a.b.", "a.b.corp.test."]);
        assert_eq!(c.candidates("abs.test."), ["abs.test."]);
        let empty = ResolverOptions::from_resolv_conf(b"");
        assert_eq!(empty.servers, [SocketAddr::from(([127, 0, 0, 1], 53))]);
    }

    #[test]
    fn hosts_names_aliases_comments_and_reverse() {
        let h = Hosts::parse(
            "127.0.0.1 localhost\n::1 localhost ip6-localhost # comment\n\
             # 10.0.0.1 ignored\n192.0.2.7 Web.Example.test web\nbogus line\n",
        );
        assert_eq!(h.lookup("LOCALHOST").len(), 2);
        assert_eq!(
            h.lookup("web.example.test."),
            ["192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(h.lookup("web").len(), 1);
        assert!(h.lookup("ignored").is_empty());
        assert_eq!(
            h.name_of("192.0.2.7".parse().unwrap()),
            Some("web.example.test")
        );
    }
}
