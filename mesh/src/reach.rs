//! Reachability: whether unsolicited traffic reaches this node, proven by a
//! real inbound probe, and the NAT class the node currently reports.
//!
//! The rule: a handshake that a peer *started* (its message 1 reached us)
//! from an IP address this node had never sent a datagram to, and that then
//! completed (message 3 authenticated the peer), proves that strangers can
//! reach us. Nothing else does: a public reflexive address reported by a
//! peer never marks the node open, and a spoofed message 1 never completes.
//! Supernode promotion and NAT classification build on it.

use crate::path::Path;
use crate::Time;
use moss_telemetry::NatType;
use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// How many destination IPs are remembered as "contacted". Beyond it the
/// oldest are forgotten, which can only make a later probe from that IP look
/// unsolicited when the NAT has long closed its pinhole anyway.
const CONTACTED_CAP: usize = 4096;
/// How many unsolicited half-open handshakes are tracked at once (the
/// handshake table's own bound keeps this far lower in practice).
const PENDING_CAP: usize = 1024;
/// How many addresses a first message 1 came from are remembered.
const FIRST_FROM_CAP: usize = 64;

/// This node's reachability state (see the module doc).
#[derive(Debug, Default)]
pub struct Reachability {
    contacted: HashSet<IpAddr>,
    order: VecDeque<IpAddr>,
    /// Exact destinations (IP and port), bounded the same way: a
    /// port-dependent filter opens for exactly these.
    contacted_addrs: HashSet<SocketAddr>,
    addr_order: VecDeque<SocketAddr>,
    unsolicited: HashSet<u32>,
    /// Addresses whose message 1 arrived before we had ever sent to that
    /// exact address, and when (what test III's proof needs; bounded,
    /// oldest out).
    first_from: VecDeque<(SocketAddr, Time)>,
    confirmed: Option<Confirmation>,
    nat_type: NatType,
}

/// The inbound probe that proved the node reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmation {
    /// When the unsolicited handshake completed.
    pub at: Time,
    /// The address it came from.
    pub from: SocketAddr,
}

impl Reachability {
    /// Records that a datagram goes to `to` (any kind: a dial, a reply,
    /// data). Host-owned channels carry no IP and are not tracked.
    pub(crate) fn note_sent(&mut self, to: Path) {
        let Some(addr) = to.udp() else {
            return;
        };
        if self.contacted_addrs.insert(addr) {
            self.addr_order.push_back(addr);
            if self.addr_order.len() > CONTACTED_CAP {
                if let Some(old) = self.addr_order.pop_front() {
                    self.contacted_addrs.remove(&old);
                }
            }
        }
        let ip = addr.ip();
        if self.contacted.insert(ip) {
            self.order.push_back(ip);
            if self.order.len() > CONTACTED_CAP {
                if let Some(old) = self.order.pop_front() {
                    self.contacted.remove(&old);
                }
            }
        }
    }

    /// Whether this node has sent anything to `ip` (within the bound).
    pub fn contacted(&self, ip: IpAddr) -> bool {
        self.contacted.contains(&ip)
    }

    /// Whether this node has sent anything to exactly `addr` (within the
    /// bound).
    pub fn contacted_addr(&self, addr: SocketAddr) -> bool {
        self.contacted_addrs.contains(&addr)
    }

    /// A message 1 arrived from `from` at `now` and got half-open slot
    /// `idx`: it is unsolicited when nothing was ever sent to that IP.
    /// Call before the reply is sent.
    pub(crate) fn on_init(&mut self, from: Path, idx: u32, now: Time) {
        let Some(addr) = from.udp() else {
            return;
        };
        if !self.contacted(addr.ip()) && self.unsolicited.len() < PENDING_CAP {
            self.unsolicited.insert(idx);
        }
        if self.contacted_addr(addr) {
            return;
        }
        if let Some(e) = self.first_from.iter_mut().find(|e| e.0 == addr) {
            e.1 = now;
            return;
        }
        if self.first_from.len() >= FIRST_FROM_CAP {
            self.first_from.pop_front();
        }
        self.first_from.push_back((addr, now));
    }

    /// Whether a message 1 from `addr` reached us at `since` or later,
    /// before we had sent to that exact address (its IP may have been sent
    /// to): a port-dependent filter would have kept it out.
    pub fn unsolicited_from(&self, addr: SocketAddr, since: Time) -> bool {
        self.first_from
            .iter()
            .any(|&(a, at)| a == addr && at >= since)
    }

    /// Responder slot `idx` left the half-open state: established (`from`
    /// is the peer's address) or failed (`from` is `None`). An unsolicited
    /// handshake that established confirms reachability.
    pub(crate) fn on_settled(&mut self, idx: u32, from: Option<SocketAddr>, now: Time) {
        if self.unsolicited.remove(&idx) {
            if let (Some(from), None) = (from, self.confirmed) {
                self.confirmed = Some(Confirmation { at: now, from });
            }
        }
    }

