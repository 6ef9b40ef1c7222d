//! The classification driver: feeds observations, the inbound-probe
//! confirmation and gateway reports to `moss-nat`'s classifier, asks peers
//! for bindings and probes, and publishes the verdict.

use super::{NatFrame, Probe, ProbeMode, BINDING_EVERY, BINDING_FANOUT, CAP_TOPIC};
use super::{CLASS_EVERY, CLASS_SENDS, MAX_PEER_NOTES};
use super::{MAX_PENDING_BINDINGS, PROBE_RETRY, PROBE_RETRY_MAX};
use crate::node::Node;
use crate::path::Path;
use crate::wire::Frame;
use crate::Time;
use moss_crypto::PeerId;
use moss_nat::classify::{
    FilteringTest, GatewayReport, Mapping, Observation, ObserveOutcome, Verdict,
};
use moss_telemetry::NatType;
use rand_core::RngCore;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Longest wait between rechecks of a negative filtering test.
const RECHECK_MAX: Duration = Duration::from_secs(300);

impl Node {
    /// The host's interface addresses with the bound port: an observed
    /// address equal to one of them means no NAT. Until they are given the
    /// node cannot tell no NAT from a cone NAT, so it does not profile
    /// itself or ask for punches (it still answers and helps its peers).
    pub fn set_local_addrs(&mut self, addrs: &[SocketAddr]) {
        self.nat.local = addrs.to_vec();
    }

    /// What the local gateway said through a port-mapping protocol
    /// (NAT-PMP, PCP): an external address that differs from the observed
    /// one, or none at all, means a NAT beyond the gateway (CGNAT).
    pub fn set_gateway_report(&mut self, report: GatewayReport) {
        self.nat.classifier.port_mapping(report);
        self.nat_update();
    }

    /// The gateway mapped our port (PCP, NAT-PMP or UPnP IGD, run by the
    /// host): `external` is the address it forwards to us, `None` when the
    /// mapping is gone. The external IP goes to the classifier as a gateway
    /// report (another IP than observers see means CGNAT), and an
    /// observation of exactly the mapped address counts as seen at a local
    /// address of ours, so the node judges itself un-NATed there and says
    /// `public` only once a real inbound probe has reached it.
    pub fn set_port_mapping(&mut self, external: Option<SocketAddr>) {
        self.nat.mapped = external;
        if let Some(a) = external {
            self.nat
                .classifier
                .port_mapping(GatewayReport::External(a.ip()));
        }
        self.nat_update();
    }

    /// The external address the gateway maps to us, if any.
    pub fn port_mapping(&self) -> Option<SocketAddr> {
        self.nat.mapped
    }

    /// The classifier's current verdict (class, mapping, filtering).
    pub fn nat_verdict(&self) -> Verdict {
        self.nat.classifier.verdict()
    }

    /// The NAT class peer `peer` announced to us.
    pub fn peer_nat_type(&self, peer: &PeerId) -> NatType {
        self.nat.class_of(peer)
    }

    /// The round trip to `peer` measured by binding requests (0 unknown).
    pub(crate) fn nat_rtt(&self, peer: &PeerId) -> std::time::Duration {
        self.nat.rtt.get(peer).copied().unwrap_or_default()
    }

    /// Whether established session `idx` announced the NAT capability.
    pub(crate) fn nat_capable(&self, idx: u32) -> bool {
        self.table
            .established(idx)
            .is_some_and(|e| e.topics.contains(CAP_TOPIC))
    }

    /// Whether `addr` is the third party of the probe we run: a dial of
    /// ours there now would open our NAT to it and spoil the probe (the
    /// router's peer-exchange dials skip it; a skipped one is not tried
    /// again). The probe's verdict does not rely on this: a spoiled probe
    /// is inconclusive ([`crate::reach::Reachability::unsolicited_from`]).
    pub(crate) fn nat_probe_third(&self, addr: SocketAddr) -> bool {
        self.nat
            .probe
            .and_then(|p| p.third)
            .is_some_and(|t| t.addr == addr)
    }

