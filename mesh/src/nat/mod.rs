//! NAT traversal in the node, sans-IO: observed addresses (the handshake's
//! `extra` and in-session BINDING frames), the classification driver over
//! `moss-nat`'s classifier (mapping from observers at different IPs,
//! filtering from probes a helper peer has a third party send), and the
//! class the node reports ([`crate::reach::Reachability::nat_type`]).
//!
//! NAT frames go only to peers subscribed to [`CAP_TOPIC`].

mod addr;
mod classify;
mod frames;
mod fresh;
mod mapped;
mod probe;
mod punch;
mod relayed;
mod spray;

pub use addr::{decode_addr, encode_addr, split_addr, AddrError};
pub use frames::{NatFrame, NatFrameError, Offer, ProbeMode, ThirdParty, TOKEN_LEN};
pub use fresh::{
    decode_token_body, encode_token_body, FreshSocket, TokenError, FRESH_CAP_TOPIC, FRESH_COPIES,
    FRESH_HOLD, FRESH_MISSES_FOR_NEGATIVE, FRESH_SOCKET_BASE, FRESH_WAIT, TOKEN_BODY,
};
pub use mapped::{MAPPED_EVERY, MAPPED_PROBES, MAPPED_SENDS};
pub use punch::{
    PunchFailure, PunchState, MAX_PUNCH_ATTEMPTS, MAX_PUNCH_DELAY, MAX_PUNCH_FAILURES,
    PREDICTION_SPREAD, PUNCH_DEADLINE, PUNCH_RETRY, PUNCH_ROUND,
};
pub use relayed::{RELAYED_BACKOFF_MAX, RELAYED_PUNCH_MAX};
pub use spray::{
    PunchMode, SprayOrder, SPRAY_CAP_TOPIC, SPRAY_CHANNEL_BASE, SPRAY_PORTS, SPRAY_PROBES_PER_TICK,
    SPRAY_SOCKETS, SPRAY_STAGGER,
};

use crate::Time;
use moss_crypto::PeerId;
use moss_nat::classify::Classifier;
use moss_telemetry::NatType;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// The capability topic of the NAT frames (PROTOCOL.md "Unknown frame
/// types"): a node subscribes to it to say it understands 0x50–0x55.
pub const CAP_TOPIC: &str = "moss/cap/nat/v1";
pub(crate) const FRAME_TYPES_FIRST: u8 = frames::ty::FIRST;
pub(crate) const FRAME_TYPES_LAST: u8 = frames::ty::LAST;

/// How often each of a few peers is asked for our observed address.
pub const BINDING_EVERY: Duration = Duration::from_secs(30);
/// NAT_CLASS frames each peer is sent per class and session: one lost
/// frame left a node with a single public peer unaware that it was public,
/// so with no helper for its fresh-socket tests (the lossy real-NAT lab).
pub const CLASS_SENDS: u8 = 3;
/// Time between two NAT_CLASS sends to one peer.
pub const CLASS_EVERY: Duration = Duration::from_secs(2);
/// How long a probe's outcome is awaited after its acknowledgement.
pub const PROBE_WAIT: Duration = Duration::from_secs(3);
/// First wait before a probe is retried (doubles up to [`PROBE_RETRY_MAX`]).
pub const PROBE_RETRY: Duration = Duration::from_secs(2);
/// Longest wait between probe attempts while the class is unknown.
pub const PROBE_RETRY_MAX: Duration = Duration::from_secs(30);
/// A helper answers one probe request per peer in this interval.
pub const PROBE_REQUEST_INTERVAL: Duration = Duration::from_secs(1);
/// Third parties a helper remembers offering to one requester.
pub const MAX_OFFERED: usize = 16;
/// A third party carries out at most this many probe orders …
pub const ORDER_BURST: usize = 8;
/// … per this window (so no helper can make it spray a victim).
pub const ORDER_WINDOW: Duration = Duration::from_secs(10);
/// Longest delay a probe order may ask for.
pub const MAX_ORDER_DELAY: Duration = Duration::from_secs(2);
/// How long a helper makes the third party wait in an other-port probe, so
/// the requester's datagram to the third party's IP goes out first.
pub const OTHER_PORT_DELAY_MS: u16 = 600;
/// Misses through distinct third parties before a filtering test counts
/// as negative.
pub const MISSES_FOR_NEGATIVE: usize = 2;
/// Peers asked per binding round.
const BINDING_FANOUT: usize = 3;
/// Outstanding binding requests kept.
const MAX_PENDING_BINDINGS: usize = 16;
/// Scheduled probe dials kept.
const MAX_DIALS: usize = 24;
/// Third parties remembered as possible observers.
const MAX_OBSERVER_CANDIDATES: usize = 8;
/// Peers whose announced class or last probe request is remembered.
const MAX_PEER_NOTES: usize = 4096;

