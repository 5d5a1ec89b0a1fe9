//! The legs of one message inside a node: the copies of it that `tcpdump -i any` recorded on
//! other interfaces (before and after kube-proxy's DNAT), which the duplicate filter drops.
//!
//! A dropped copy is still not a second lookup, but where it was seen says where the packet
//! went: a query copied to a CoreDNS pod's address left the node's NAT, an answer copied
//! with the Service address as its source was un-NAT'd towards the pod. The duplicate filter
//! records each dropped copy on the message it kept (`Message::legs`), which the matcher
//! holds too; the matcher reads them when it closes the query (an answer's copies come
//! microseconds after it, the close a second later).
//!
//! Memory: a message without copies (every message of a capture on one interface) pays one
//! word; a message's legs are at most `MAX_LEGS`, further copies only counted.
//!
//! The same box carries the overlay tunnel a message was found in (`Legs::tunnel`), the
//! other rare fact about where a message was seen: a message pays nothing more for it.

use std::cell::Cell;
use std::net::IpAddr;

use crate::decode::tunnel::Tunnel;
use crate::types::Time;

/// Legs remembered per message: a packet crosses a handful of interfaces in a node (the
/// pod's veth, a bridge, the uplink, the server pod's veth).
pub const MAX_LEGS: usize = 4;

/// One dropped copy of a message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leg {
    pub frame: u64,
    pub time: Time,
    /// Capture interface of the copy.
    pub iface: u32,
    /// The server-side address of the copy: the destination of a query's copy, the source
    /// of a response's copy.
    pub addr: IpAddr,
}

/// A message's legs and how many more copies there were.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LegList {
    pub legs: Vec<Leg>,
    pub overflow: u32,
    /// The outermost tunnel the message was found in, if any (not a leg).
    pub tunnel: Option<Tunnel>,
}

/// The legs of a shared message, added after it was shared: one word while there are none.
#[derive(Default)]
pub struct Legs(Cell<Option<Box<LegList>>>);

impl Legs {
    /// No legs yet, for a message found in `tunnel` (when Some).
    #[inline]
    pub fn found_in(tunnel: Option<Tunnel>) -> Legs {
        match tunnel {
            None => Legs::default(),
            Some(t) => Legs(Cell::new(Some(Box::new(LegList {
                tunnel: Some(t),
                ..Default::default()
            })))),
        }
    }

    /// The outermost tunnel the message was found in.
    pub fn tunnel(&self) -> Option<Tunnel> {
        let list = self.0.take();
        let t = list.as_deref().and_then(|l| l.tunnel);
        self.0.set(list);
        t
    }
    /// Add `leg`; past `MAX_LEGS` count it only. Returns false when it was only counted.
    pub fn push(&self, leg: Leg) -> bool {
        let mut list = self.0.take().unwrap_or_default();
        let kept = list.legs.len() < MAX_LEGS;
        if kept {
            list.legs.push(leg);
        } else {
            list.overflow = list.overflow.saturating_add(1);
        }
        self.0.set(Some(list));
        kept
    }

    /// A copy of the legs (empty when there are none).
    pub fn get(&self) -> LegList {
        let list = self.0.take();
        let out = list.as_deref().cloned().unwrap_or_default();
        self.0.set(list);
        out
    }

    /// Whether any leg (kept or counted) was recorded.
    pub fn any(&self) -> bool {
        let list = self.0.take();
        let any = list
            .as_deref()
            .is_some_and(|l| !l.legs.is_empty() || l.overflow > 0);
        self.0.set(list);
        any
    }

    /// Whether `f` holds for some kept leg.
    pub fn find(&self, f: impl Fn(&Leg) -> bool) -> Option<Leg> {
        let list = self.0.take();
        let found = list
            .as_deref()
            .and_then(|l| l.legs.iter().copied().find(|g| f(g)));
        self.0.set(list);
        found
    }
}

impl Clone for Legs {
    fn clone(&self) -> Legs {
        let list = self.0.take();
        let copy = list.clone();
        self.0.set(list);
        Legs(Cell::new(copy))
    }
}

impl PartialEq for Legs {
    fn eq(&self, other: &Legs) -> bool {
        self.get() == other.get()
    }
}

impl std::fmt::Debug for Legs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.get(), f)
    }
}

/// What the legs say about an answer the client was sent (`fault`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegFault {
    /// The query's copy before the DNAT is there and none after it, and no answer came:
    /// the packet died inside the node (conntrack insert race, a drop in FORWARD).
    LostInNode,
    /// The answer came from the DNAT target and no copy with the queried address as its
    /// source reached the pod's side.
    ReplyNotDelivered,
    /// The answer's source is neither the queried address nor its DNAT target: the
    /// client's socket drops it.
    UnexpectedSource,
}

impl LegFault {
    pub fn as_str(self) -> &'static str {
        match self {
            LegFault::LostInNode => "lost_in_node",
            LegFault::ReplyNotDelivered => "reply_not_delivered",
            LegFault::UnexpectedSource => "unexpected_source",
        }
    }
}