    /// Established NAT-capable peers (session index, peer id, UDP address).
    pub(crate) fn nat_peers(&self) -> Vec<(u32, PeerId, SocketAddr)> {
        let t = &self.table;
        let mut v: Vec<_> = t
            .by_peer
            .iter()
            .filter(|&(_, &idx)| self.nat_capable(idx))
            .filter_map(|(p, &idx)| Some((idx, *p, t.get(idx)?.path.udp()?)))
            .collect();
        v.sort_by_key(|&(_, p, _)| p);
        v
    }

    /// A session just established: a new inbound confirmation is fed to
    /// the classifier first (the prober then becomes an observer), then
    /// the peer's observation of us.
    pub(crate) fn nat_established(
        &mut self,
        observed: Option<SocketAddr>,
        path: Path,
        peer: PeerId,
    ) {
        self.nat_punch_established(peer);
        // A new session (the peer may have restarted): told anew.
        self.nat.told.remove(&peer);
        self.nat_feed_confirmation();
        if let (Some(mapped), Some(observer)) = (observed, path.udp()) {
            self.nat_observe(observer, mapped);
        }
    }

    fn nat_feed_confirmation(&mut self) {
        if self.nat.confirmation_fed {
            return;
        }
        if let Some(c) = self.reach.confirmation() {
            self.nat.confirmation_fed = true;
            // The reach rule already proved the IP was never contacted.
            let _ = self.nat.classifier.inbound_probe(c.from);
            self.nat.other_ip = Some(true);
            self.nat_update();
        }
    }

    /// The local address an observation was made from: the observed one
    /// when it is ours (no NAT, or the gateway's port mapping), else our
    /// first interface address.
    fn nat_local_for(&self, mapped: SocketAddr) -> SocketAddr {
        if self.nat.local.contains(&mapped) || self.nat.mapped == Some(mapped) {
            return mapped;
        }
        self.nat
            .local
            .iter()
            .find(|a| a.is_ipv4() == mapped.is_ipv4())
            .copied()
            .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
    }

    /// True when `mapped` is one of our interface IPs at a port that is
    /// not ours: no NAT keeps the IP and changes the port, so it is a
    /// report about another socket (the port before a restart or rebind,
    /// held by a peer's old session), not an observation of this one.
    fn nat_foreign_port(&self, mapped: SocketAddr) -> bool {
        let local = &self.nat.local;
        local.iter().any(|a| a.ip() == mapped.ip()) && !local.contains(&mapped)
    }

    pub(crate) fn nat_observe(&mut self, observer: SocketAddr, mapped: SocketAddr) {
        if self.nat_foreign_port(mapped) {
            return;
        }
        let local = self.nat_local_for(mapped);
        let outcome = self.nat.classifier.observe(Observation {
            local,
            observer,
            mapped,
        });
        match outcome {
            ObserveOutcome::Bogus => return,
            ObserveOutcome::Recorded => {}
            ObserveOutcome::AddressChanged => {
                // Roaming or a new lease: everything learnt is stale.
                self.stats.nat.address_changes += 1;
                self.reach.reset();
                let n = &mut self.nat;
                n.confirmation_fed = false;
                n.other_ip = None;
                n.other_port = None;
                n.misses = Default::default();
                n.fresh_misses = Default::default();
                n.probe = None;
                n.mapping_dial.clear();
                n.probe_backoff = PROBE_RETRY;
                n.next_probe = self.now;
            }
        }
        self.stats.nat.observations += 1;
        self.nat_update();
    }

    /// Publishes the classifier's class when it changed.
    pub(crate) fn nat_update(&mut self) {
        let class = self.nat.classifier.verdict().class;
        if class != self.reach.nat_type() {
            self.reach.set_nat_type(class);
            self.nat.told.clear();
            let _ = self.telemetry.t.set_nat(class.as_str());
        }
    }

    /// Periodic NAT work: scheduled probe dials, binding requests, the
    /// probe state machine, class announcements.
    pub(crate) fn nat_tick(&mut self, now: Time) {
        self.nat_feed_confirmation();
        self.nat_run_dials(now);
        self.nat_punch_tick(now);
        if self.nat.local.is_empty() {
            return;
        }
        let peers = self.nat_peers();
        if peers.is_empty() {
            return;
        }
        if now >= self.nat.next_binding {
            self.nat.next_binding = now + BINDING_EVERY;
            self.nat_send_bindings(&peers);
        }
        self.nat_probe_step(now, &peers);
        self.nat_tell_class(now, &peers);
    }

