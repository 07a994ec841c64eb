//! Compound lookups (libevnet's): SRV and MX records each followed by their hosts'
//! addresses, in the order to try them, and A+AAAA together for connecting.

use std::cell::RefCell;
use std::net::IpAddr;
use std::rc::{Rc, Weak};
use std::str::FromStr;

use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::answer::Answer;
use super::lookup::Lookup;
use super::resolver::Resolver;
use super::Error;
use crate::ev::Ctx;

/// One SRV or MX target, with its addresses, in the order to try it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHost {
    /// The SRV or MX record (for an implicit MX, a made-up `0 <domain>` record).
    pub record: Record,
    /// The host it names.
    pub host: Name,
    /// The SRV priority, or the MX preference (0 for an implicit MX): lower is tried
    /// first.
    pub priority: u16,
    /// The SRV weight (the share of picks among equal priorities, RFC 2782); 0 for MX.
    pub weight: u16,
    /// The SRV port; 25 for MX.
    pub port: u16,
    /// The host's addresses, IPv6 and IPv4 interleaved (empty when its lookup failed).
    pub addresses: Vec<IpAddr>,
    /// Why `addresses` is empty, if it is.
    pub error: Option<Error>,
}

type DoneTargets<S> = Box<dyn FnOnce(&mut S, &mut Ctx<S>, Result<Vec<ServiceHost>, Error>)>;
type DoneIps<S> = Box<dyn FnOnce(&mut S, &mut Ctx<S>, Result<Vec<IpAddr>, Error>)>;

/// A compound lookup in flight; dropping it cancels every query it started (its callback
/// never runs), from anywhere, as dropping a [`Lookup`] does.
#[must_use = "dropping a Compound cancels it"]
pub struct Compound<S: 'static> {
    state: Rc<RefCell<State<S>>>,
}

impl<S: 'static> std::fmt::Debug for Compound<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compound").finish_non_exhaustive()
    }
}

impl<S: 'static> Drop for Compound<S> {
    fn drop(&mut self) {
        // Everything out under a short borrow, dropped after it: the callbacks may own
        // other lookups and compounds, whose drops borrow in turn. The state is never
        // borrowed while application code runs, so the borrow cannot fail.
        let taken = self.state.try_borrow_mut().ok().map(|mut g| {
            (
                g.done_targets.take(),
                g.done_ips.take(),
                std::mem::take(&mut g.lookups),
                std::mem::take(&mut g.children),
            )
        });
        debug_assert!(
            taken.is_some(),
            "a compound's state is borrowed in its drop"
        );
        drop(taken);
    }
}

struct State<S: 'static> {
    targets: Vec<ServiceHost>,
    /// Address lookups still out.
    waiting: usize,
    lookups: Vec<Lookup<S>>,
    /// Address lookups of targets.
    children: Vec<Compound<S>>,
    done_targets: Option<DoneTargets<S>>,
    done_ips: Option<DoneIps<S>>,
    /// lookup_ip: each family's result.
    v6: Option<Result<Answer, Error>>,
    v4: Option<Result<Answer, Error>>,
}

impl<S: 'static> State<S> {
    fn new() -> Rc<RefCell<State<S>>> {
        Rc::new(RefCell::new(State {
            targets: Vec::new(),
            waiting: 0,
            lookups: Vec::new(),
            children: Vec::new(),
            done_targets: None,
            done_ips: None,
            v6: None,
            v4: None,
        }))
    }
}

