//! The birthday spray between a symmetric NAT (fresh random port per
//! destination) and a port-filtering cone (port-restricted or CGNAT: one
//! port, open only toward exactly the addresses it sent to), which plain
//! UDP cannot punch. Per punch round:
//!
//! - the cone end sends its pending message 1 to [`SPRAY_PORTS`] random
//!   ports (1024–65535) of the symmetric end's IP, paced at
//!   [`SPRAY_PROBES_PER_TICK`] per 100 ms over all punches (1000/s, by the
//!   time since the last tick, so a late tick sends its share), starting
//!   in the tick the round fires: each opens the cone's filter toward that port for the NAT's UDP
//!   timeout (30 s on Linux);
//! - [`SPRAY_STAGGER`] later the symmetric end has the host open
//!   [`SPRAY_SOCKETS`] fresh sockets ([`Node::poll_spray`]) and send its own
//!   pending message 1 from each to the cone's address: each gets a fresh
//!   random external port, so with N sockets and M probed ports a hit has
//!   probability 1 − e^(−N·M/64512) (74 % for 256 × 343 in round 1, more
//!   in later rounds, whose sockets meet every earlier round's open ports).
//!
//! On a hit the cone's node answers the symmetric end's message 1 (or the
//! symmetric end's socket answers the cone's probe) and the Noise XX runs
//! on that socket, which the host keeps as the session's path
//! ([`crate::Path::Channel`] in [`SPRAY_CHANNEL_BASE`]'s range); the
//! host closes the round's other sockets. A host that can open sockets says
//! so with [`Node::enable_spray`], which announces [`SPRAY_CAP_TOPIC`]; a
//! forwarder introduces such a pair only when the symmetric end announced
//! it (otherwise it reports the pair unpunchable, for the relay).

use super::punch::PunchRun;
use crate::node::Node;
use crate::path::Path;
use crate::Time;
use moss_crypto::PeerId;
use moss_telemetry::NatType;
use rand_core::RngCore;
use std::net::SocketAddr;
use std::time::Duration;

/// The capability a node announces when its host opens spray sockets.
pub const SPRAY_CAP_TOPIC: &str = "moss/cap/nat-spray/v1";
/// Sockets the symmetric end opens per round.
pub const SPRAY_SOCKETS: u16 = 256;
/// Random ports of the symmetric end's IP the cone end probes per round.
pub const SPRAY_PORTS: u16 = 343;
/// Spray probes sent per housekeeping tick (100 ms), every punch together:
/// the pace is by time, so a tick that runs late (a starved CPU) sends
/// its elapsed share, up to `MAX_PROBES_PER_CALL`.
pub const SPRAY_PROBES_PER_TICK: usize = 100;
/// Most spray probes one late tick sends (four ticks' worth).
const MAX_PROBES_PER_CALL: usize = 4 * SPRAY_PROBES_PER_TICK;
/// How long after a round's start the symmetric end opens its sockets (the
/// cone's probes of the round are out by then).
pub const SPRAY_STAGGER: Duration = Duration::from_millis(500);
/// Spray probes queued at most (a round of a dozen punches).
const MAX_QUEUED_PROBES: usize = 4096;
/// Spray orders waiting for the host at most.
const MAX_ORDERS: usize = 8;
/// Lowest port a NAT hands out for an unprivileged source port.
const LOW_PORT: u16 = 1024;
/// First channel id the host uses for spray sockets (ids below are the
/// host's other channels, e.g. WebRTC).
pub const SPRAY_CHANNEL_BASE: u64 = 1 << 62;

/// How a punch reaches its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunchMode {
    /// Message 1 to the offered address (and predicted ports).
    Direct,
    /// We are the cone end: probes to random ports of the peer's IP.
    SprayPorts,
    /// We are the symmetric end: the host's spray sockets.
    SpraySockets,
}