    /// Tells each peer our class, [`CLASS_SENDS`] times [`CLASS_EVERY`]
    /// apart (per class and session).
    fn nat_tell_class(&mut self, now: Time, peers: &[(u32, PeerId, SocketAddr)]) {
        let class = self.reach.nat_type();
        for &(idx, peer, _) in peers {
            let sent = match self.nat.told.get(&peer) {
                None => 0,
                Some(&(n, at)) if n < CLASS_SENDS && now >= at + CLASS_EVERY => n,
                Some(_) => continue,
            };
            if sent == 0 && self.nat.told.len() >= MAX_PEER_NOTES {
                self.nat.told.clear();
            }
            self.nat.told.insert(peer, (sent + 1, now));
            self.queue_frame(idx, &Frame::Nat(NatFrame::NatClass(class)));
        }
    }

    fn nat_send_bindings(&mut self, peers: &[(u32, PeerId, SocketAddr)]) {
        let start = self.rng.next_u32() as usize % peers.len();
        for k in 0..peers.len().min(BINDING_FANOUT) {
            let (idx, peer, _) = peers[(start + k) % peers.len()];
            self.nat_send_binding(idx, peer);
        }
    }

    /// One binding request to `peer` (session `idx`): its answer gives our
    /// observed address and the round trip ([`Node::nat_rtt`]; the relay
    /// client also asks supernodes it learns of, to choose by it).
    pub(crate) fn nat_send_binding(&mut self, idx: u32, peer: PeerId) {
        let txid = self.rng.next_u32();
        if self.nat.bindings.len() >= MAX_PENDING_BINDINGS {
            self.nat.bindings.pop_front();
        }
        self.nat.bindings.push_back((txid, peer, self.now));
        self.stats.nat.binding_requests += 1;
        self.queue_frame(idx, &Frame::Nat(NatFrame::BindingRequest { txid }));
    }

    /// What is still missing for a verdict: the filtering test to run.
    fn nat_next_test(&self) -> Option<ProbeMode> {
        let v = self.nat.classifier.verdict();
        if v.class == NatType::Cgnat || v.mapping == Mapping::EndpointDependent {
            return None;
        }
        match (self.nat.other_ip, self.nat.other_port) {
            (None, _) => Some(ProbeMode::OtherIp),
            (Some(false), None) if v.mapping != Mapping::NoNat => Some(ProbeMode::OtherPort),
            _ => None,
        }
    }

    /// A negative filtering test to run again (the tests are done): test
    /// II while it is negative (a positive means endpoint-independent
    /// filtering), test III while it is negative behind a NAT; when both
    /// are, the one fewer third parties missed.
    fn nat_recheck_test(&mut self) -> Option<ProbeMode> {
        let v = self.nat.classifier.verdict();
        if v.class == NatType::Cgnat
            || !matches!(v.mapping, Mapping::NoNat | Mapping::EndpointIndependent)
        {
            return None;
        }
        let ip = self.nat.other_ip == Some(false);
        let port = self.nat.other_port == Some(false) && v.mapping != Mapping::NoNat;
        let misses = |m: &(Vec<[u8; 32]>, Vec<[u8; 32]>)| (m.0.len(), m.1.len());
        let (ip_in, port_in) = misses(&self.nat.misses);
        let (ip_fresh, port_fresh) = misses(&self.nat.fresh_misses);
        match (ip, port) {
            (true, true) if port_in + port_fresh < ip_in + ip_fresh => Some(ProbeMode::OtherPort),
            (true, _) => Some(ProbeMode::OtherIp),
            (false, true) => Some(ProbeMode::OtherPort),
            (false, false) => None,
        }
    }

