//! The stub resolver: queries in flight on the loop, each with its own UDP socket (a fresh
//! source port) and timer, TCP when an answer is truncated, the next server when one fails.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::str::FromStr;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::answer::Answer;
use super::cache::Cache;
use super::cookies::Cookies;
use super::dot::{DotSlot, Sent};
use super::follow::Follow;
use super::health::Health;
use super::lookup::Lookup;
use super::pending::{Pending, Transport};
use super::wire::{self, Step};
use super::{Error, Privacy, ResolverOptions};
use crate::ev::{Ctx, Remover, WatcherId};

pub(super) struct Inner<S: 'static> {
    /// The configuration new lookups take (each keeps the one it started with).
    pub(super) config: Rc<ResolverOptions>,
    pub(super) queries: HashMap<u64, Pending<S>>,
    pub(super) next_key: u64,
    pub(super) next_server: usize,
    pub(super) remover: Remover<S>,
    pub(super) cache: Cache,
    /// One slot per [`ResolverOptions::tls_servers`] entry.
    pub(super) dot: Vec<DotSlot<S>>,
    /// The health of each server: the plain ones by address, the TLS ones by index.
    pub(super) health: HashMap<SocketAddr, Health>,
    pub(super) tls_health: Vec<Health>,
    /// Each server's DNS cookies.
    pub(super) cookies: Cookies,
    /// The files the configuration is read from again when they change
    /// ([`Resolver::following`]); `None` for options given explicitly.
    pub(super) follow: Option<Follow>,
}

impl<S: 'static> Inner<S> {
    /// Takes a cancelled lookup out, its I/O stopped; the caller drops it (and the
    /// callback in it, which may own other lookups) once this borrow is released.
    pub(super) fn cancel(&mut self, key: u64) -> Option<Pending<S>> {
        let mut p = self.queries.remove(&key)?;
        self.quiesce(&mut p);
        Some(p)
    }

    /// Stops a query's I/O from outside any callback: its watchers are removed at the
    /// start of the next turn, then its socket is closed.
    fn quiesce(&mut self, p: &mut Pending<S>) {
        let mut ws: Vec<WatcherId> = p.timer.take().into_iter().collect();
        let sock = match std::mem::replace(&mut p.transport, Transport::Idle) {
            Transport::Dot {
                server,
                id,
                generation,
            } => {
                if let Some(slot) = self.dot.get_mut(server) {
                    slot.forget(id, generation);
                }
                None
            }
            Transport::Udp(s, w) => {
                ws.push(w);
                Some(s)
            }
            Transport::Tcp(stream) => {
                drop(stream); // closes it (its own watchers go the stream's way)
                None
            }
            Transport::Idle => None,
        };
        self.remover.remove_then_drop(&ws, sock);
    }
}

impl<S: 'static> Drop for Inner<S> {
    fn drop(&mut self) {
        // Dropping the resolver with queries in flight delivers nothing afterwards (a
        // lookup that a dropped callback owns finds the resolver gone, which is the same).
        let keys: Vec<u64> = self.queries.keys().copied().collect();
        for k in keys {
            drop(self.cancel(k));
        }
        // Its TLS connections close (their streams drop with the slots), and their idle
        // checks leave the loop, which they would otherwise keep running.
        for slot in &mut self.dot {
            if let Some(idle) = slot.close() {
                self.remover.remove(idle);
            }
        }
    }
}

/// An asynchronous DNS stub resolver on one loop: no threads, every socket an io watcher,
/// every timeout a loop timer. Cloning it gives another handle to the same resolver.
///
/// ```no_run
/// use evnet::dns::{ResolverOptions, RecordType, Resolver};
/// use evnet::ev::Loop;
///
/// let mut ev = Loop::<()>::new()?;
/// let dns = Resolver::new(&ev, ResolverOptions::system());
/// let lookup = dns.query(&mut ev, "example.com", RecordType::A, |_, cx, r| {
///     println!("{:?}", r.map(|a| a.addresses()));
///     cx.stop_loop();
/// });
/// ev.run(&mut ())?;
/// drop(lookup);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Resolver<S: 'static> {
    pub(super) inner: Rc<RefCell<Inner<S>>>,
}