/// RFC 2782's order: by priority, and within a priority by weighted random selection
/// (weight-0 records first in the running sum, so they are chosen only when the random
/// number is 0, "a very small chance"). `random(n)` returns a uniform number in `0..=n`.
/// Returns indexes into `records` (priority, weight).
pub(crate) fn rfc2782_order(
    records: &[(u16, u16)],
    mut random: impl FnMut(u32) -> u32,
) -> Vec<usize> {
    let mut by_priority: Vec<usize> = (0..records.len()).collect();
    by_priority.sort_by_key(|&i| records[i].0);
    let mut out = Vec::with_capacity(records.len());
    let mut start = 0;
    while start < by_priority.len() {
        let prio = records[by_priority[start]].0;
        let end = by_priority[start..]
            .iter()
            .position(|&i| records[i].0 != prio)
            .map_or(by_priority.len(), |p| start + p);
        // Zero weights first, as the RFC says; each round removes one record, so this ends.
        let mut group: Vec<usize> = by_priority[start..end].to_vec();
        group.sort_by_key(|&i| records[i].1 != 0);
        while !group.is_empty() {
            let sum: u32 = group.iter().map(|&i| u32::from(records[i].1)).sum();
            let pick = random(sum);
            let mut running = 0u32;
            let chosen = group
                .iter()
                .position(|&i| {
                    running += u32::from(records[i].1);
                    running >= pick
                })
                .unwrap_or(group.len() - 1);
            out.push(group.remove(chosen));
        }
        start = end;
    }
    out
}

/// A uniform number in `0..=n` from the OS CSPRNG (rejection sampling: no modulo bias).
pub(crate) fn uniform(n: u32) -> u32 {
    let Some(range) = n.checked_add(1) else {
        return random_u32();
    };
    let zone = u32::MAX - (u32::MAX % range);
    loop {
        let r = random_u32();
        if r < zone {
            return r % range;
        }
    }
}

fn random_u32() -> u32 {
    super::random::u32()
}