/// NAT counters (in [`crate::stats::Stats::nat`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NatStats {
    /// Handshake observed addresses (`extra`) that did not decode: ignored,
    /// the handshake completed.
    pub observed_addr_ignored: u64,
    /// Observations recorded (handshakes and binding responses).
    pub observations: u64,
    /// BINDING_REQUESTs sent.
    pub binding_requests: u64,
    /// BINDING_REQUESTs answered.
    pub binding_answers: u64,
    /// BINDING_RESPONSEs or PROBE_ACKs that matched no request of ours.
    pub unsolicited_replies: u64,
    /// PROBE_REQUESTs we sent (as the node being classified).
    pub probes_requested: u64,
    /// Probes whose third party reached us.
    pub probes_reached: u64,
    /// Probes whose third party did not reach us in time.
    pub probes_missed: u64,
    /// Probes that could not run (no third party, or one we had contacted).
    pub probes_inconclusive: u64,
    /// PROBE_REQUESTs we served as a helper.
    pub probes_helped: u64,
    /// PROBE_REQUESTs refused (too frequent, no third party, no address).
    pub probe_requests_refused: u64,
    /// PROBE_ORDERs we carried out as the third party.
    pub probe_orders_done: u64,
    /// PROBE_ORDERs refused (rate limit, known target, queue full).
    pub probe_orders_refused: u64,
    /// Times the observed address changed and the node re-profiled.
    pub address_changes: u64,
    /// PUNCH_REQUESTs we sent (a topic's origin with no session to us).
    pub punch_requests: u64,
    /// PUNCH_REQUESTs we sent for relayed peers (in `punch_requests` too).
    pub relayed_punch_requests: u64,
    /// PUNCH_REQUESTs we refused as forwarder (too frequent, unknown peer).
    pub punch_requests_refused: u64,
    /// Pairs we introduced as forwarder (offers to both ends).
    pub punch_introductions: u64,
    /// Pairs we judged unpunchable as forwarder.
    pub punch_unpunchable: u64,
    /// Unpunchable verdicts we received as an end.
    pub punch_reported_unpunchable: u64,
    /// Punches we started (offers carried out).
    pub punch_attempts: u64,
    /// Punch rounds fired (`hole_punch_attempts` per punch at most).
    pub punch_rounds: u64,
    /// Punch offers refused (dial budget).
    pub punch_offers_refused: u64,
    /// Punch offers ignored because a punch toward that peer was running.
    pub punch_offers_duplicate: u64,
    /// Punches that ended in a session.
    pub punch_succeeded: u64,
    /// Punches that ran out of time.
    pub punch_failed: u64,
    /// Sum of the successful punches' times from offer to session, in ms.
    pub punch_ms_total: u64,
    /// Introductions of spray pairs (symmetric and a port-filtering cone).
    pub spray_introductions: u64,
    /// Spray probes sent to random ports (as the cone end).
    pub spray_probes: u64,
    /// Spray probes not queued (the queue was full).
    pub spray_probes_dropped: u64,
    /// Spray socket rounds handed to the host (as the symmetric end).
    pub spray_rounds: u64,
    /// Spray socket rounds not handed over (the host was behind).
    pub spray_rounds_refused: u64,
    /// Spray punches that ended in a session.
    pub spray_punched: u64,
    /// Longest a spray probe waited in the queue before it went out, ms.
    pub spray_probe_wait_ms_max: u64,
    /// Spray probes that went out later than the symmetric end's sockets
    /// open in the round (the stagger after they were queued).
    pub spray_probes_late: u64,
    /// Longest a socket round was handed over after it was due, ms
    /// (symmetric end: its ticks ran late).
    pub spray_order_late_ms_max: u64,
    /// FRESH_REQUESTs we sent (filtering tests from a fresh socket).
    pub fresh_requests: u64,
    /// FRESH_SEENs received: the helper got our fresh socket's token.
    pub fresh_seen: u64,
    /// Fresh probes whose third party's token reached the fresh socket.
    pub fresh_reached: u64,
    /// Fresh probes seen by the helper whose token never arrived.
    pub fresh_missed: u64,
    /// Fresh probes with no verdict (no third party, no FRESH_SEEN).
    pub fresh_inconclusive: u64,
    /// Fresh-socket orders not handed to the host (it was behind).
    pub fresh_sockets_refused: u64,
    /// Probe tokens that arrived on a fresh socket and counted.
    pub fresh_tokens_in: u64,
    /// Datagrams on a fresh socket that were not the running probe's token.
    pub fresh_foreign: u64,
    /// Fresh probes we served as helper (token matched, third party told).
    pub fresh_helped: u64,
    /// NAT token datagrams that matched no request of ours (dropped).
    pub fresh_tokens_unmatched: u64,
    /// MAPPED frames we sent (our port mapping, to relayed peers).
    pub mapped_sent: u64,
    /// MAPPED frames taken: a relayed peer's mapped address to probe.
    pub mapped_received: u64,
    /// MAPPED frames ignored (not on a relayed session, or too many peers).
    pub mapped_ignored: u64,
    /// Probes sent to relayed peers' mapped addresses.
    pub mapped_probes: u64,
}

