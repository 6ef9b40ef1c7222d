//! Hole punching through a shared peer (DCUtR-style, over the node's one
//! socket): a node that receives a subscribed topic's message forwarded
//! once (so the forwarder is connected to its origin) and has no session
//! with the origin asks the forwarder for an introduction (PUNCH_REQUEST).
//! The forwarder, knowing both ends' observed addresses, announced classes
//! and round trips, answers both with PUNCH_OFFER: the other's address as
//! *it* observed it (an address that peer controls) and a delay so both
//! dial at once; or, to the requester only, that the pair cannot be punched
//! (both symmetric, or symmetric facing a port-filtering cone whose
//! symmetric end's host opens no spray sockets: [`super::spray`]). Both then dial in
//! `hole_punch_attempts` rounds [`PUNCH_ROUND`] apart (at most
//! [`MAX_PUNCH_ATTEMPTS`]): each round sends message 1 to the offered
//! address (the dial's own message 1 again while it is pending, a new dial
//! once it has failed), which opens both NATs, and the normal Noise XX
//! completes on the punched path. A punch with no session
//! [`PUNCH_DEADLINE`] after its last round failed: `punch_state` says
//! `Failed`, [`Node::punch_attempts`] how many rounds ran, and
//! [`Node::take_punch_failures`] hands the failure (peer, address, rounds)
//! to whoever reaches the peer otherwise (a relay). Toward a symmetric
//! peer, with `port_prediction_enabled`, the ports ±5 around its observed
//! one are dialled too.

use super::spray::{spray_pair, PunchMode};
use super::{NatFrame, MAX_DIALS, MAX_PEER_NOTES};
use crate::node::Node;
use crate::wire::Frame;
use crate::Time;
use moss_crypto::PeerId;
use moss_nat::punch::{strategy, PunchConfig, Side, Strategy};
use moss_telemetry::NatType;
use rand_core::RngCore;
use std::net::SocketAddr;
use std::time::Duration;

/// A node asks for an introduction to one peer at most this often.
pub const PUNCH_RETRY: Duration = Duration::from_secs(15);
/// How long after its last round a punch without a session has failed
/// (message 1's own retransmissions run 0.5 s, 1.5 s and 3.5 s after it).
pub const PUNCH_DEADLINE: Duration = Duration::from_secs(6);
/// Time between two punch rounds.
pub const PUNCH_ROUND: Duration = Duration::from_secs(1);
/// Most rounds a punch runs, whatever `hole_punch_attempts` says (0 means
/// the default, 3).
pub const MAX_PUNCH_ATTEMPTS: u32 = 10;
/// Failed punches kept for [`Node::take_punch_failures`] (oldest dropped).
pub const MAX_PUNCH_FAILURES: usize = 64;

/// A punch that ran all its rounds without a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PunchFailure {
    /// The peer we tried to reach.
    pub peer: PeerId,
    /// The address the forwarder offered for it.
    pub addr: SocketAddr,
    /// Rounds that ran (`hole_punch_attempts`, bounded).
    pub attempts: u32,
}

/// A punch's rounds in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PunchRun {
    pub(super) addr: SocketAddr,
    /// Rounds to run and rounds fired.
    attempts: u32,
    fired: u32,
    next: Time,
    deadline: Time,
    /// Direct, or which end of a spray we are.
    pub(super) mode: PunchMode,
    /// When this round's spray sockets are due (symmetric end).
    pub(super) spray_at: Option<Time>,
}
/// Longest delay an offer may ask for.
pub const MAX_PUNCH_DELAY: Duration = Duration::from_secs(2);
/// Punch offers an end carries out per [`super::ORDER_WINDOW`] from all
/// forwarders together (its own budget, beside the probe orders'). A
/// message's first forwarders introduce every subscriber that received it
/// from them to its origin at once, and an offer the origin refuses leaves
/// the other end punching alone, which opens only a full cone or a public
/// node: the budget must cover such a burst.
pub const PUNCH_BURST: usize = 64;
/// Punch offers an end carries out per [`super::ORDER_WINDOW`] from one
/// forwarder (so no one peer can make it dial more than this).
pub const PUNCH_BURST_PER_FORWARDER: usize = 16;
/// A forwarder introduces one pair at most this often.
pub const INTRODUCE_INTERVAL: Duration = Duration::from_secs(5);
/// Ports either side of a symmetric peer's observed one that are dialled
/// with port prediction.
pub const PREDICTION_SPREAD: u16 = 5;

