//! The optional answer cache: whole responses per question, kept for their TTL (the
//! smallest in the answer; for NXDOMAIN and NODATA, the SOA's negative TTL, RFC 2308),
//! bounded in entries (the oldest goes first).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::Privacy;

type Key = (String, RecordType);

struct Entry {
    msg: Message,
    /// How it travelled: a cached answer reports it again.
    privacy: Privacy,
    stored: Instant,
    expires: Instant,
}

pub(crate) struct Cache {
    max: usize,
    map: HashMap<Key, Entry>,
    order: VecDeque<Key>,
}

fn key(name: &Name, rtype: RecordType) -> Key {
    (name.to_lowercase().to_ascii(), rtype)
}

/// How long `m` may be kept, if at all.
fn lifetime(m: &Message) -> Option<Duration> {
    let negative = match m.metadata.response_code {
        ResponseCode::NoError if !m.answers.is_empty() => false,
        ResponseCode::NoError | ResponseCode::NXDomain => true,
        _ => return None,
    };
    let ttl = if negative {
        m.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })?
    } else {
        m.answers.iter().map(|r| r.ttl).min()?
    };
    (ttl > 0).then(|| Duration::from_secs(u64::from(ttl)))
}

impl Cache {
    /// A cache of at most `max` responses (0: off).
    pub(crate) fn new(max: usize) -> Cache {
        Cache {
            max,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The cached response to `name`/`rtype`, its TTLs reduced by the time it was kept.
    pub(crate) fn get(
        &mut self,
        name: &Name,
        rtype: RecordType,
        now: Instant,
    ) -> Option<(Message, Privacy)> {
        if self.max == 0 {
            return None;
        }
        let k = key(name, rtype);
        let e = self.map.get(&k)?;
        if now >= e.expires {
            self.map.remove(&k);
            return None;
        }
        let age = now
            .duration_since(e.stored)
            .as_secs()
            .min(u64::from(u32::MAX)) as u32;
        let mut m = e.msg.clone();
        for r in m.answers.iter_mut().chain(m.authorities.iter_mut()) {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some((m, e.privacy))
    }

    /// Keeps `m`, the response to `name`/`rtype` that came with `privacy`, if its TTLs allow.
    pub(crate) fn put(
        &mut self,
        name: &Name,
        rtype: RecordType,
        m: &Message,
        privacy: Privacy,
        now: Instant,
    ) {
        if self.max == 0 || m.metadata.truncation {
            return;
        }
        let Some(life) = lifetime(m) else { return };
        let k = key(name, rtype);
        if self.map.contains_key(&k) {
            self.order.retain(|x| *x != k);
        }
        while self.map.len() >= self.max {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(k.clone());
        self.map.insert(
            k,
            Entry {
                msg: m.clone(),
                privacy,
                stored: now,
                expires: now + life,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::Record;
    use std::str::FromStr;

    fn n(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn msg(answers: Vec<Record>, rcode: ResponseCode, soa_min: Option<u32>) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_query(Query::query(n("a.test."), RecordType::A));
        m.answers = answers;
        m.metadata.response_code = rcode;
        if let Some(min) = soa_min {
            let soa = SOA::new(n("ns.test."), n("h.test."), 1, 3600, 600, 86400, min);
            m.authorities
                .push(Record::from_rdata(n("test."), 300, RData::SOA(soa)));
        }
        m
    }

    #[test]
    fn kept_for_the_smallest_ttl_with_ttls_counting_down() {
        let mut c = Cache::new(10);
        let t0 = Instant::now();
        let a = |ttl| Record::from_rdata(n("a.test."), ttl, RData::A(A::new(192, 0, 2, 1)));
        c.put(
            &n("A.Test."),
            RecordType::A,
            &msg(vec![a(30), a(10)], ResponseCode::NoError, None),
            Privacy::Authenticated,
            t0,
        );
        let got = c
            .get(&n("a.test."), RecordType::A, t0 + Duration::from_secs(4))
            .unwrap();
        assert_eq!(got.0.answers[1].ttl, 6);
        assert_eq!(got.1, Privacy::Authenticated, "the cache keeps how it came");
        assert!(c
            .get(&n("a.test."), RecordType::A, t0 + Duration::from_secs(10))
            .is_none());
        assert!(c.get(&n("a.test."), RecordType::AAAA, t0).is_none());
    }

    #[test]
    fn negative_answers_use_the_soa_minimum_and_failures_are_not_kept() {
        let mut c = Cache::new(10);
        let t0 = Instant::now();
        c.put(
            &n("a.test."),
            RecordType::A,
            &msg(vec![], ResponseCode::NXDomain, Some(5)),
            Privacy::Clear,
            t0,
        );
        assert!(c
            .get(&n("a.test."), RecordType::A, t0 + Duration::from_secs(4))
            .map(|(m, _)| m)
            .is_some());
        assert!(c
            .get(&n("a.test."), RecordType::A, t0 + Duration::from_secs(5))
            .is_none());
        c.put(
            &n("b.test."),
            RecordType::A,
            &msg(vec![], ResponseCode::NXDomain, None),
            Privacy::Clear,
            t0,
        );
        c.put(
            &n("c.test."),
            RecordType::A,
            &msg(vec![], ResponseCode::ServFail, Some(60)),
            Privacy::Clear,
            t0,
        );
        assert_eq!(c.len(), 0, "no SOA, or SERVFAIL: not kept");
    }

    #[test]
    fn bounded_oldest_out_first() {
        let mut c = Cache::new(2);
        let t0 = Instant::now();
        let m = msg(
            vec![Record::from_rdata(
                n("a.test."),
                60,
                RData::A(A::new(192, 0, 2, 1)),
            )],
            ResponseCode::NoError,
            None,
        );
        for name in ["x.test.", "y.test.", "z.test."] {
            c.put(&n(name), RecordType::A, &m, Privacy::Clear, t0);
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(&n("x.test."), RecordType::A, t0).is_none());
        assert!(c.get(&n("z.test."), RecordType::A, t0).is_some());
    }
}