impl NatStats {
    /// Adds another node's counters.
    pub fn merge(&mut self, o: &NatStats) {
        self.observed_addr_ignored += o.observed_addr_ignored;
        self.observations += o.observations;
        self.binding_requests += o.binding_requests;
        self.binding_answers += o.binding_answers;
        self.unsolicited_replies += o.unsolicited_replies;
        self.probes_requested += o.probes_requested;
        self.probes_reached += o.probes_reached;
        self.probes_missed += o.probes_missed;
        self.probes_inconclusive += o.probes_inconclusive;
        self.probes_helped += o.probes_helped;
        self.probe_requests_refused += o.probe_requests_refused;
        self.probe_orders_done += o.probe_orders_done;
        self.probe_orders_refused += o.probe_orders_refused;
        self.address_changes += o.address_changes;
        self.punch_requests += o.punch_requests;
        self.relayed_punch_requests += o.relayed_punch_requests;
        self.punch_requests_refused += o.punch_requests_refused;
        self.punch_introductions += o.punch_introductions;
        self.punch_unpunchable += o.punch_unpunchable;
        self.punch_reported_unpunchable += o.punch_reported_unpunchable;
        self.punch_attempts += o.punch_attempts;
        self.punch_rounds += o.punch_rounds;
        self.punch_offers_refused += o.punch_offers_refused;
        self.punch_offers_duplicate += o.punch_offers_duplicate;
        self.punch_succeeded += o.punch_succeeded;
        self.punch_failed += o.punch_failed;
        self.punch_ms_total += o.punch_ms_total;
        self.spray_introductions += o.spray_introductions;
        self.spray_probes += o.spray_probes;
        self.spray_probes_dropped += o.spray_probes_dropped;
        self.spray_rounds += o.spray_rounds;
        self.spray_rounds_refused += o.spray_rounds_refused;
        self.spray_punched += o.spray_punched;
        self.spray_probe_wait_ms_max = self.spray_probe_wait_ms_max.max(o.spray_probe_wait_ms_max);
        self.spray_probes_late += o.spray_probes_late;
        self.spray_order_late_ms_max = self.spray_order_late_ms_max.max(o.spray_order_late_ms_max);
        self.fresh_requests += o.fresh_requests;
        self.fresh_seen += o.fresh_seen;
        self.fresh_reached += o.fresh_reached;
        self.fresh_missed += o.fresh_missed;
        self.fresh_inconclusive += o.fresh_inconclusive;
        self.fresh_sockets_refused += o.fresh_sockets_refused;
        self.fresh_tokens_in += o.fresh_tokens_in;
        self.fresh_foreign += o.fresh_foreign;
        self.fresh_helped += o.fresh_helped;
        self.fresh_tokens_unmatched += o.fresh_tokens_unmatched;
        self.mapped_sent += o.mapped_sent;
        self.mapped_received += o.mapped_received;
        self.mapped_ignored += o.mapped_ignored;
        self.mapped_probes += o.mapped_probes;
    }
}

/// Decodes the observed address of a handshake's `extra`; anything that is
/// not exactly one address is ignored and counted (the handshake goes on).
pub(crate) fn decode_observed(stats: &mut NatStats, extra: &[u8]) -> Option<SocketAddr> {
    match decode_addr(extra) {
        Ok(a) => Some(a),
        Err(_) => {
            stats.observed_addr_ignored += 1;
            None
        }
    }
}