    /// The probe that proved unsolicited traffic reaches this node, if any.
    pub fn confirmation(&self) -> Option<Confirmation> {
        self.confirmed
    }

    /// Whether a real inbound probe proved the node reachable.
    pub fn inbound_confirmed(&self) -> bool {
        self.confirmed.is_some()
    }

    /// The NAT class the node reports (`unknown` until the classifier
    /// gives its verdict).
    pub fn nat_type(&self) -> NatType {
        self.nat_type
    }

    /// Sets the class the classifier concluded.
    pub(crate) fn set_nat_type(&mut self, t: NatType) {
        self.nat_type = t;
    }

    /// Our observed address changed (roaming, a new lease): the old proof
    /// says nothing about the new address, so it is forgotten along with
    /// the class. The contacted set stays: those IPs were still sent to.
    pub(crate) fn reset(&mut self) {
        self.confirmed = None;
        self.unsolicited.clear();
        self.nat_type = NatType::Unknown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn p(s: &str) -> Path {
        Path::Udp(s.parse().unwrap())
    }

    #[test]
    fn a_message_1_from_an_address_sent_to_first_is_not_unsolicited_from_it() {
        let mut r = Reachability::default();
        r.note_sent(p("203.0.113.7:9001"));
        r.on_init(p("203.0.113.7:9000"), 1, Duration::ZERO);
        let t0 = Duration::ZERO;
        assert!(r.unsolicited_from("203.0.113.7:9000".parse().unwrap(), t0));
        // Not from a probe that began after it.
        assert!(!r.unsolicited_from("203.0.113.7:9000".parse().unwrap(), Duration::from_secs(1)));
        r.note_sent(p("203.0.113.8:9000"));
        r.on_init(p("203.0.113.8:9000"), 2, Duration::ZERO);
        assert!(!r.unsolicited_from("203.0.113.8:9000".parse().unwrap(), t0));
    }

    #[test]
    fn an_unsolicited_handshake_that_completes_confirms() {
        let mut r = Reachability::default();
        r.on_init(p("203.0.113.7:9000"), 5, Duration::ZERO);
        assert!(!r.inbound_confirmed(), "message 1 alone proves nothing");
        r.on_settled(
            5,
            Some("203.0.113.7:9000".parse().unwrap()),
            Duration::from_secs(3),
        );
        let c = r.confirmation().unwrap();
        assert_eq!(c.at, Duration::from_secs(3));
        assert_eq!(c.from, "203.0.113.7:9000".parse().unwrap());
    }

    #[test]
    fn a_reply_to_our_own_dial_is_not_a_probe() {
        let mut r = Reachability::default();
        r.note_sent(p("203.0.113.7:9000"));
        assert!(r.contacted_addr("203.0.113.7:9000".parse().unwrap()));
        assert!(!r.contacted_addr("203.0.113.7:9001".parse().unwrap()));
        // The same IP at another port (a port-restricted NAT's pinhole is
        // per IP for restricted cones): still not unsolicited.
        r.on_init(p("203.0.113.7:9001"), 5, Duration::ZERO);
        r.on_settled(5, Some("203.0.113.7:9001".parse().unwrap()), Duration::ZERO);
        assert!(!r.inbound_confirmed());
    }

    #[test]
    fn a_failed_or_unknown_handshake_does_not_confirm() {
        let mut r = Reachability::default();
        r.on_init(p("198.51.100.1:1"), 9, Duration::ZERO);
        r.on_settled(9, None, Duration::ZERO);
        r.on_settled(9, Some("198.51.100.1:1".parse().unwrap()), Duration::ZERO);
        r.on_settled(77, Some("198.51.100.1:1".parse().unwrap()), Duration::ZERO);
        assert!(!r.inbound_confirmed());
    }

    #[test]
    fn reset_forgets_the_proof_and_the_class() {
        let mut r = Reachability::default();
        r.on_init(p("203.0.113.7:9000"), 5, Duration::ZERO);
        r.on_settled(5, Some("203.0.113.7:9000".parse().unwrap()), Duration::ZERO);
        r.set_nat_type(NatType::Public);
        r.reset();
        assert!(!r.inbound_confirmed());
        assert_eq!(r.nat_type(), NatType::Unknown);
    }

    #[test]
    fn the_contacted_set_is_bounded() {
        let mut r = Reachability::default();
        for i in 0..(CONTACTED_CAP as u32 + 10) {
            r.note_sent(Path::Udp(SocketAddr::from((i.to_be_bytes(), 1))));
        }
        assert_eq!(r.contacted.len(), CONTACTED_CAP);
        assert!(!r.contacted(IpAddr::from(0u32.to_be_bytes())));
        assert!(r.contacted(IpAddr::from((CONTACTED_CAP as u32 + 9).to_be_bytes())));
    }
}