/// Host work of the symmetric end of a spray round: open `sockets` fresh
/// UDP sockets, send `datagram` from each to `to`, keep them for `hold`,
/// feed what arrives on them from `to`'s IP as
/// `Input::Datagram { from: Path::Channel(id) }` (ids from
/// [`SPRAY_CHANNEL_BASE`] up), and keep the first socket that hears back as
/// that channel (closing the others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SprayOrder {
    /// The peer punched to.
    pub peer: PeerId,
    /// The cone end's address.
    pub to: SocketAddr,
    /// Sockets to open.
    pub sockets: u16,
    /// Our pending message 1 to it.
    pub datagram: Vec<u8>,
    /// How long the round's sockets stay open.
    pub hold: Duration,
    /// When the node queued the order (the host's lag is measured from it).
    pub queued: Time,
}

/// Whether a class may filter by address and port with one mapping: a
/// port-restricted cone, CGNAT, or a cone whose filtering test has not
/// finished (`unknown`: it often stays so for a minute once the node has
/// contacted every possible third party; a spray costs a full or
/// restricted cone nothing, its direct message 1 gets through anyway).
fn may_port_filter(c: NatType) -> bool {
    matches!(
        c,
        NatType::PortRestrictedCone | NatType::Cgnat | NatType::Unknown
    )
}

/// One end's mode toward a peer of `peer` class, from its own `me` class.
pub(crate) fn mode_for(me: NatType, peer: NatType, can_spray: bool) -> PunchMode {
    let sym = |c| c == NatType::SymmetricNat;
    match (sym(me), sym(peer)) {
        (false, true) if may_port_filter(me) => PunchMode::SprayPorts,
        (true, false) if may_port_filter(peer) && can_spray => PunchMode::SpraySockets,
        _ => PunchMode::Direct,
    }
}

/// Whether a pair of these classes is punched by a spray, and which end
/// (`true`: the first) is the symmetric one.
pub(crate) fn spray_pair(a: NatType, b: NatType) -> Option<bool> {
    match mode_for(a, b, true) {
        PunchMode::SpraySockets => Some(true),
        PunchMode::SprayPorts => Some(false),
        PunchMode::Direct => None,
    }
}

impl Node {
    /// Says the host opens spray sockets for this node (at most `sockets`
    /// per round, 0 = none): the node announces [`SPRAY_CAP_TOPIC`] and,
    /// behind a symmetric NAT, punches port-filtering cones through
    /// [`Node::poll_spray`]. A host that opens sockets also opens the
    /// fresh probe sockets of the filtering tests
    /// ([`Node::poll_fresh_socket`]). Call before the first session.
    pub fn enable_spray(&mut self, sockets: u16) {
        self.nat.spray_sockets = sockets.min(SPRAY_SOCKETS);
        self.nat.fresh_sockets = sockets > 0;
        if sockets > 0 {
            self.pubsub
                .subscriptions
                .insert(SPRAY_CAP_TOPIC.to_string());
        } else {
            self.pubsub.subscriptions.remove(SPRAY_CAP_TOPIC);
        }
    }

    /// The next spray round the host must run (symmetric end only).
    pub fn poll_spray(&mut self) -> Option<SprayOrder> {
        self.nat.spray_orders.pop_front()
    }

    /// How the last punch toward `peer` was run (`None`: none ran).
    pub fn punch_mode(&self, peer: &PeerId) -> Option<PunchMode> {
        self.nat.punch_modes.get(peer).copied()
    }

    /// Whether session `idx` announced the spray capability.
    pub(crate) fn spray_capable(&self, idx: u32) -> bool {
        self.table
            .established(idx)
            .is_some_and(|e| e.topics.contains(SPRAY_CAP_TOPIC))
    }

    /// The mode a punch toward a peer of class `peer` runs in.
    pub(crate) fn punch_mode_for(&self, peer: NatType) -> PunchMode {
        mode_for(self.reach.nat_type(), peer, self.nat.spray_sockets > 0)
    }

    pub(crate) fn note_punch_mode(&mut self, peer: PeerId, mode: PunchMode) {
        let m = &mut self.nat.punch_modes;
        if m.len() >= super::MAX_PEER_NOTES && !m.contains_key(&peer) {
            m.clear();
        }
        m.insert(peer, mode);
    }