/// Removes the entries of `v` that are due at `now` and returns their
/// addresses.
fn take_due(v: &mut Vec<(Time, SocketAddr)>, now: Time) -> Vec<SocketAddr> {
    let mut due = Vec::new();
    v.retain(|&(at, a)| {
        if at <= now {
            due.push(a);
            false
        } else {
            true
        }
    });
    due
}

/// The candidates in `pool` that the requester was not offered yet
/// (`offered`: the third parties a helper named to it, oldest first).
/// When every one was, the list starts over, but never with the last one
/// while there is another: so a requester that must rule out the many
/// peers it already contacted meets each other one in turn, not the same
/// few at random.
fn not_offered(
    pool: Vec<(u32, PeerId, SocketAddr)>,
    offered: &mut Vec<PeerId>,
) -> Vec<(u32, PeerId, SocketAddr)> {
    let fresh: Vec<_> = pool
        .iter()
        .filter(|c| !offered.contains(&c.1))
        .copied()
        .collect();
    if !fresh.is_empty() {
        return fresh;
    }
    let last = offered.last().copied();
    offered.clear();
    let others: Vec<_> = pool.iter().filter(|c| Some(c.1) != last).copied().collect();
    if others.is_empty() {
        pool
    } else {
        others
    }
}

/// Notes that `peer` was offered (the list stays within
/// [`MAX_OFFERED`]).
fn note_offered(offered: &mut Vec<PeerId>, peer: PeerId) {
    offered.retain(|p| *p != peer);
    if offered.len() >= MAX_OFFERED {
        offered.remove(0);
    }
    offered.push(peer);
}

/// Forgets the entries of `q` recorded longer than [`ORDER_WINDOW`] ago.
fn prune_window<T: WindowEntry>(q: &mut VecDeque<T>, now: Time) {
    while q
        .front()
        .is_some_and(|e| now.saturating_sub(e.at()) >= ORDER_WINDOW)
    {
        q.pop_front();
    }
}

/// An entry of a time-ordered budget queue ([`prune_window`]).
trait WindowEntry {
    /// When it was recorded.
    fn at(&self) -> Time;
}

impl WindowEntry for Time {
    fn at(&self) -> Time {
        *self
    }
}

impl<K> WindowEntry for (Time, K) {
    fn at(&self) -> Time {
        self.0
    }
}

/// A probe we asked a helper for.
#[derive(Debug, Clone, Copy)]
struct Probe {
    txid: u32,
    mode: ProbeMode,
    helper: PeerId,
    /// When the request went out (a later inbound confirmation answers it).
    sent: Time,
    third: Option<ThirdParty>,
    deadline: Time,
    /// Run from a fresh socket (`None`: the in-session probe).
    fresh: Option<fresh::Fresh>,
}