/// Whether an answer (source `answer_src`, legs `answer_legs`) reached the client that
/// asked `queried` (its query's legs `query_legs`): None when it did, else why not.
///
/// Delivered: the answer, or one of its copies, has the queried address as its source.
/// Else, when the query went on to the answer's source through the DNAT (a leg of the
/// query or of any other query to the same address, `is_target`), the un-NAT'd copy never
/// reached the pod's side; otherwise the source is one the client never asked.
pub fn answer_fault(
    queried: IpAddr,
    query_legs: &Legs,
    answer_src: IpAddr,
    answer_legs: &Legs,
    is_target: impl Fn(IpAddr) -> bool,
) -> Option<LegFault> {
    if answer_src == queried || answer_legs.find(|l| l.addr == queried).is_some() {
        return None;
    }
    let targets = |a: IpAddr| query_legs.find(|l| l.addr == a).is_some() || is_target(a);
    let from_target = targets(answer_src) || answer_legs.find(|l| targets(l.addr)).is_some();
    Some(if from_target {
        LegFault::ReplyNotDelivered
    } else {
        LegFault::UnexpectedSource
    })
}

/// DNAT pairs seen (Service address, target address), each once, at most `MAX_PAIRS`.
#[derive(Clone, Debug, Default)]
pub struct DnatPairs {
    pub pairs: Vec<(IpAddr, IpAddr)>,
}

/// A cluster has a few DNS addresses and replicas; a hostile capture could show any number.
pub const MAX_PAIRS: usize = 256;

impl DnatPairs {
    pub fn add(&mut self, service: IpAddr, target: IpAddr) {
        if service != target
            && self.pairs.len() < MAX_PAIRS
            && !self.pairs.contains(&(service, target))
        {
            self.pairs.push((service, target));
        }
    }

    pub fn is_service(&self, a: IpAddr) -> bool {
        self.pairs.iter().any(|&(s, _)| s == a)
    }

    pub fn is_target_of(&self, service: IpAddr, a: IpAddr) -> bool {
        self.pairs.contains(&(service, a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn legs(addrs: &[&str]) -> Legs {
        let l = Legs::default();
        for (i, a) in addrs.iter().enumerate() {
            l.push(Leg {
                frame: i as u64 + 10,
                time: 1.0,
                iface: 2,
                addr: ip(a),
            });
        }
        l
    }

    #[test]
    fn legs_are_bounded_and_counted() {
        let l = legs(&["10.0.0.1"; 6]);
        let got = l.get();
        assert_eq!(got.legs.len(), MAX_LEGS);
        assert_eq!(got.overflow, 2);
        assert!(l.any());
        assert!(!Legs::default().any());
        assert_eq!(l.clone(), l);
        assert_eq!(std::mem::size_of::<Legs>(), 8);
    }

    #[test]
    fn delivered_when_a_copy_has_the_queried_source() {
        let s = ip("10.96.0.10");
        let t = ip("10.244.1.5");
        let none = |_| false;
        // Un-NAT'd copy on the pod's side.
        assert_eq!(
            answer_fault(s, &legs(&["10.244.1.5"]), t, &legs(&["10.96.0.10"]), none),
            None
        );
        // One interface, same address.
        assert_eq!(
            answer_fault(s, &Legs::default(), s, &Legs::default(), none),
            None
        );
        // From the DNAT target only: not delivered.
        assert_eq!(
            answer_fault(s, &legs(&["10.244.1.5"]), t, &Legs::default(), none),
            Some(LegFault::ReplyNotDelivered)
        );
        // The target known from other queries.
        assert_eq!(
            answer_fault(s, &Legs::default(), t, &Legs::default(), |a| a == t),
            Some(LegFault::ReplyNotDelivered)
        );
        // From an address the query never went to.
        assert_eq!(
            answer_fault(
                s,
                &legs(&["10.244.1.5"]),
                ip("10.244.1.9"),
                &Legs::default(),
                none
            ),
            Some(LegFault::UnexpectedSource)
        );
        assert_eq!(
            answer_fault(s, &Legs::default(), ip("192.0.2.1"), &Legs::default(), none),
            Some(LegFault::UnexpectedSource)
        );
    }

    #[test]
    fn pairs_are_kept_once() {
        let mut p = DnatPairs::default();
        p.add(ip("10.96.0.10"), ip("10.244.1.5"));
        p.add(ip("10.96.0.10"), ip("10.244.1.5"));
        p.add(ip("10.96.0.10"), ip("10.96.0.10"));
        assert_eq!(p.pairs.len(), 1);
        assert!(p.is_service(ip("10.96.0.10")));
        assert!(p.is_target_of(ip("10.96.0.10"), ip("10.244.1.5")));
        assert!(!p.is_service(ip("10.244.1.5")));
    }
}