    /// The pending message 1 of our dial to `addr`, if one is pending.
    pub(crate) fn pending_message1(&self, addr: SocketAddr) -> Option<Vec<u8>> {
        let path = Path::Udp(addr);
        let s = self.table.by_path(&path).and_then(|i| self.table.get(i))?;
        match &s.state {
            crate::session::State::Initiating(p) if s.path == path => Some(p.last_datagram.clone()),
            _ => None,
        }
    }

    /// A punch round toward `peer` just fired: queue its spray part.
    pub(crate) fn spray_round(&mut self, peer: PeerId, run: &mut PunchRun, now: Time) {
        match run.mode {
            PunchMode::Direct => {}
            PunchMode::SprayPorts => {
                let ip = run.addr.ip();
                let mut ports: Vec<u16> = Vec::with_capacity(usize::from(SPRAY_PORTS));
                while ports.len() < usize::from(SPRAY_PORTS) {
                    let p = LOW_PORT
                        + (self.rng.next_u32() % u32::from(u16::MAX - LOW_PORT + 1)) as u16;
                    if p != run.addr.port() && !ports.contains(&p) {
                        ports.push(p);
                    }
                }
                for p in ports {
                    if self.nat.spray_queue.len() >= MAX_QUEUED_PROBES {
                        self.stats.nat.spray_probes_dropped += 1;
                        continue;
                    }
                    self.nat
                        .spray_queue
                        .push_back((peer, run.addr, SocketAddr::new(ip, p), now));
                }
            }
            PunchMode::SpraySockets => run.spray_at = Some(now + SPRAY_STAGGER),
        }
    }

    /// Per tick: spray probes, paced at [`SPRAY_PROBES_PER_TICK`] per
    /// 100 ms of time since the last call.
    pub(crate) fn spray_tick(&mut self, now: Time) {
        let elapsed = now.saturating_sub(self.nat.spray_last).as_millis() as usize;
        self.nat.spray_last = now;
        let budget = (elapsed * SPRAY_PROBES_PER_TICK / 100).min(MAX_PROBES_PER_CALL);
        let mut sent = 0;
        while sent < budget {
            let Some((peer, dialled, to, queued)) = self.nat.spray_queue.pop_front() else {
                break;
            };
            // A probe is the pending message 1 itself; none left (a direct
            // session came up, or the dial gave up) means no probe. A
            // relayed peer is still sprayed to.
            if self.reached_directly(&peer) {
                continue;
            }
            let Some(d) = self.pending_message1(dialled) else {
                continue;
            };
            // Only to the IP the dial went to (noted as contacted then).
            self.outbox.emit(&mut self.stats, Path::Udp(to), d);
            self.stats.nat.spray_probes += 1;
            let wait = now.saturating_sub(queued);
            let st = &mut self.stats.nat;
            st.spray_probe_wait_ms_max = st.spray_probe_wait_ms_max.max(wait.as_millis() as u64);
            if wait > SPRAY_STAGGER {
                st.spray_probes_late += 1;
            }
            sent += 1;
        }
    }