    fn nat_probe_step(&mut self, now: Time, peers: &[(u32, PeerId, SocketAddr)]) {
        if let Some(p) = self.nat.probe {
            self.nat_probe_check(now, p);
            return;
        }
        let next = self.nat_next_test();
        // Tests done but one observer only: dial a third party we learnt
        // (after the tests, so its IP stays uncontacted while they run).
        if next.is_none() && self.nat.classifier.mapping() == Mapping::Unknown {
            let t = &self.table;
            let dialling = self.nat.mapping_dial.is_empty()
                || t.sessions.values().any(|s| {
                    !matches!(s.state, crate::session::State::Established(_))
                        && self.nat.mapping_dial.iter().any(|c| s.path == c.0)
                });
            if !dialling {
                let best = (0..self.nat.mapping_dial.len())
                    .min_by_key(|&i| super::reach_rank(self.nat.mapping_dial[i].1));
                if let Some(i) = best {
                    let (addr, _) = self.nat.mapping_dial.remove(i);
                    self.connect(addr);
                }
            }
        }
        if now < self.nat.next_probe {
            return;
        }
        let mode = match next {
            Some(m) => m,
            // Every test ran and the mapping is still unknown (no second
            // observer reachable yet): run test II again for another third
            // party to dial, less often each time.
            None if self.nat.classifier.mapping() == Mapping::Unknown
                && self.nat.mapping_dial.is_empty() =>
            {
                self.nat_backoff(now);
                ProbeMode::OtherIp
            }
            // A negative may be lost frames, not the NAT: ask again, less
            // often each time, so a later positive corrects the class.
            None => match self.nat_recheck_test() {
                Some(m) => {
                    self.nat_backoff_to(now, RECHECK_MAX);
                    m
                }
                None => return,
            },
        };
        // Behind an endpoint-independent mapping the test runs from a
        // fresh socket when the host opens them and a helper would let it
        // in: every third party is then one that mapping never sent to,
        // however many peers the node has contacted (fresh.rs).
        if self.nat.classifier.mapping() == Mapping::EndpointIndependent {
            let helpers = self.fresh_helpers(peers);
            if let Some((idx, helper, addr)) = self.nat_pick_helper(&helpers) {
                self.nat.streak = None;
                self.nat_fresh_request(idx, helper, addr, mode);
                return;
            }
        }
        let again = self.nat.streak.as_ref().map(|s| s.0);
        let again = again.and_then(|h| peers.iter().find(|c| c.1 == h).copied());
        let Some((idx, helper, _)) = again.or_else(|| self.nat_pick_helper(peers)) else {
            return;
        };
        let txid = self.rng.next_u32();
        self.nat.probe = Some(Probe {
            txid,
            mode,
            helper,
            sent: now,
            third: None,
            deadline: now + super::PROBE_WAIT * 2,
            fresh: None,
        });
        self.stats.nat.probes_requested += 1;
        self.queue_frame(idx, &Frame::Nat(NatFrame::ProbeRequest { txid, mode }));
    }

    /// A helper among `peers`, at random among the best ranked: public
    /// peers first (everyone dials them, so they know the most third
    /// parties), never the one that just failed us while there is another.
    fn nat_pick_helper(
        &mut self,
        peers: &[(u32, PeerId, SocketAddr)],
    ) -> Option<(u32, PeerId, SocketAddr)> {
        if peers.is_empty() {
            return None;
        }
        let avoid = self.nat.avoid_helper.take();
        let rank = |p: &PeerId| (Some(*p) == avoid, super::reach_rank(self.nat.class_of(p)));
        let best = peers.iter().map(|(_, p, _)| rank(p)).min();
        let pool: Vec<_> = peers
            .iter()
            .filter(|(_, p, _)| Some(rank(p)) == best)
            .collect();
        Some(*pool[self.rng.next_u32() as usize % pool.len()])
    }