/// What became of our wish to reach one peer directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunchState {
    /// Dialling it since `since`.
    Punching {
        /// When the offer arrived.
        since: Time,
    },
    /// The forwarder said the pair cannot be punched.
    Unpunchable,
    /// The session came up through the punch.
    Punched,
    /// The punch ran out of time.
    Failed,
}

impl Node {
    /// How a peer was reached by punching, if we tried (`None`: never).
    pub fn punch_state(&self, peer: &PeerId) -> Option<PunchState> {
        self.nat.punch.get(peer).map(|p| p.1)
    }

    /// How long the punch that reached `peer` took, from its offer to the
    /// session (None: no punch reached it).
    pub fn punch_time(&self, peer: &PeerId) -> Option<Duration> {
        self.nat
            .punch_ms
            .get(peer)
            .map(|&ms| Duration::from_millis(ms))
    }

    /// Punches toward `peer` started so far (1 when the first did it; an
    /// offer that comes while a punch runs does not count).
    pub fn punch_offers(&self, peer: &PeerId) -> u32 {
        self.nat.punch_offers.get(peer).copied().unwrap_or(0)
    }

    /// Every peer a punch was asked or tried for, with its state (sorted).
    pub fn punch_states(&self) -> Vec<(PeerId, PunchState)> {
        let mut v: Vec<_> = self.nat.punch.iter().map(|(p, s)| (*p, s.1)).collect();
        v.sort_unstable_by_key(|e| e.0);
        v
    }

    /// Rounds the last punch toward `peer` fired (0: none).
    pub fn punch_attempts(&self, peer: &PeerId) -> u32 {
        self.nat.punch_rounds.get(peer).copied().unwrap_or(0)
    }

    /// The punches that failed after all their rounds since the last call,
    /// oldest first (at most [`MAX_PUNCH_FAILURES`] are kept).
    pub fn take_punch_failures(&mut self) -> Vec<PunchFailure> {
        self.nat.punch_failures.drain(..).collect()
    }

    /// Rounds a punch runs: `hole_punch_attempts`, 1 to [`MAX_PUNCH_ATTEMPTS`].
    fn punch_rounds(&self) -> u32 {
        self.cfg
            .nat
            .hole_punch_attempts
            .clamp(1, MAX_PUNCH_ATTEMPTS)
    }