/// The node's NAT state.
#[derive(Debug, Default)]
pub(crate) struct NatState {
    classifier: Classifier,
    /// The host's interface addresses (with the bound port).
    local: Vec<SocketAddr>,
    /// The external address the gateway's port mapping forwards to us.
    mapped: Option<SocketAddr>,
    /// Our mapped address told to relayed peers, and theirs probed.
    mapped_peers: mapped::MappedState,
    bindings: VecDeque<(u32, PeerId, Time)>,
    /// Round trips measured by binding requests.
    rtt: HashMap<PeerId, Duration>,
    /// Punches by the peer they aim at.
    punch: HashMap<PeerId, (Time, punch::PunchState)>,
    /// Forwarder side: last introduction per (requester, target).
    last_punch: HashMap<(PeerId, PeerId), Time>,
    /// End side: when recent punch offers were carried out, and whose.
    punch_orders: VecDeque<(Time, PeerId)>,
    /// Rounds of punches in progress, by the peer they aim at.
    punch_runs: HashMap<PeerId, punch::PunchRun>,
    /// Punch offers carried out per peer.
    punch_offers: HashMap<PeerId, u32>,
    /// Offer-to-session time of the punches that succeeded, ms.
    punch_ms: HashMap<PeerId, u64>,
    /// Rounds the last punch toward each peer fired.
    punch_rounds: HashMap<PeerId, u32>,
    /// Punches that failed after all their rounds, not yet taken.
    punch_failures: VecDeque<PunchFailure>,
    /// Punch requests for relayed peers, by peer.
    relayed_punch: HashMap<PeerId, relayed::RelayedPunch>,
    /// When the relayed peers are looked at next.
    relayed_scan: Time,
    /// Predicted-port dials of punches toward symmetric peers.
    predicted: Vec<(Time, SocketAddr)>,
    /// Spray sockets the host opens per round (0: it opens none).
    spray_sockets: u16,
    /// Spray probes to send: (peer, address dialled, probe destination).
    spray_queue: VecDeque<(PeerId, SocketAddr, SocketAddr, Time)>,
    /// When the spray queue was last drained (its pacing is by time).
    spray_last: Time,
    /// Spray socket rounds for the host.
    spray_orders: VecDeque<SprayOrder>,
    /// How the last punch toward each peer ran.
    punch_modes: HashMap<PeerId, PunchMode>,
    next_binding: Time,
    probe: Option<Probe>,
    /// Outcome of the two filtering tests so far.
    other_ip: Option<bool>,
    other_port: Option<bool>,
    next_probe: Time,
    probe_backoff: Duration,
    /// Whether the reach confirmation was fed to the classifier.
    confirmation_fed: bool,
    /// Helper side: last probe request per peer, and the third parties
    /// offered to it so far (oldest first, see [`not_offered`]).
    last_request: HashMap<PeerId, (Time, Vec<PeerId>)>,
    /// Third-party side: when recent orders were carried out.
    orders: VecDeque<Time>,
    dials: Vec<(Time, SocketAddr)>,
    /// Classes peers announced.
    classes: HashMap<PeerId, NatType>,
    /// Third parties that missed in test II and in test III.
    misses: (Vec<[u8; 32]>, Vec<[u8; 32]>),
    /// The same for fresh-socket probes.
    fresh_misses: (Vec<[u8; 32]>, Vec<[u8; 32]>),
    /// Whether the host opens fresh probe sockets.
    fresh_sockets: bool,
    /// Fresh probe sockets for the host to open.
    fresh_orders: VecDeque<fresh::FreshSocket>,
    /// Helper side: fresh requests waiting for their token.
    fresh_pending: Vec<fresh::FreshPending>,
    /// The next fresh socket id.
    next_fresh_id: u64,
    /// A helper whose last third party was of no use.
    avoid_helper: Option<PeerId>,
    /// A helper to ask again next, with the third parties it named in a
    /// row that were of no use (ones we had contacted).
    streak: Option<(PeerId, Vec<PeerId>)>,
    /// Peers told our current class: the sends so far and the last one's
    /// time (forgotten when a new session with the peer is established).
    told: HashMap<PeerId, (u8, Time)>,
    /// Third parties learnt from probes, to dial for a second
    /// observation (best announced class first).
    mapping_dial: Vec<(SocketAddr, NatType)>,
}

/// Preference of a third party by its announced class: reachable ones first.
pub(crate) fn reach_rank(c: NatType) -> u8 {
    match c {
        NatType::Public => 0,
        NatType::FullCone => 1,
        NatType::Unknown => 3,
        _ => 2,
    }
}

impl NatState {
    /// The running probe, if it is request `txid` to `helper`.
    fn probe_for(&mut self, txid: u32, helper: PeerId) -> Option<&mut Probe> {
        self.probe
            .as_mut()
            .filter(|p| p.txid == txid && p.helper == helper)
    }

    /// Notes a miss of `mode`'s test through third party `peer` (fresh
    /// probes and in-session ones counted apart); true once `needed`
    /// distinct third parties missed.
    fn note_miss(&mut self, fresh: bool, mode: ProbeMode, peer: [u8; 32], needed: usize) -> bool {
        let (ip, port) = if fresh {
            (&mut self.fresh_misses.0, &mut self.fresh_misses.1)
        } else {
            (&mut self.misses.0, &mut self.misses.1)
        };
        let misses = match mode {
            ProbeMode::OtherIp => ip,
            ProbeMode::OtherPort => port,
        };
        if !misses.contains(&peer) {
            misses.push(peer);
        }
        misses.len() >= needed
    }

    /// Helper side: the third parties named to `peer` so far, taken out
    /// (put back with the request's time once it is answered).
    fn take_offered(&mut self, peer: &PeerId) -> Vec<PeerId> {
        self.last_request
            .remove(peer)
            .map(|(_, o)| o)
            .unwrap_or_default()
    }

    /// A helper that failed us: another one next time.
    fn avoid(&mut self, helper: PeerId) {
        self.avoid_helper = Some(helper);
        self.streak = None;
    }