    fn nat_probe_check(&mut self, now: Time, p: Probe) {
        if let Some(f) = p.fresh {
            return self.nat_fresh_check(now, p, f);
        }
        let reached = match p.mode {
            ProbeMode::OtherIp => self.reach.confirmation().is_some_and(|c| c.at >= p.sent),
            // The third party dialled us from the address the helper saw
            // it at (a symmetric third party's fresh port proves nothing),
            // and its message 1 came before we sent there ourselves.
            ProbeMode::OtherPort => p.third.is_some_and(|t| {
                self.reach.unsolicited_from(t.addr, p.sent)
                    && self
                        .table
                        .by_peer(&PeerId(t.peer))
                        .and_then(|i| self.table.get(i))
                        .is_some_and(|s| {
                            s.path == t.addr && s.established().is_some_and(|e| !e.initiator)
                        })
            }),
        };
        if !reached && now < p.deadline {
            return;
        }
        self.nat.probe = None;
        let test = match p.mode {
            ProbeMode::OtherIp => FilteringTest::OtherIpAndPort,
            ProbeMode::OtherPort => FilteringTest::OtherPort,
        };
        // A session with the third party from elsewhere than the helper
        // saw it (a symmetric NAT's fresh port): no verdict either way.
        // Or one we opened, or invited by sending there first (a dial of
        // our own while the probe ran).
        let elsewhere = p.mode == ProbeMode::OtherPort
            && p.third
                .is_some_and(|t| self.table.by_peer(&PeerId(t.peer)).is_some());
        match (reached, p.third) {
            (false, Some(_)) if elsewhere => {
                self.stats.nat.probes_inconclusive += 1;
                self.nat.next_probe = now + super::PROBE_RETRY;
            }
            (true, _) => {
                self.stats.nat.probes_reached += 1;
                self.nat.classifier.filtering_result(test, true);
                self.nat_record(p.mode, true);
            }
            (false, Some(t)) => {
                self.stats.nat.probes_missed += 1;
                // A third party may have refused (its order budget): a
                // negative needs misses through two different ones.
                if self
                    .nat
                    .note_miss(false, p.mode, t.peer, super::MISSES_FOR_NEGATIVE)
                {
                    self.nat.classifier.filtering_result(test, false);
                    self.nat_record(p.mode, false);
                }
                if self.table.by_peer(&PeerId(t.peer)).is_none() {
                    self.nat.add_observer_candidate(t.addr, t.class);
                }
            }
            (false, None) => {
                // No acknowledgement: the helper is gone or refused.
                self.stats.nat.probes_inconclusive += 1;
                self.nat.avoid(p.helper);
                self.nat.next_probe = now + super::PROBE_RETRY;
            }
        }
        self.nat_update();
    }

    /// The verdict of a fresh-socket probe, once the token came or the
    /// wait ran out.
    fn nat_fresh_check(&mut self, now: Time, p: Probe, f: super::fresh::Fresh) {
        if !f.reached && now < p.deadline {
            return;
        }
        self.nat.probe = None;
        let test = match p.mode {
            ProbeMode::OtherIp => FilteringTest::OtherIpAndPort,
            ProbeMode::OtherPort => FilteringTest::OtherPort,
        };
        match (f.reached, f.seen, p.third) {
            (true, _, _) => {
                self.stats.nat.fresh_reached += 1;
                self.nat.classifier.filtering_result(test, true);
                self.nat_record(p.mode, true);
            }
            (false, Some(_), Some(t)) => {
                // The helper got our token and told the third party: a
                // miss, unless the order or all the copies were lost, so a
                // negative needs misses through several third parties.
                self.stats.nat.fresh_missed += 1;
                let needed = super::FRESH_MISSES_FOR_NEGATIVE;
                if self.nat.note_miss(true, p.mode, t.peer, needed) {
                    self.nat.classifier.filtering_result(test, false);
                    self.nat_record(p.mode, false);
                }
            }
            _ => {
                // No acknowledgement or no FRESH_SEEN (a frame or the
                // token was lost, or the helper's NAT kept the token out).
                self.stats.nat.fresh_inconclusive += 1;
                self.nat.avoid(p.helper);
                self.nat.next_probe = now + PROBE_RETRY;
            }
        }
        self.nat_update();
    }

    /// Records a test's outcome; a new one moves on to the next test at
    /// once (a recheck that missed again keeps its backoff).
    fn nat_record(&mut self, mode: ProbeMode, reached: bool) {
        let slot = match mode {
            ProbeMode::OtherIp => &mut self.nat.other_ip,
            ProbeMode::OtherPort => &mut self.nat.other_port,
        };
        if *slot == Some(reached) {
            return;
        }
        *slot = Some(reached);
        self.nat.next_probe = self.now;
        if !reached {
            // Rechecks of this negative start from the shortest wait.
            self.nat.probe_backoff = Duration::ZERO;
        }
    }

    pub(crate) fn nat_backoff(&mut self, now: Time) {
        self.nat_backoff_to(now, PROBE_RETRY_MAX);
    }

    /// Doubles the wait before the next probe, up to `max`.
    fn nat_backoff_to(&mut self, now: Time, max: Duration) {
        let n = &mut self.nat;
        n.probe_backoff = (n.probe_backoff * 2).clamp(PROBE_RETRY, max);
        n.next_probe = now + n.probe_backoff;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Identity};