impl<S: 'static> Clone for Resolver<S> {
    fn clone(&self) -> Resolver<S> {
        Resolver {
            inner: self.inner.clone(),
        }
    }
}

impl<S: 'static> std::fmt::Debug for Resolver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.inner.borrow();
        f.debug_struct("Resolver")
            .field("servers", &g.config.servers)
            .field("in_flight", &g.queries.len())
            .finish()
    }
}

impl<S: 'static> Resolver<S> {
    /// A resolver on `cx`'s loop with `config`.
    pub fn new(cx: &Ctx<S>, config: ResolverOptions) -> Resolver<S> {
        let cache_size = config.cache;
        let dot = config
            .tls_servers
            .iter()
            .map(|_| DotSlot::default())
            .collect();
        let health = HashMap::new();
        let tls_health = vec![Health::default(); config.tls_servers.len()];
        Resolver {
            inner: Rc::new(RefCell::new(Inner {
                config: Rc::new(config),
                queries: HashMap::new(),
                next_key: 0,
                next_server: 0,
                cache: Cache::new(cache_size),
                dot,
                health,
                tls_health,
                follow: None,
                cookies: Cookies::default(),
                remover: cx.remover(),
            })),
        }
    }

    /// The options in use.
    pub fn options(&self) -> ResolverOptions {
        ResolverOptions::clone(&self.inner.borrow().config)
    }

    /// Looks up `name`'s records of type `rtype`; `done` runs on the loop with the answer
    /// (never from inside this call). A and AAAA are answered from the hosts file first.
    pub fn query(
        &self,
        cx: &mut Ctx<S>,
        name: &str,
        rtype: RecordType,
        done: impl FnOnce(&mut S, &mut Ctx<S>, Result<Answer, Error>) + 'static,
    ) -> Lookup<S> {
        self.refresh();
        let (candidates, hosts) = {
            let g = self.inner.borrow();
            let names: Result<Vec<Name>, Error> = g
                .config
                .candidates(name)
                .iter()
                .map(|c| Name::from_str(c).map_err(|e| Error::BadName(format!("{name}: {e}"))))
                .collect();
            let hosts = match rtype {
                RecordType::A | RecordType::AAAA => g.config.hosts.lookup(name).to_vec(),
                _ => Vec::new(),
            };
            (names, hosts)
        };
        let candidates = match candidates {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => return self.fail_soon(cx, Error::BadName(name.into()), done),
            Err(e) => return self.fail_soon(cx, e, done),
        };
        let from_hosts: Vec<Record> = hosts
            .iter()
            .filter_map(|ip| match (ip, rtype) {
                (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
                (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(*v6))),
                _ => None,
            })
            .map(|d| Record::from_rdata(candidates[0].clone(), 0, d))
            .collect();
        if !from_hosts.is_empty() {
            let answer = Answer {
                name: candidates[0].clone(),
                cnames: Vec::new(),
                records: from_hosts,
                additionals: Vec::new(),
                authoritative: false,
                privacy: Privacy::Clear,
            };
            return self.finish_soon(cx, Ok(answer), done);
        }
        let pending = Pending::new(Box::new(done));
        let cancelled = pending.cancelled.clone();
        let key = {
            let mut g = self.inner.borrow_mut();
            let key = g.next_key;
            g.next_key += 1;
            let first = if g.config.rotate {
                g.next_server = g.next_server.wrapping_add(1);
                g.next_server
            } else {
                0
            };
            let qname = candidates[0].clone();
            let edns = g.config.edns;
            let config = g.config.clone();
            g.queries.insert(
                key,
                Pending {
                    candidates,
                    rtype,
                    wire_name: qname.clone(),
                    qname,
                    first,
                    edns,
                    config,
                    ..pending
                },
            );
            key
        };
        if let Err(e) = self.try_send(cx, key) {
            // Reported on the next turn, never from inside this call.
            let weak = Rc::downgrade(&self.inner);
            let t = cx.timer(Duration::ZERO, None, move |st, cx, _| {
                if let Some(inner) = weak.upgrade() {
                    if let Some(p) = inner.borrow_mut().queries.get_mut(&key) {
                        p.timer = None;
                    }
                    Resolver { inner }.finish(st, cx, key, Err(e.clone()));
                }
            });
            if let Some(p) = self.inner.borrow_mut().queries.get_mut(&key) {
                p.timer = Some(t);
            }
        }
        Lookup::new(key, Rc::downgrade(&self.inner), cancelled)
    }

    /// The PTR records of `addr` (`in-addr.arpa` / `ip6.arpa`), from the hosts file first.
    pub fn reverse(
        &self,
        cx: &mut Ctx<S>,
        addr: IpAddr,
        done: impl FnOnce(&mut S, &mut Ctx<S>, Result<Answer, Error>) + 'static,
    ) -> Lookup<S> {
        self.refresh();
        let arpa = Name::from(addr);
        let known = self
            .inner
            .borrow()
            .config
            .hosts
            .name_of(addr)
            .and_then(|n| Name::from_str(&format!("{n}.")).ok());
        if let Some(host) = known {
            let answer = Answer {
                name: arpa.clone(),
                cnames: Vec::new(),
                records: vec![Record::from_rdata(arpa, 0, RData::PTR(PTR(host)))],
                additionals: Vec::new(),
                authoritative: false,
                privacy: Privacy::Clear,
            };
            return self.finish_soon(cx, Ok(answer), done);
        }
        self.query(cx, &arpa.to_ascii(), RecordType::PTR, done)
    }

    fn fail_soon(
        &self,
        cx: &mut Ctx<S>,
        e: Error,
        done: impl FnOnce(&mut S, &mut Ctx<S>, Result<Answer, Error>) + 'static,
    ) -> Lookup<S> {
        self.finish_soon(cx, Err(e), done)
    }

    /// Delivers `result` on the next turn (a callback never runs inside `query`), unless
    /// the returned handle is dropped first.
    fn finish_soon(
        &self,
        cx: &mut Ctx<S>,
        result: Result<Answer, Error>,
        done: impl FnOnce(&mut S, &mut Ctx<S>, Result<Answer, Error>) + 'static,
    ) -> Lookup<S> {
        let key = {
            let mut g = self.inner.borrow_mut();
            let key = g.next_key;
            g.next_key += 1;
            key
        };
        let weak = Rc::downgrade(&self.inner);
        let slot = RefCell::new(Some(result));
        let t = cx.timer(Duration::ZERO, None, move |st, cx, _| {
            let Some(inner) = weak.upgrade() else { return };
            if let Some(p) = inner.borrow_mut().queries.get_mut(&key) {
                p.timer = None;
            }
            if let Some(r) = slot.borrow_mut().take() {
                Resolver { inner }.finish(st, cx, key, r);
            }
        });
        let pending = Pending {
            timer: Some(t),
            ..Pending::new(Box::new(done))
        };
        let cancelled = pending.cancelled.clone();
        self.inner.borrow_mut().queries.insert(key, pending);
        Lookup::new(key, Rc::downgrade(&self.inner), cancelled)
    }

    /// Sends the current question to the next server (over TLS to the TLS servers, else
    /// over UDP), or ends the lookup when that cannot be done.
    pub(super) fn send(&self, st: &mut S, cx: &mut Ctx<S>, key: u64) {
        if self.is_cancelled(key) {
            // Dropped where the resolver could not be reached: nothing more is asked.
            return self.finish(st, cx, key, Err(Error::Timeout));
        }
        if let Err(e) = self.try_send(cx, key) {
            self.finish(st, cx, key, Err(e));
        }
    }

    fn try_send(&self, cx: &mut Ctx<S>, key: u64) -> Result<(), Error> {
        let over_tls = {
            let mut g = self.inner.borrow_mut();
            let g = &mut *g;
            let Some(p) = g.queries.get_mut(&key) else {
                return Ok(());
            };
            p.stop_io(cx, &mut g.dot);
            if let Some((m, privacy)) = g.cache.get(&p.qname, p.rtype, std::time::Instant::now()) {
                // Answered from the cache, on the next turn (never from inside `query`).
                p.timer = Some(self.next_turn(cx, key, move |r, st, cx| {
                    r.on_message(st, cx, key, &m, privacy, false)
                }));
                return Ok(());
            }
            !g.config.tls_servers.is_empty() && !p.clear
        };
        if over_tls {
            match self.send_tls(cx, key)? {
                Sent::Tls => return Ok(()),
                Sent::Clear => {
                    if let Some(p) = self.inner.borrow_mut().queries.get_mut(&key) {
                        p.clear = true;
                    }
                }
            }
        }
        self.send_udp(cx, key)
    }

    /// A one-shot timer that runs `f` for lookup `key` on the next turn, after clearing the
    /// lookup's timer slot (which holds this timer's id).
    pub(super) fn next_turn(
        &self,
        cx: &mut Ctx<S>,
        key: u64,
        mut f: impl FnMut(&Resolver<S>, &mut S, &mut Ctx<S>) + 'static,
    ) -> WatcherId {
        let weak = Rc::downgrade(&self.inner);
        cx.timer(Duration::ZERO, None, move |st, cx, _| {
            if let Some(inner) = weak.upgrade() {
                if let Some(p) = inner.borrow_mut().queries.get_mut(&key) {
                    p.timer = None;
                }
                f(&Resolver { inner }, st, cx);
            }
        })
    }

    /// What a response to the current question, which came with `privacy`, means for the
    /// lookup; a `fresh` one (from the network, not the cache) is offered to the cache.
    pub(super) fn on_message(
        &self,
        st: &mut S,
        cx: &mut Ctx<S>,
        key: u64,
        m: &Message,
        privacy: Privacy,
        fresh: bool,
    ) {
        let step = {
            let mut g = self.inner.borrow_mut();
            let g = &mut *g;
            let limit = g.config.cname_limit;
            let Some(p) = g.queries.get_mut(&key) else {
                return;
            };
            let qname = p.qname.clone();
            if fresh {
                g.cache
                    .put(&qname, p.rtype, m, privacy, std::time::Instant::now());
            }
            let step = wire::step(m, &qname, p.rtype, &mut p.chain, limit);
            if fresh && !matches!(step, Step::NextServer(_)) {
                g.attempt_over(key, None);
            }
            step
        };
        match step {
            Step::Records(records) => {
                let answer = {
                    let g = self.inner.borrow();
                    let Some(p) = g.queries.get(&key) else { return };
                    Answer {
                        name: p.candidates[p.candidate].clone(),
                        cnames: p.chain.clone(),
                        records,
                        additionals: m.additionals.clone(),
                        authoritative: m.metadata.authoritative,
                        privacy,
                    }
                };
                self.finish(st, cx, key, Ok(answer));
            }
            Step::Follow(target) => {
                if let Some(p) = self.inner.borrow_mut().queries.get_mut(&key) {
                    p.qname = target;
                    p.tried = 0;
                    p.order.clear();
                }
                self.send(st, cx, key);
            }
            Step::NoData => self.next_candidate(st, cx, key, Error::NoData),
            Step::Fail(Error::NxDomain) => self.next_candidate(st, cx, key, Error::NxDomain),
            Step::Fail(e) => self.finish(st, cx, key, Err(e)),
            Step::NextServer(e) => self.server_failed(st, cx, key, e),
            Step::RetryWithoutEdns => {
                if let Some(p) = self.inner.borrow_mut().queries.get_mut(&key) {
                    p.edns = false;
                }
                self.send(st, cx, key);
            }
        }
    }

    /// The name was not found (or had no such records) as this candidate: try the next
    /// search candidate, or report.
    fn next_candidate(&self, st: &mut S, cx: &mut Ctx<S>, key: u64, e: Error) {
        let report = {
            let mut g = self.inner.borrow_mut();
            let Some(p) = g.queries.get_mut(&key) else {
                return;
            };
            p.saw_nodata |= e == Error::NoData;
            if p.chain.is_empty() && p.candidate + 1 < p.candidates.len() {
                p.candidate += 1;
                p.qname = p.candidates[p.candidate].clone();
                p.tried = 0;
                p.order.clear();
                None
            } else if p.saw_nodata {
                Some(Error::NoData)
            } else {
                Some(e)
            }
        };
        match report {
            None => self.send(st, cx, key),
            Some(e) => self.finish(st, cx, key, Err(e)),
        }
    }

    /// This server failed (timeout, SERVFAIL, REFUSED, a broken TCP answer): the next
    /// one, until every server has had `attempts` tries.
    pub(super) fn server_failed(&self, st: &mut S, cx: &mut Ctx<S>, key: u64, e: Error) {
        let give_up = {
            let mut g = self.inner.borrow_mut();
            let g = &mut *g;
            g.attempt_over(key, Some(e == Error::Timeout));
            if e == Error::Timeout {
                // A server that stopped sending cookies is not held to them forever.
                if let Some(server) = g.queries.get(&key).map(|p| p.server) {
                    g.cookies.forget_server_cookie(server);
                }
            }
            let Some(p) = g.queries.get_mut(&key) else {
                return;
            };
            let n = if !p.config.tls_servers.is_empty() && !p.clear {
                p.config.tls_servers.len()
            } else {
                p.config.servers.len()
            };
            let budget = n * p.config.attempts.max(1) as usize;
            p.tried += 1;
            // A timeout does not hide a clearer answer from an earlier server.
            if p.last_error.is_none() || e != Error::Timeout {
                p.last_error = Some(e);
            }
            (p.tried >= budget).then(|| p.last_error.clone().unwrap_or(Error::Timeout))
        };
        match give_up {
            // Like glibc, a search candidate every server failed with SERVFAIL (or, for an
            // authoritative server outside its zones, REFUSED) moves on to the next
            // candidate; a timeout ends the lookup.
            Some(e @ (Error::ServFail | Error::Refused)) => self.next_candidate(st, cx, key, e),
            Some(e) => self.finish(st, cx, key, Err(e)),
            None => self.send(st, cx, key),
        }
    }

    fn is_cancelled(&self, key: u64) -> bool {
        let g = self.inner.borrow();
        g.queries.get(&key).is_some_and(|p| p.cancelled.get())
    }

    /// Ends a lookup: its I/O stops, then its callback runs (with nothing borrowed), unless
    /// its [`Lookup`] was dropped meanwhile.
    fn finish(&self, st: &mut S, cx: &mut Ctx<S>, key: u64, result: Result<Answer, Error>) {
        let p = {
            let mut g = self.inner.borrow_mut();
            let g = &mut *g;
            let Some(mut p) = g.queries.remove(&key) else {
                return;
            };
            p.stop_io(cx, &mut g.dot);
            p
        };
        let Pending {
            done, cancelled, ..
        } = p;
        if let Some(done) = done.filter(|_| !cancelled.get()) {
            done(st, cx, result);
        }
    }

    /// Lookups in flight: started, not yet delivered, not cancelled.
    pub fn in_flight(&self) -> usize {
        let g = self.inner.borrow();
        g.queries.values().filter(|p| !p.cancelled.get()).count()
    }
}