/// IPv6 and IPv4 alternated, IPv6 first (RFC 8305's order for connecting).
fn interleave(v6: Vec<IpAddr>, v4: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// The addresses `additionals` carries for `host` (owner equal case-insensitively).
fn glue(additionals: &[Record], host: &Name) -> (Vec<IpAddr>, Vec<IpAddr>) {
    let (mut v6, mut v4) = (Vec::new(), Vec::new());
    for r in additionals.iter().filter(|r| r.name == *host) {
        match &r.data {
            RData::AAAA(a) => v6.push(IpAddr::V6(a.0)),
            RData::A(a) => v4.push(IpAddr::V4(a.0)),
            _ => {}
        }
    }
    (v6, v4)
}

impl<S: 'static> Resolver<S> {
    /// A and AAAA of `host` in parallel; the addresses IPv6/IPv4 interleaved for
    /// connecting. Fails only when both fail (with NXDOMAIN if either said so).
    pub fn lookup_ip(
        &self,
        cx: &mut Ctx<S>,
        host: &str,
        done: impl FnOnce(&mut S, &mut Ctx<S>, Result<Vec<IpAddr>, Error>) + 'static,
    ) -> Compound<S> {
        let state = State::new();
        state.borrow_mut().done_ips = Some(Box::new(done));
        for rtype in [RecordType::AAAA, RecordType::A] {
            let weak = Rc::downgrade(&state);
            let l = self.query(cx, host, rtype, move |st, cx, r| {
                ip_half(&weak, rtype, r, st, cx)
            });
            state.borrow_mut().lookups.push(l);
        }
        Compound { state }
    }

    /// SRV records of `name` (e.g. `_sip._tcp.example.com`) in RFC 2782 order, each with
    /// its target's addresses: from the additional section when the server sent them, by
    /// a lookup otherwise. A target with addresses of one family only in the additional
    /// section gets the other looked up, unless the answer is authoritative (an
    /// authoritative server sends all it has, space permitting). A single SRV with target `.` is
    /// [`Error::ServiceUnavailable`].
    pub fn srv_hosts(
        &self,
        cx: &mut Ctx<S>,
        name: &str,
        done: impl FnOnce(&mut S, &mut Ctx<S>, Result<Vec<ServiceHost>, Error>) + 'static,
    ) -> Compound<S> {
        self.targets_of(cx, name, RecordType::SRV, done, |r| {
            r.and_then(|a| {
                let srv: Vec<(Record, u16, u16, u16, Name)> = a
                    .records
                    .iter()
                    .filter_map(|rec| match &rec.data {
                        RData::SRV(s) => {
                            Some((rec.clone(), s.priority, s.weight, s.port, s.target.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                if srv.len() == 1 && srv[0].4.is_root() {
                    return Err(Error::ServiceUnavailable);
                }
                let keys: Vec<(u16, u16)> = srv.iter().map(|s| (s.1, s.2)).collect();
                let order = rfc2782_order(&keys, uniform);
                Ok(order
                    .into_iter()
                    .map(|i| {
                        let s = &srv[i];
                        let (v6, v4) = glue(&a.additionals, &s.4);
                        ServiceHost {
                            record: s.0.clone(),
                            host: s.4.clone(),
                            priority: s.1,
                            weight: s.2,
                            port: s.3,
                            addresses: interleave(v6, v4),
                            error: None,
                        }
                    })
                    .collect())
            })
        })
    }

    /// MX records of `domain` by preference (equal preferences in random order), each
    /// with its exchange's addresses. No MX: the domain itself (RFC 5321 §5.1); a null MX
    /// (`0 .`, RFC 7505) is [`Error::NoMail`].
    pub fn mx_hosts(
        &self,
        cx: &mut Ctx<S>,
        domain: &str,
        done: impl FnOnce(&mut S, &mut Ctx<S>, Result<Vec<ServiceHost>, Error>) + 'static,
    ) -> Compound<S> {
        let owned = domain.to_owned();
        self.targets_of(cx, domain, RecordType::MX, done, move |r| {
            let domain = owned;
            match r {
                Ok(a) => {
                    let mx: Vec<(Record, u16, Name)> = a
                        .records
                        .iter()
                        .filter_map(|rec| match &rec.data {
                            RData::MX(m) => Some((rec.clone(), m.preference, m.exchange.clone())),
                            _ => None,
                        })
                        .collect();
                    if mx.iter().any(|m| m.2.is_root()) {
                        Err(Error::NoMail)
                    } else {
                        // Preference order; equal preferences shuffled (weights all equal).
                        let keys: Vec<(u16, u16)> = mx.iter().map(|m| (m.1, 1)).collect();
                        Ok(rfc2782_order(&keys, uniform)
                            .into_iter()
                            .map(|i| {
                                let (v6, v4) = glue(&a.additionals, &mx[i].2);
                                ServiceHost {
                                    record: mx[i].0.clone(),
                                    host: mx[i].2.clone(),
                                    priority: mx[i].1,
                                    weight: 0,
                                    port: 25,
                                    addresses: interleave(v6, v4),
                                    error: None,
                                }
                            })
                            .collect())
                    }
                }
                // No MX records: the domain is its own mail host (implicit MX).
                Err(Error::NoData) => {
                    match Name::from_str(&format!("{}.", domain.trim_end_matches('.'))) {
                        Ok(d) => Ok(vec![implicit_mx(&d)]),
                        Err(e) => Err(Error::BadName(e.to_string())),
                    }
                }
                Err(e) => Err(e),
            }
        })
    }

    /// One query whose answer `to_targets` turns into targets, then their missing
    /// addresses, then `done`.
    fn targets_of(
        &self,
        cx: &mut Ctx<S>,
        name: &str,
        rtype: RecordType,
        done: impl FnOnce(&mut S, &mut Ctx<S>, Result<Vec<ServiceHost>, Error>) + 'static,
        to_targets: impl FnOnce(Result<Answer, Error>) -> Result<Vec<ServiceHost>, Error> + 'static,
    ) -> Compound<S> {
        let state = State::new();
        state.borrow_mut().done_targets = Some(Box::new(done));
        let weak = Rc::downgrade(&state);
        let me = self.clone();
        let l = self.query(cx, name, rtype, move |st, cx, r| {
            let authoritative = r.as_ref().is_ok_and(|a| a.authoritative);
            me.resolve_targets(&weak, to_targets(r), authoritative, st, cx);
        });
        state.borrow_mut().lookups.push(l);
        Compound { state }
    }

    /// Looks up the addresses the targets lack, then delivers them all. From an
    /// `authoritative` answer a target's glue is complete: an authoritative server adds
    /// every address record it holds for a target (RFC 2782, RFC 1034 §4.3.2), so a family
    /// it left out does not exist there, and is not asked for.
    fn resolve_targets(
        &self,
        weak: &Weak<RefCell<State<S>>>,
        targets: Result<Vec<ServiceHost>, Error>,
        authoritative: bool,
        st: &mut S,
        cx: &mut Ctx<S>,
    ) {
        let Some(state) = weak.upgrade() else { return };
        let targets = match targets {
            Ok(t) => t,
            Err(e) => {
                let done = state.borrow_mut().done_targets.take();
                if let Some(done) = done {
                    done(st, cx, Err(e));
                }
                return;
            }
        };
        // What each target lacks: both families (no glue at all), or one of them.
        let missing: Vec<(usize, String, Option<RecordType>)> = targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let has6 = t.addresses.iter().any(IpAddr::is_ipv6);
                let has4 = t.addresses.iter().any(IpAddr::is_ipv4);
                let host = t.host.to_ascii();
                match (has6, has4) {
                    (false, false) => Some((i, host, None)),
                    _ if authoritative => None,
                    (true, false) => Some((i, host, Some(RecordType::A))),
                    (false, true) => Some((i, host, Some(RecordType::AAAA))),
                    (true, true) => None,
                }
            })
            .collect();
        {
            let mut g = state.borrow_mut();
            g.targets = targets;
            g.waiting = missing.len();
        }
        if missing.is_empty() {
            return finish_targets(&state, st, cx);
        }
        for (i, host, family) in missing {
            let w = Rc::downgrade(&state);
            let arrived = move |st: &mut S, cx: &mut Ctx<S>, r: Result<Vec<IpAddr>, Error>| {
                let Some(state) = w.upgrade() else { return };
                let all_in = {
                    let mut g = state.borrow_mut();
                    if let Some(t) = g.targets.get_mut(i) {
                        match r {
                            Ok(more) => {
                                let (mut v6, mut v4): (Vec<IpAddr>, Vec<IpAddr>) =
                                    t.addresses.iter().partition(|a| a.is_ipv6());
                                for a in more {
                                    if a.is_ipv6() {
                                        v6.push(a)
                                    } else {
                                        v4.push(a)
                                    }
                                }
                                t.addresses = interleave(v6, v4);
                            }
                            // One family missing and not found: the other one stands.
                            Err(_) if !t.addresses.is_empty() => {}
                            Err(e) => t.error = Some(e),
                        }
                    }
                    g.waiting = g.waiting.saturating_sub(1);
                    g.waiting == 0
                };
                if all_in {
                    finish_targets(&state, st, cx);
                }
            };
            // The address lookup lives as long as the compound one.
            match family {
                None => {
                    let c = self.lookup_ip(cx, &host, arrived);
                    state.borrow_mut().children.push(c);
                }
                Some(rtype) => {
                    let l = self.query(cx, &host, rtype, move |st, cx, r| {
                        arrived(st, cx, r.map(|a| a.addresses()))
                    });
                    state.borrow_mut().lookups.push(l);
                }
            }
        }
    }
}

fn implicit_mx(domain: &Name) -> ServiceHost {
    let rdata = RData::MX(hickory_proto::rr::rdata::MX::new(0, domain.clone()));
    ServiceHost {
        record: Record::from_rdata(domain.clone(), 0, rdata),
        host: domain.clone(),
        priority: 0,
        weight: 0,
        port: 25,
        addresses: Vec::new(),
        error: None,
    }
}

fn finish_targets<S: 'static>(state: &Rc<RefCell<State<S>>>, st: &mut S, cx: &mut Ctx<S>) {
    let (done, targets) = {
        let mut g = state.borrow_mut();
        (g.done_targets.take(), std::mem::take(&mut g.targets))
    };
    if let Some(done) = done {
        done(st, cx, Ok(targets));
    }
}

/// One family of a `lookup_ip` is in; with both in, deliver.
fn ip_half<S: 'static>(
    weak: &Weak<RefCell<State<S>>>,
    rtype: RecordType,
    r: Result<Answer, Error>,
    st: &mut S,
    cx: &mut Ctx<S>,
) {
    let Some(state) = weak.upgrade() else { return };
    let ready = {
        let mut g = state.borrow_mut();
        if rtype == RecordType::AAAA {
            g.v6 = Some(r);
        } else {
            g.v4 = Some(r);
        }
        match (g.v6.take(), g.v4.take()) {
            (Some(a), Some(b)) => Some((a, b)),
            (a, b) => {
                g.v6 = a;
                g.v4 = b;
                None
            }
        }
    };
    let Some((v6, v4)) = ready else { return };
    let result = match (v6, v4) {
        (Err(a), Err(b)) => Err(if a == Error::NxDomain || b == Error::NxDomain {
            Error::NxDomain
        } else if matches!(a, Error::NoData) {
            b
        } else {
            a
        }),
        (a, b) => {
            let ips = |r: Result<Answer, Error>| r.map(|a| a.addresses()).unwrap_or_default();
            Ok(interleave(ips(a), ips(b)))
        }
    };
    let done = state.borrow_mut().done_ips.take();
    if let Some(done) = done {
        done(st, cx, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_first_and_every_record_exactly_once() {
        let recs = [(20, 0), (10, 60), (10, 20), (10, 0), (30, 5)];
        let mut n = 0u32;
        let order = rfc2782_order(&recs, |max| {
            n = n.wrapping_mul(1_103_515_245).wrapping_add(12345);
            n % (max + 1)
        });
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3, 4]);
        let prios: Vec<u16> = order.iter().map(|&i| recs[i].0).collect();
        assert_eq!(prios, [10, 10, 10, 20, 30]);
    }

    #[test]
    fn weights_are_honoured_in_distribution() {
        // 60 : 20 : 0 within one priority; 30,000 draws from the real CSPRNG.
        let recs = [(10, 60), (10, 20), (10, 0)];
        let mut first = [0u32; 3];
        let rounds = 30_000;
        for _ in 0..rounds {
            first[rfc2782_order(&recs, uniform)[0]] += 1;
        }
        // P(first) = 60/81, 20/81, 1/81 (the weight-0 record wins only on a draw of 0).
        let expect = [60.0 / 81.0, 20.0 / 81.0, 1.0 / 81.0];
        let chi2: f64 = (0..3)
            .map(|i| {
                let e = expect[i] * rounds as f64;
                (f64::from(first[i]) - e).powi(2) / e
            })
            .sum();
        // 2 degrees of freedom: 27.6 is the 1 - 1e-6 quantile (a fair sampler fails once
        // in a million runs; wire order or a modulo-biased pick fails every time).
        assert!(chi2 < 27.6, "chi2 {chi2}, counts {first:?}");
    }

    #[test]
    fn uniform_covers_its_range_inclusive() {
        let mut seen = [false; 4];
        for _ in 0..1000 {
            seen[uniform(3) as usize] = true;
        }
        assert_eq!(seen, [true; 4]);
        assert_eq!(uniform(0), 0);
        let _ = uniform(u32::MAX);
    }

    #[test]
    fn families_interleave_ipv6_first() {
        let v6: Vec<IpAddr> = vec!["::1".parse().unwrap(), "::2".parse().unwrap()];
        let v4: Vec<IpAddr> = vec!["1.1.1.1".parse().unwrap()];
        let got = interleave(v6, v4);
        assert_eq!(got[0], "::1".parse::<IpAddr>().unwrap());
        assert_eq!(got[1], "1.1.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(got[2], "::2".parse::<IpAddr>().unwrap());
    }
}