    /// A socket round of the punch toward `peer` is due (since `due`).
    pub(crate) fn spray_order(&mut self, peer: PeerId, run: &PunchRun, due: Time) {
        let late = self.now.saturating_sub(due).as_millis() as u64;
        let st = &mut self.stats.nat;
        st.spray_order_late_ms_max = st.spray_order_late_ms_max.max(late);
        let Some(datagram) = self.pending_message1(run.addr) else {
            return;
        };
        if self.nat.spray_orders.len() >= MAX_ORDERS {
            self.stats.nat.spray_rounds_refused += 1;
            return;
        }
        self.stats.nat.spray_rounds += 1;
        self.nat.spray_orders.push_back(SprayOrder {
            peer,
            to: run.addr,
            sockets: self.nat.spray_sockets,
            datagram,
            hold: super::PUNCH_ROUND,
            queued: self.now,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_symmetric_facing_a_port_filter_sprays() {
        use NatType::*;
        assert_eq!(
            mode_for(SymmetricNat, PortRestrictedCone, true),
            PunchMode::SpraySockets
        );
        assert_eq!(mode_for(SymmetricNat, Cgnat, true), PunchMode::SpraySockets);
        // A host without spray sockets punches directly (and fails: relay).
        assert_eq!(mode_for(SymmetricNat, Cgnat, false), PunchMode::Direct);
        assert_eq!(
            mode_for(PortRestrictedCone, SymmetricNat, false),
            PunchMode::SprayPorts
        );
        assert_eq!(mode_for(Cgnat, SymmetricNat, true), PunchMode::SprayPorts);
        // An end still classifying may be a port-restricted cone.
        assert_eq!(mode_for(Unknown, SymmetricNat, true), PunchMode::SprayPorts);
        assert_eq!(
            mode_for(SymmetricNat, Unknown, true),
            PunchMode::SpraySockets
        );
        for c in [FullCone, RestrictedCone, Public] {
            assert_eq!(mode_for(SymmetricNat, c, true), PunchMode::Direct);
            assert_eq!(mode_for(c, SymmetricNat, true), PunchMode::Direct);
        }
        assert_eq!(spray_pair(SymmetricNat, Cgnat), Some(true));
        assert_eq!(spray_pair(PortRestrictedCone, SymmetricNat), Some(false));
        assert_eq!(spray_pair(SymmetricNat, SymmetricNat), None);
    }

    use crate::nat::Offer;
    use crate::{Config, Identity, Node};
    use std::collections::HashSet;

    const PEER: PeerId = PeerId([7; 32]);

    fn end(class: NatType, spray: u16) -> Node {
        let mut n = Node::new(
            Config::default(),
            Identity::from_seed([1; 32]),
            "spray",
            None,
            [2; 32],
            Duration::ZERO,
        )
        .unwrap();
        n.reach.set_nat_type(class);
        n.enable_spray(spray);
        n
    }

    fn offer(n: &mut Node, addr: SocketAddr, class: NatType) {
        n.nat_offer(
            PeerId([9; 32]),
            PEER.0,
            Some(Offer {
                addr,
                class,
                delay_ms: 0,
            }),
        );
    }

    /// Runs `n`'s ticks for `secs` (100 ms apart), returning per tick the
    /// transmits and the spray orders.
    fn ticks(n: &mut Node, secs: u64) -> Vec<(Duration, Vec<crate::Transmit>, Vec<SprayOrder>)> {
        let mut out = Vec::new();
        for t in 1..=secs * 10 {
            let now = Duration::from_millis(100 * t);
            n.handle_timeout(now);
            let tx: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
            let orders: Vec<_> = std::iter::from_fn(|| n.poll_spray()).collect();
            out.push((now, tx, orders));
        }
        out
    }

    #[test]
    fn the_cone_end_probes_random_ports_of_the_peer_ip_paced() {
        let peer: SocketAddr = "198.51.100.4:40000".parse().unwrap();
        let mut n = end(NatType::PortRestrictedCone, SPRAY_SOCKETS);
        offer(&mut n, peer, NatType::SymmetricNat);
        assert_eq!(n.punch_mode(&PEER), Some(PunchMode::SprayPorts));
        let run = ticks(&mut n, 10);
        let mut dial = None;
        let mut ports = HashSet::new();
        let mut probes = 0;
        for (_, tx, orders) in &run {
            assert!(orders.is_empty(), "the cone end opens no sockets");
            // Paced: one tick carries at most its share (plus a dial's
            // message 1 and its retransmission).
            assert!(tx.len() <= SPRAY_PROBES_PER_TICK + 2, "{}", tx.len());
            for t in tx {
                let to = t.to.udp().unwrap();
                assert_eq!(to.ip(), peer.ip(), "never another IP");
                if to == peer {
                    dial = Some(t.bytes.clone());
                    continue;
                }
                assert!(to.port() >= LOW_PORT);
                // Every probe is the pending message 1 itself.
                assert_eq!(Some(&t.bytes), dial.as_ref());
                ports.insert(to.port());
                probes += 1;
            }
        }
        let rounds = u64::from(n.punch_attempts(&PEER));
        assert_eq!(rounds, 3);
        assert_eq!(probes, rounds * u64::from(SPRAY_PORTS));
        assert_eq!(n.stats().nat.spray_probes, probes);
        // Random ports: distinct within a round, few repeats across rounds.
        assert!(ports.len() as u64 > probes * 9 / 10, "{}", ports.len());
    }

    #[test]
    fn late_ticks_send_their_elapsed_share_so_a_round_still_goes_out_in_time() {
        let peer: SocketAddr = "198.51.100.4:40000".parse().unwrap();
        let mut n = end(NatType::PortRestrictedCone, SPRAY_SOCKETS);
        offer(&mut n, peer, NatType::SymmetricNat);
        // A starved engine: ticks 300 ms apart instead of 100.
        let mut first_round = 0;
        for t in 1..=2u64 {
            n.handle_timeout(Duration::from_millis(300 * t));
            let tx: Vec<_> = std::iter::from_fn(|| n.poll_transmit()).collect();
            let probes = tx.iter().filter(|x| x.to.udp() != Some(peer)).count();
            assert!(probes <= 3 * SPRAY_PROBES_PER_TICK, "{probes}");
            first_round += probes;
        }
        // The first round's probes are all out 600 ms in (per-tick pacing
        // would have sent 200 of 343), and none waited past the stagger.
        assert_eq!(first_round, usize::from(SPRAY_PORTS));
        let st = &n.stats().nat;
        assert_eq!(st.spray_probes_late, 0, "{st:?}");
        assert!(st.spray_probe_wait_ms_max <= 300, "{st:?}");
        // Much later the queue is empty: an idle tick sends nothing.
        n.handle_timeout(Duration::from_millis(900));
        assert!(n.stats().nat.spray_probes >= first_round as u64);
    }

    #[test]
    fn the_symmetric_end_orders_sockets_each_round_after_the_stagger() {
        let peer: SocketAddr = "203.0.113.103:4000".parse().unwrap();
        let mut n = end(NatType::SymmetricNat, SPRAY_SOCKETS);
        offer(&mut n, peer, NatType::PortRestrictedCone);
        assert_eq!(n.punch_mode(&PEER), Some(PunchMode::SpraySockets));
        let run = ticks(&mut n, 10);
        let mut dial_at = Vec::new();
        let mut orders = Vec::new();
        let mut m1: Option<Vec<u8>> = None;
        for (now, tx, os) in run {
            for t in &tx {
                assert_eq!(t.to, Path::Udp(peer), "no probes from the main socket");
                m1 = Some(t.bytes.clone());
            }
            if !tx.is_empty() {
                dial_at.push(now);
            }
            for o in os {
                assert_eq!(Some(&o.datagram), m1.as_ref(), "the dial's message 1");
                orders.push((now, o));
            }
        }
        assert_eq!(orders.len(), 3, "one socket round per punch round");
        for (i, (at, o)) in orders.iter().enumerate() {
            assert_eq!(o.to, peer);
            assert_eq!(o.peer, PEER);
            assert_eq!(o.sockets, SPRAY_SOCKETS);
            assert_eq!(o.hold, crate::nat::PUNCH_ROUND);
            let round = crate::nat::PUNCH_ROUND * i as u32;
            assert!(*at >= dial_at[0] + round + SPRAY_STAGGER, "{at:?}");
        }
        assert_eq!(n.stats().nat.spray_rounds, 3);
    }

    #[test]
    fn without_spray_sockets_the_symmetric_end_punches_directly() {
        let peer: SocketAddr = "203.0.113.103:4000".parse().unwrap();
        let mut n = end(NatType::SymmetricNat, 0);
        offer(&mut n, peer, NatType::Cgnat);
        assert_eq!(n.punch_mode(&PEER), Some(PunchMode::Direct));
        assert!(ticks(&mut n, 10).iter().all(|(_, _, o)| o.is_empty()));
        assert!(!n.pubsub.subscriptions.contains(SPRAY_CAP_TOPIC));
    }

    #[test]
    fn the_first_round_hits_about_three_times_in_four() {
        let p = 1.0
            - (-(f64::from(SPRAY_SOCKETS) * f64::from(SPRAY_PORTS))
                / f64::from(u16::MAX - LOW_PORT + 1))
            .exp();
        assert!((0.73..0.76).contains(&p), "{p}");
    }
}