    fn node(local: SocketAddr) -> Node {
        let mut n = Node::new(
            Config::default(),
            Identity::from_seed([1; 32]),
            "classify",
            None,
            [2; 32],
            Duration::ZERO,
        )
        .unwrap();
        n.set_local_addrs(&[local]);
        n
    }

    #[test]
    fn a_lost_nat_class_frame_is_sent_again() {
        let addrs: [SocketAddr; 2] = [
            "198.51.100.1:4000".parse().unwrap(),
            "198.51.100.2:4000".parse().unwrap(),
        ];
        let mut nodes: Vec<Node> = (0..2u8)
            .map(|i| {
                let mut n = Node::new(
                    Config::default(),
                    Identity::from_seed([i + 1; 32]),
                    "classify",
                    None,
                    [i + 7; 32],
                    Duration::ZERO,
                )
                .unwrap();
                n.set_local_addrs(&[addrs[usize::from(i)]]);
                n
            })
            .collect();
        nodes[1].add_static_peer(addrs[0]);
        let mut now = Duration::ZERO;
        // Steps 20 ms; with `cut`, what node 0 sends is lost.
        let step = |nodes: &mut Vec<Node>, now: &mut Time, cut: bool| {
            *now += Duration::from_millis(20);
            for i in 0..2 {
                nodes[i].handle_timeout(*now);
                let out: Vec<_> = std::iter::from_fn(|| nodes[i].poll_transmit()).collect();
                for mut t in out {
                    let Some(j) = addrs.iter().position(|a| Some(*a) == t.to.udp()) else {
                        continue;
                    };
                    if !(cut && i == 0) {
                        nodes[j].handle_datagram(*now, addrs[i], &mut t.bytes);
                    }
                }
            }
        };
        while now < Duration::from_secs(10)
            && (nodes[0].nat_peers().is_empty() || nodes[1].nat_peers().is_empty())
        {
            step(&mut nodes, &mut now, false);
        }
        assert!(
            !nodes[1].nat_peers().is_empty(),
            "the two are NAT-capable peers"
        );
        // Node 0's class changes (as `nat_update` does it); every frame it
        // sends in the next 300 ms is lost, its first NAT_CLASS with them.
        nodes[0].reach.set_nat_type(NatType::Public);
        nodes[0].nat.told.clear();
        let cut_until = now + Duration::from_millis(300);
        while now < cut_until {
            step(&mut nodes, &mut now, true);
        }
        let peer = nodes[0].public_key();
        assert_eq!(
            nodes[1].peer_nat_type(&peer),
            NatType::Unknown,
            "the first was lost"
        );
        let end = now + CLASS_EVERY * u32::from(CLASS_SENDS);
        while now < end && nodes[1].peer_nat_type(&peer) == NatType::Unknown {
            step(&mut nodes, &mut now, false);
        }
        assert_eq!(nodes[1].peer_nat_type(&peer), NatType::Public);
    }

    #[test]
    fn a_report_of_our_ip_at_another_port_is_not_an_observation() {
        // A public node restarted on port 4100; peers that still hold its
        // old session (port 4000) report that port.
        let me: SocketAddr = "203.0.113.10:4100".parse().unwrap();
        let old: SocketAddr = "203.0.113.10:4000".parse().unwrap();
        let mut n = node(me);
        n.nat_observe("198.51.100.20:4000".parse().unwrap(), me);
        n.nat_observe("203.0.113.20:4000".parse().unwrap(), me);
        assert_eq!(n.nat_verdict().mapping, Mapping::NoNat);
        // Two stale peers at two more IPs agree on the old port.
        n.nat_observe("198.51.100.30:4000".parse().unwrap(), old);
        n.nat_observe("203.0.113.30:4000".parse().unwrap(), old);
        assert_eq!(n.nat_verdict().mapping, Mapping::NoNat);
        assert_eq!(n.stats.nat.observations, 2);
        // Behind a NAT the observed IP is the NAT's: still counted.
        let mut natted = node("192.168.1.2:4000".parse().unwrap());
        natted.nat_observe(
            "198.51.100.20:4000".parse().unwrap(),
            "203.0.113.50:6000".parse().unwrap(),
        );
        assert_eq!(natted.stats.nat.observations, 1);
    }
}