    /// Peers we wanted to reach directly and cannot: the forwarder judged
    /// the pair unpunchable, or the punch ran out of time (the
    /// `hole_punch_attempts` rounds and [`PUNCH_DEADLINE`] passed) and no
    /// session came up. The relay client asks a supernode for these.
    pub(crate) fn punches_given_up(&self, now: Time) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self
            .nat
            .punch
            .iter()
            .filter(|(p, (at, st))| {
                let gave_up = match st {
                    PunchState::Unpunchable => true,
                    PunchState::Failed => now.saturating_sub(*at) >= PUNCH_DEADLINE,
                    PunchState::Punching { .. } | PunchState::Punched => false,
                };
                gave_up && self.table.by_peer(p).is_none()
            })
            .map(|(p, _)| *p)
            .collect();
        v.sort();
        v
    }

    /// A message of a subscribed topic from `origin`, forwarded by `via`
    /// with `hops` (before our increment): when `via` got it from the
    /// origin itself and we have no session with it, ask for a punch. A
    /// relayed origin is asked for by [`Node::nat_relayed_tick`] (through
    /// its relay's supernode, with its own back-off).
    pub(crate) fn nat_saw_origin(&mut self, via: PeerId, origin: PeerId, hops: u8) {
        let now = self.now;
        if hops != 1
            || self.nat.local.is_empty()
            || origin == self.identity.public_key()
            || self.table.by_peer(&origin).is_some()
        {
            return;
        }
        if let Some(&(at, _)) = self.nat.punch.get(&origin) {
            if now.saturating_sub(at) < PUNCH_RETRY {
                return;
            }
        }
        let Some(idx) = self.table.by_peer(&via).filter(|&i| self.nat_capable(i)) else {
            return;
        };
        self.nat_ask_punch(idx, origin);
    }

    /// Sends PUNCH_REQUEST for `target` to the forwarder of session `idx`;
    /// the punch counts as failed until an offer starts it.
    pub(crate) fn nat_ask_punch(&mut self, idx: u32, target: PeerId) {
        let now = self.now;
        if self.nat.punch.len() >= MAX_PEER_NOTES {
            self.nat.punch.clear();
        }
        self.nat.punch.insert(target, (now, PunchState::Failed));
        self.stats.nat.punch_requests += 1;
        let txid = self.rng.next_u32();
        self.queue_frame(
            idx,
            &Frame::Nat(NatFrame::PunchRequest {
                txid,
                target: target.0,
            }),
        );
    }

    /// Forwarder side: introduce `peer` (session `idx`) to `target`.
    pub(crate) fn nat_introduce(&mut self, idx: u32, peer: PeerId, target: [u8; 32]) {
        let now = self.now;
        let target = PeerId(target);
        let recent = self
            .nat
            .last_punch
            .get(&(peer, target))
            .is_some_and(|&t| now.saturating_sub(t) < INTRODUCE_INTERVAL);
        let tidx = self.table.by_peer(&target).filter(|&i| self.nat_capable(i));
        let a = self.table.get(idx).and_then(|s| s.path.udp());
        let b = tidx
            .and_then(|i| self.table.get(i))
            .and_then(|s| s.path.udp());
        let (Some(tidx), Some(a), Some(b), false) = (tidx, a, b, recent || target == peer) else {
            self.stats.nat.punch_requests_refused += 1;
            return;
        };
        if self.nat.last_punch.len() >= MAX_PEER_NOTES {
            self.nat.last_punch.clear();
        }
        self.nat.last_punch.insert((peer, target), now);
        let (ca, cb) = (self.nat.class_of(&peer), self.nat.class_of(&target));
        let side = |observed, class| Side {
            observed,
            class,
            prediction: None,
        };
        let cfg = PunchConfig::default();
        let plan = strategy(&cfg, &side(a, ca), &side(b, cb));
        // A spray pair is punchable when its symmetric end's host opens
        // spray sockets (it announced the capability).
        let spray = match spray_pair(ca, cb) {
            Some(true) => Some(self.spray_capable(idx)),
            Some(false) => Some(self.spray_capable(tidx)),
            None => None,
        };
        let punchable =
            matches!(plan, Ok(Strategy::Direct | Strategy::Predict)) || spray == Some(true);
        if !punchable {
            self.stats.nat.punch_unpunchable += 1;
            let f = NatFrame::PunchOffer {
                peer: target.0,
                offer: None,
            };
            return self.queue_frame(idx, &Frame::Nat(f));
        }
        // Both dial when the later offer lands: the nearer end waits half
        // the difference of the round trips.
        let (ra, rb) = (self.nat_rtt(&peer), self.nat_rtt(&target));
        let half = |x: Duration, y: Duration| {
            let d = x.saturating_sub(y) / 2;
            d.min(MAX_PUNCH_DELAY).as_millis() as u16
        };
        self.stats.nat.punch_introductions += 1;
        if spray.is_some() {
            self.stats.nat.spray_introductions += 1;
        }
        let offer = |to: PeerId, addr, class, delay_ms| NatFrame::PunchOffer {
            peer: to.0,
            offer: Some(super::Offer {
                addr,
                class,
                delay_ms,
            }),
        };
        let to_a = offer(target, b, cb, half(rb, ra));
        let to_b = offer(peer, a, ca, half(ra, rb));
        self.queue_frame(idx, &Frame::Nat(to_a));
        self.queue_frame(tidx, &Frame::Nat(to_b));
    }

    /// An end of a punch: dial `offer.addr` (and predicted ports) after its
    /// delay, within the punch budget ([`PUNCH_BURST`] in all,
    /// [`PUNCH_BURST_PER_FORWARDER`] from `forwarder`).
    pub(crate) fn nat_offer(
        &mut self,
        forwarder: PeerId,
        peer: [u8; 32],
        offer: Option<super::Offer>,
    ) {
        let now = self.now;
        let peer = PeerId(peer);
        let Some(o) = offer else {
            self.stats.nat.punch_reported_unpunchable += 1;
            self.nat.punch.insert(peer, (now, PunchState::Unpunchable));
            return;
        };
        // A relayed peer is punched to all the same: a direct session takes
        // over from the relayed one.
        if peer == self.identity.public_key() || self.reached_directly(&peer) {
            return;
        }
        // Both ends ask for the introduction, so a second offer often comes
        // while the first punch runs: it neither restarts nor adds rounds.
        if self.nat.punch_runs.contains_key(&peer) {
            self.stats.nat.punch_offers_duplicate += 1;
            return;
        }
        let orders = &mut self.nat.punch_orders;
        super::prune_window(orders, now);
        let from_forwarder = orders.iter().filter(|o| o.1 == forwarder).count();
        if orders.len() >= PUNCH_BURST
            || from_forwarder >= PUNCH_BURST_PER_FORWARDER
            || self.nat.dials.len() >= MAX_DIALS
        {
            self.stats.nat.punch_offers_refused += 1;
            return;
        }
        self.nat.punch_orders.push_back((now, forwarder));
        if self.nat.punch.len() >= MAX_PEER_NOTES {
            self.nat.punch.clear();
        }
        self.nat
            .punch
            .insert(peer, (now, PunchState::Punching { since: now }));
        self.stats.nat.punch_attempts += 1;
        let offers = &mut self.nat.punch_offers;
        if offers.len() >= MAX_PEER_NOTES && !offers.contains_key(&peer) {
            offers.clear();
        }
        *offers.entry(peer).or_insert(0) += 1;
        let at = now + Duration::from_millis(u64::from(o.delay_ms)).min(MAX_PUNCH_DELAY);
        let attempts = self.punch_rounds();
        let mode = self.punch_mode_for(o.class);
        self.note_punch_mode(peer, mode);
        if self.nat.punch_runs.len() >= MAX_PEER_NOTES {
            self.nat.punch_runs.clear();
        }
        self.nat.punch_runs.insert(
            peer,
            PunchRun {
                addr: o.addr,
                attempts,
                fired: 0,
                next: at,
                deadline: at + PUNCH_ROUND * (attempts - 1) + PUNCH_DEADLINE,
                mode,
                spray_at: None,
            },
        );
        self.note_punch_rounds(peer, 0);
        // A spray covers the ports prediction would guess.
        if mode == PunchMode::Direct
            && self.cfg.nat.port_prediction_enabled
            && o.class == NatType::SymmetricNat
        {
            for d in 1..=PREDICTION_SPREAD {
                for p in [o.addr.port().checked_add(d), o.addr.port().checked_sub(d)] {
                    if let Some(p) = p.filter(|&p| p != 0) {
                        self.nat
                            .predicted
                            .push((at, SocketAddr::new(o.addr.ip(), p)));
                    }
                }
            }
        }
    }

    fn note_punch_rounds(&mut self, peer: PeerId, n: u32) {
        if self.nat.punch_rounds.len() >= MAX_PEER_NOTES
            && !self.nat.punch_rounds.contains_key(&peer)
        {
            self.nat.punch_rounds.clear();
        }
        self.nat.punch_rounds.insert(peer, n);
    }

    /// One punch round toward `addr`: message 1 of the pending dial again,
    /// or a new dial when there is none. The address may stand for a
    /// relayed session (the relay client's alias of the address it dialled
    /// first): the punch dials it all the same.
    fn punch_round(&mut self, addr: SocketAddr) {
        let path = crate::path::Path::Udp(addr);
        let relay_alias = self
            .table
            .by_path(&path)
            .and_then(|i| self.table.get(i))
            .is_some_and(|s| matches!(s.path, crate::path::Path::Relay { .. }));
        if relay_alias {
            self.table.by_path.remove(&path);
        }
        let pending = self
            .table
            .by_path(&path)
            .and_then(|i| self.table.get(i))
            .and_then(|s| match &s.state {
                crate::session::State::Initiating(p) => Some(p.last_datagram.clone()),
                _ => None,
            });
        match pending {
            Some(d) => self.emit(path, d),
            None => self.connect(addr),
        }
    }

    /// Punch bookkeeping on each tick: predicted-port dials and rounds that
    /// are due, punches that ran out of rounds and time.
    pub(crate) fn nat_punch_tick(&mut self, now: Time) {
        for a in super::take_due(&mut self.nat.predicted, now) {
            self.connect(a);
        }
        let mut peers: Vec<PeerId> = self.nat.punch_runs.keys().copied().collect();
        peers.sort_unstable();
        for peer in peers {
            let Some(mut run) = self.nat.punch_runs.get(&peer).copied() else {
                continue;
            };
            // Relayed is not connected: the punch goes on.
            let connected = self.reached_directly(&peer);
            if !connected && run.fired < run.attempts && now >= run.next {
                run.fired += 1;
                run.next = now + PUNCH_ROUND;
                self.stats.nat.punch_rounds += 1;
                self.note_punch_rounds(peer, run.fired);
                self.punch_round(run.addr);
                self.spray_round(peer, &mut run, now);
            }
            if let Some(at) = run.spray_at.filter(|&at| !connected && now >= at) {
                run.spray_at = None;
                self.spray_order(peer, &run, at);
            }
            if connected || now >= run.deadline {
                self.nat.punch_runs.remove(&peer);
                let st = self.nat.punch.get_mut(&peer);
                if let Some((_, st @ PunchState::Punching { .. })) = st {
                    *st = PunchState::Failed;
                    self.stats.nat.punch_failed += 1;
                    if self.nat.punch_failures.len() >= MAX_PUNCH_FAILURES {
                        self.nat.punch_failures.pop_front();
                    }
                    self.nat.punch_failures.push_back(PunchFailure {
                        peer,
                        addr: run.addr,
                        attempts: run.fired,
                    });
                }
            } else {
                self.nat.punch_runs.insert(peer, run);
            }
        }
        // After the rounds: a round's probes start in the tick it fired.
        self.spray_tick(now);
        self.nat_relayed_tick(now);
        self.nat_mapped_tick(now);
    }

    /// A session with `peer` came up: a punch in progress succeeded, unless
    /// the session is a relayed one (asked of a supernode while the punch
    /// ran), which neither ends the punch nor counts as it.
    pub(crate) fn nat_punch_established(&mut self, peer: PeerId) {
        let now = self.now;
        if !matches!(
            self.nat.punch.get(&peer),
            Some((_, PunchState::Punching { .. }))
        ) {
            return;
        }
        let direct = self.table.sessions.values().any(|s| {
            !matches!(s.path, crate::path::Path::Relay { .. })
                && s.established()
                    .is_some_and(|e| e.peer == peer && e.retired.is_none())
        });
        if !direct {
            return;
        }
        if let Some((_, st)) = self.nat.punch.get_mut(&peer) {
            if let PunchState::Punching { since } = *st {
                *st = PunchState::Punched;
                self.stats.nat.punch_succeeded += 1;
                if self
                    .nat
                    .punch_modes
                    .get(&peer)
                    .is_some_and(|&m| m != PunchMode::Direct)
                {
                    self.stats.nat.spray_punched += 1;
                }
                let ms = now.saturating_sub(since).as_millis() as u64;
                self.stats.nat.punch_ms_total += ms;
                let times = &mut self.nat.punch_ms;
                if times.len() >= MAX_PEER_NOTES && !times.contains_key(&peer) {
                    times.clear();
                }
                times.insert(peer, ms);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::Offer;
    use crate::{Config, Identity};

    fn node() -> Node {
        let mut n = Node::new(
            Config::default(),
            Identity::from_seed([1; 32]),
            "punch",
            None,
            [2; 32],
            Duration::ZERO,
        )
        .unwrap();
        n.reach.set_nat_type(NatType::RestrictedCone);
        n
    }

    /// An offer from `forwarder` to punch toward peer number `k`.
    fn offer(n: &mut Node, forwarder: u8, k: u16) {
        let mut peer = [0xAA; 32];
        peer[..2].copy_from_slice(&k.to_le_bytes());
        let addr = SocketAddr::from(([198, 51, 100, (k % 250) as u8 + 1], 40000 + k));
        n.nat_offer(
            PeerId([forwarder; 32]),
            peer,
            Some(Offer {
                addr,
                class: NatType::RestrictedCone,
                delay_ms: 0,
            }),
        );
    }

    #[test]
    fn the_punch_budget_covers_a_burst_from_many_forwarders_but_not_one_forwarder() {
        let mut n = node();
        // One forwarder: PUNCH_BURST_PER_FORWARDER per window, the rest refused.
        for k in 0..20 {
            offer(&mut n, 3, k);
        }
        assert_eq!(n.stats.nat.punch_attempts, PUNCH_BURST_PER_FORWARDER as u64);
        assert_eq!(n.stats.nat.punch_offers_refused, 4);
        // Many forwarders at once (a message's first forwarders introducing
        // its receivers to the origin): up to PUNCH_BURST in all.
        for k in 0..60 {
            offer(&mut n, 10 + (k % 200) as u8, 100 + k);
        }
        assert_eq!(n.stats.nat.punch_attempts, PUNCH_BURST as u64);
        let refused = 4 + 60 - (PUNCH_BURST - PUNCH_BURST_PER_FORWARDER) as u64;
        assert_eq!(n.stats.nat.punch_offers_refused, refused);
        // A window later the first forwarder's budget is back.
        n.handle_timeout(super::super::ORDER_WINDOW + Duration::from_millis(100));
        for k in 0..20 {
            offer(&mut n, 3, 1000 + k);
        }
        let carried = PUNCH_BURST + PUNCH_BURST_PER_FORWARDER;
        assert_eq!(n.stats.nat.punch_attempts, carried as u64);
    }
}