    /// `helper` named `third`, of no use to us: true to ask it again (it
    /// named somebody new), false when it named one it did before in
    /// this streak (it has nobody else).
    fn note_streak(&mut self, helper: PeerId, third: [u8; 32]) -> bool {
        let third = PeerId(third);
        let mut named = match self.streak.take() {
            Some((h, v)) if h == helper => v,
            _ => Vec::new(),
        };
        if named.contains(&third) || named.len() >= MAX_OFFERED {
            return false;
        }
        named.push(third);
        self.streak = Some((helper, named));
        true
    }

    fn note_rtt(&mut self, peer: PeerId, rtt: Duration) {
        if self.rtt.len() >= MAX_PEER_NOTES && !self.rtt.contains_key(&peer) {
            self.rtt.clear();
        }
        self.rtt.insert(peer, rtt);
    }
    fn add_observer_candidate(&mut self, addr: SocketAddr, class: NatType) {
        if self.mapping_dial.iter().any(|c| c.0 == addr) {
            return;
        }
        if self.mapping_dial.len() >= MAX_OBSERVER_CANDIDATES {
            self.mapping_dial.remove(0);
        }
        self.mapping_dial.push((addr, class));
    }

    /// The class a peer announced (`unknown` if none).
    pub fn class_of(&self, peer: &PeerId) -> NatType {
        self.classes.get(peer).copied().unwrap_or_default()
    }

    fn note_class(&mut self, peer: PeerId, class: NatType) {
        if self.classes.len() >= MAX_PEER_NOTES && !self.classes.contains_key(&peer) {
            self.classes.clear();
        }
        self.classes.insert(peer, class);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_helper_names_each_of_its_peers_in_turn_then_starts_over() {
        let pool: Vec<_> = (1..=4u8)
            .map(|i| {
                (
                    u32::from(i),
                    PeerId([i; 32]),
                    SocketAddr::from(([198, 51, 100, i], 4000)),
                )
            })
            .collect();
        let mut offered = Vec::new();
        let mut named = Vec::new();
        for k in 0..4usize {
            let left = not_offered(pool.clone(), &mut offered);
            assert_eq!(left.len(), 4 - k, "the ones not named yet");
            // The first of what is left, as a helper picking at random might.
            named.push(left[0].1);
            note_offered(&mut offered, left[0].1);
        }
        named.sort();
        named.dedup();
        assert_eq!(named.len(), 4, "all four named once");
        // All named: it starts over, never with the last one named.
        let last = offered.last().copied();
        let again = not_offered(pool.clone(), &mut offered);
        assert_eq!(again.len(), 3);
        assert!(again.iter().all(|c| Some(c.1) != last));
        // A pool of one is named every time.
        let one = vec![pool[0]];
        let mut offered = vec![pool[0].1];
        assert_eq!(not_offered(one, &mut offered).len(), 1);
    }

    #[test]
    fn a_bad_observed_address_is_ignored_and_counted() {
        let mut st = NatStats::default();
        let mut good = Vec::new();
        encode_addr("203.0.113.5:4000".parse().unwrap(), &mut good);
        assert_eq!(
            decode_observed(&mut st, &good),
            Some("203.0.113.5:4000".parse().unwrap())
        );
        assert_eq!(st.observed_addr_ignored, 0);
        for bad in [
            &[][..],
            &[9, 1, 2, 3, 4, 0, 1],
            &[4, 1, 2],
            &[4, 0, 0, 0, 0, 0, 1],
        ] {
            assert_eq!(decode_observed(&mut st, bad), None);
        }
        assert_eq!(st.observed_addr_ignored, 4);
    }

    #[test]
    fn due_entries_leave_and_the_window_forgets() {
        let a: SocketAddr = "198.51.100.1:1".parse().unwrap();
        let b: SocketAddr = "198.51.100.2:2".parse().unwrap();
        let mut v = vec![(Duration::from_secs(1), a), (Duration::from_secs(5), b)];
        assert_eq!(take_due(&mut v, Duration::from_secs(2)), vec![a]);
        assert_eq!(v, vec![(Duration::from_secs(5), b)]);
        let mut q: VecDeque<Time> = [Duration::ZERO, Duration::from_secs(9)].into();
        prune_window(&mut q, ORDER_WINDOW + Duration::from_secs(1));
        assert_eq!(q, VecDeque::from([Duration::from_secs(9)]));
    }
}
