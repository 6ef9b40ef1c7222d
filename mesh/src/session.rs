//! Per-peer session state: handshake progress, the peer's topics, pending frames, reassembly of fragmented messages and the
//! inbound rate limiter.

use crate::path::Path;
use crate::wire::{FRAGMENT_CHUNK, MAX_FRAGMENTS};
use crate::Time;
use moss_crypto::{Handshake, PeerId};
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::time::Duration;

/// One session slot, keyed by our local index.
pub(crate) struct Session {
    /// The peer's index for this session (0 until known).
    pub remote_index: u32,
    /// Where the peer's datagrams come from (updated on authenticated data).
    pub path: Path,
    /// Last authenticated datagram from the peer.
    pub last_recv: Stamp,
    /// Last datagram we sent.
    pub last_send: Stamp,
    /// Handshake or transport state.
    pub state: State,
}

/// A point on the node's clock in whole milliseconds: 8 B where a
/// `Duration` takes 16, for the timestamps every idle session keeps. It
/// holds the millisecond plus one, so an `Option<Stamp>` is 8 B too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(NonZeroU64);

impl Stamp {
    /// `t`, rounded down to the millisecond.
    pub fn at(t: Time) -> Self {
        let ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        Self(NonZeroU64::MIN.saturating_add(ms))
    }

    /// The millisecond this stamp names.
    fn millis(self) -> u64 {
        self.0.get() - 1
    }

    /// True once `now` has come to this stamp's millisecond.
    pub fn reached(self, now: Time) -> bool {
        Self::at(now) >= self
    }

    /// Time from this stamp to `now` (zero if `now` is earlier).
    pub fn since(self, now: Time) -> Duration {
        now.saturating_sub(Duration::from_millis(self.millis()))
    }
}

impl Default for Stamp {
    /// The clock's zero.
    fn default() -> Self {
        Self::at(Time::ZERO)
    }
}

/// Where a session is in its life.
pub(crate) enum State {
    /// We sent message 1 and wait for message 2.
    Initiating(Box<Pending>),
    /// We answered with message 2 and wait for message 3.
    Responding(Box<Pending>),
    /// Transport keys are in place.
    Established(Box<Established>),
}

/// A handshake in flight, with the datagram to retransmit.
pub(crate) struct Pending {
    /// The Noise state.
    pub hs: Handshake,
    /// Our last handshake datagram, resent on timer or on a duplicate.
    pub last_datagram: Vec<u8>,
    /// Retransmissions so far.
    pub attempts: u32,
    /// When to retransmit next.
    pub next_retry: Time,
    /// When we last answered a repeated message (responder side).
    pub last_echo: Time,
    /// When the handshake started (it times out from here).
    pub created: Time,
    /// A re-handshake to a peer we hold a session with (prompted by a
    /// hint or by silence): its path stays the old session's, and its
    /// failure is no [`crate::Event::ConnectFailed`].
    pub probe: bool,
}

/// An established session. With local transport its transport record
/// (keys, counters, replay window, wire path) is here, in [`Self::keys`];
/// with detached transport it is on an engine shard.
pub(crate) struct Established {
    /// The transport record, while this node opens and seals the
    /// session's datagrams itself (local transport); `None` when an engine
    /// shard or the sharded node's classifier holds it.
    pub keys: Option<Box<crate::shard::ShardSession>>,
    /// The peer's authenticated identity.
    pub peer: PeerId,
    /// True if we sent message 1.
    pub initiator: bool,
    /// Topics the peer subscribed to.
    pub topics: TopicList,
    /// Encoded frames waiting to be sealed into a datagram.
    pub pending: Vec<u8>,
    /// Our last handshake datagram, resent when the peer repeats the
    /// message before it: an XX initiator's message 3, an IK responder's
    /// message 2. Boxed twice: a thin pointer (8 B, not 16) in every idle
    /// session, which drops it once the peer talks.
    pub final_datagram: Option<Box<Box<[u8]>>>,
    /// Partially received fragmented messages.
    pub reassembly: Reassembly,
    /// Next transfer id for messages we fragment to this peer.
    pub next_transfer: u32,
    /// Our address as the peer observed it during the handshake.
    pub observed: Option<SocketAddr>,
    /// When a session that lost a duplicate to another with the same peer
    /// goes: until then it still takes the peer's datagrams (some were in
    /// flight when it lost) but sends nothing of its own.
    pub retired: Option<Stamp>,
    /// When its handshake started.
    pub began: Stamp,
    /// When it came up (an IK responder's: when it was confirmed).
    pub up: Stamp,
    /// An IK responder's session before the initiator's first data: its
    /// keys are installed, but it is not the peer's session yet (a
    /// replayed IK message 1 must not displace a live one).
    pub unconfirmed: bool,
}

impl Session {
    /// Notes an authenticated datagram from the peer at `now`. An
    /// initiator's copy of message 3 is no longer needed once the
    /// responder talks: it has the session, so it won't repeat message 2.
    pub fn heard(&mut self, now: Time) {
        self.last_recv = Stamp::at(now);
        if let State::Established(e) = &mut self.state {
            e.final_datagram = None;
        }
    }

    /// The established state, if any.
    pub fn established(&self) -> Option<&Established> {
        match &self.state {
            State::Established(e) => Some(e),
            _ => None,
        }
    }

    /// The established state, mutably.
    pub fn established_mut(&mut self) -> Option<&mut Established> {
        match &mut self.state {
            State::Established(e) => Some(e),
            _ => None,
        }
    }
}

/// Inline sizes in bytes of the records a node keeps per established
/// session (before any heap they own), for the idle-memory benchmark's
/// breakdown: the session slot, its boxed established state, the path (a
/// key of the by-path index), the transport keys' slot, and the router's
/// and scorer's peer records.
pub fn record_sizes() -> [(&'static str, usize); 6] {
    use std::mem::size_of;
    let [router, score] = moss_gossip::peer_record_sizes();
    [
        ("Session", size_of::<Session>()),
        ("Established", size_of::<Established>()),
        ("Path", size_of::<Path>()),
        ("ShardSession", size_of::<crate::shard::ShardSession>()),
        router,
        score,
    ]
}

/// Topics every node announces as capabilities (`moss/cap/…`): a peer's
/// subscription to one of them is a bit, not a string per session.
pub(crate) const CAPABILITIES: [&str; 4] = [
    crate::nat::CAP_TOPIC,
    crate::relay::CAP_TOPIC,
    crate::relay::LOAD_CAP_TOPIC,
    crate::nat::FRESH_CAP_TOPIC,
];

/// The topics a peer subscribed to: the capabilities as bits, the rest a
/// short sorted list (at most `MAX_PEER_TOPICS`) sized exactly, so an idle
/// peer that announced only capabilities costs no heap.
#[derive(Default)]
pub(crate) struct TopicList {
    /// Bit `i` set: the peer announced `CAPABILITIES[i]`.
    caps: u8,
    /// Other topics, sorted, without spare capacity; boxed twice, so that
    /// the list is 16 B in every session (a thin pointer beside the bits,
    /// where a slice pointer would make it 24), and `None` when empty.
    #[allow(
        clippy::redundant_allocation,
        reason = "a thin pointer: 8 B in every idle session, not 16"
    )]
    others: Option<Box<Box<[Box<str>]>>>,
}

/// The bit of a capability topic, if `topic` is one.
fn capability_bit(topic: &str) -> Option<u8> {
    CAPABILITIES
        .iter()
        .position(|c| *c == topic)
        .map(|i| 1u8 << i)
}

impl TopicList {
    /// The topics beyond the capabilities, sorted.
    fn others(&self) -> &[Box<str>] {
        self.others.as_deref().map_or(&[], |b| &b[..])
    }

    /// Replaces the other topics (`None` when there are none).
    fn set_others(&mut self, v: Vec<Box<str>>) {
        self.others = (!v.is_empty()).then(|| Box::new(v.into_boxed_slice()));
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.caps.count_ones() as usize + self.others().len()
    }

    /// True if the peer subscribed to `topic`.
    pub fn contains(&self, topic: &str) -> bool {
        match capability_bit(topic) {
            Some(b) => self.caps & b != 0,
            None => self.find(topic).is_ok(),
        }
    }

    fn find(&self, topic: &str) -> Result<usize, usize> {
        self.others().binary_search_by(|t| (**t).cmp(topic))
    }

    /// Adds `topic`; false if it was there.
    pub fn insert(&mut self, topic: &str) -> bool {
        if let Some(b) = capability_bit(topic) {
            let new = self.caps & b == 0;
            self.caps |= b;
            return new;
        }
        match self.find(topic) {
            Ok(_) => false,
            Err(i) => {
                let mut v = self.others.take().map(|b| b.into_vec()).unwrap_or_default();
                v.insert(i, topic.into());
                self.set_others(v);
                true
            }
        }
    }

    /// Removes `topic`; false if it was not there.
    pub fn remove(&mut self, topic: &str) -> bool {
        if let Some(b) = capability_bit(topic) {
            let had = self.caps & b != 0;
            self.caps &= !b;
            return had;
        }
        match self.find(topic) {
            Ok(i) => {
                let mut v = self.others.take().map(|b| b.into_vec()).unwrap_or_default();
                v.remove(i);
                self.set_others(v);
                true
            }
            Err(_) => false,
        }
    }

    /// The topics: the capabilities first, then the rest in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        CAPABILITIES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.caps & (1 << i) != 0)
            .map(|(_, c)| *c)
            .chain(self.others().iter().map(|t| &**t))
    }
}

/// Token bucket over bytes.
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: u32,
    rate: u32,
    last: Stamp,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, rate_per_sec: u32, now: Time) -> Self {
        Self {
            tokens: f64::from(burst),
            burst,
            rate: rate_per_sec,
            last: Stamp::at(now),
        }
    }

    /// Takes `n` tokens if available.
    pub fn take(&mut self, n: usize, now: Time) -> bool {
        // Whole milliseconds on both ends: crediting `now` against a stamp
        // rounded down would add the sub-millisecond part again on every
        // call within one millisecond (a flood calls many times per ms).
        let at = Stamp::at(now);
        let dt = at.millis().saturating_sub(self.last.millis()) as f64 / 1000.0;
        self.last = self.last.max(at);
        self.tokens = (self.tokens + dt * f64::from(self.rate)).min(f64::from(self.burst));
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }
}

/// How long an incomplete fragmented message is kept.
pub(crate) const REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most fragmented messages in flight per session.
pub(crate) const MAX_TRANSFERS: usize = 8;

/// Outcome of adding one fragment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FragmentResult {
    /// More pieces are needed.
    Incomplete,
    /// More pieces are needed, and the oldest incomplete transfer was
    /// dropped to make room for this one (under loss, transfers that will
    /// never complete must not block new ones until they time out).
    IncompleteEvicted,
    /// The whole body is here.
    Complete(Vec<u8>),
    /// The piece violates a limit or disagrees with earlier pieces.
    Rejected,
}

struct Partial {
    count: u16,
    received: u16,
    /// The pieces by index, each in a buffer from the pool.
    parts: Vec<Option<Vec<u8>>>,
    bytes: usize,
    started: Time,
}

/// A list of the fragmented messages in flight on one session.
type Transfers = Vec<(u32, Partial)>;

/// Most spare transfer lists a pool keeps.
const SPARE_LISTS: usize = 8;
/// Most spare piece buffers a pool keeps (each `FRAGMENT_CHUNK` bytes).
const SPARE_PIECES: usize = 64;
/// Most spare reassembled bodies a pool keeps.
const SPARE_BODIES: usize = 4;
/// Largest body capacity a pool keeps for reuse (a larger one is freed,
/// so that one big message does not pin its memory).
const SPARE_BODY_BYTES: usize = 16 * FRAGMENT_CHUNK;

/// What a node's reassembly reuses between fragmented messages (bounded,
/// node-wide, not per session): the boxed transfer list a session holds
/// while a message is in flight, the pieces' buffers, their slot lists,
/// and the reassembled bodies once the caller is done with them
/// ([`ReassemblyPool::recycle_body`]). Without it every fragmented message
/// allocated its list, one buffer per piece, the slot list and the body.
#[derive(Default)]
pub(crate) struct ReassemblyPool {
    #[allow(
        clippy::vec_box,
        reason = "the boxes are what a session holds; they are kept to be handed out again"
    )]
    lists: Vec<Box<Transfers>>,
    pieces: Vec<Vec<u8>>,
    slots: Vec<Vec<Option<Vec<u8>>>>,
    bodies: Vec<Vec<u8>>,
}

impl ReassemblyPool {
    fn list(&mut self) -> Box<Transfers> {
        self.lists.pop().unwrap_or_default()
    }

    fn put_list(&mut self, mut list: Box<Transfers>) {
        for (_, p) in list.drain(..) {
            self.put_partial(p);
        }
        if self.lists.len() < SPARE_LISTS {
            self.lists.push(list);
        }
    }

    fn piece(&mut self, data: &[u8]) -> Vec<u8> {
        let mut b = self
            .pieces
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(FRAGMENT_CHUNK));
        b.extend_from_slice(data);
        b
    }

    fn put_piece(&mut self, mut b: Vec<u8>) {
        if self.pieces.len() < SPARE_PIECES && b.capacity() >= FRAGMENT_CHUNK {
            b.clear();
            self.pieces.push(b);
        }
    }

    fn slots(&mut self, count: usize) -> Vec<Option<Vec<u8>>> {
        let mut v = self.slots.pop().unwrap_or_default();
        v.resize_with(count, || None);
        v
    }

    fn put_partial(&mut self, p: Partial) {
        let mut slots = p.parts;
        for b in slots.drain(..).flatten() {
            self.put_piece(b);
        }
        if self.slots.len() < SPARE_LISTS {
            self.slots.push(slots);
        }
    }

    fn body(&mut self, len: usize) -> Vec<u8> {
        match self.bodies.iter().position(|b| b.capacity() >= len) {
            Some(i) => self.bodies.swap_remove(i),
            None => Vec::with_capacity(len),
        }
    }

    /// Takes back a body that [`FragmentResult::Complete`] handed out, once
    /// the caller is done with it.
    pub fn recycle_body(&mut self, mut body: Vec<u8>) {
        if body.capacity() <= SPARE_BODY_BYTES {
            body.clear();
            if self.bodies.len() >= SPARE_BODIES {
                // Keep the larger ones: they fit more messages.
                match (0..self.bodies.len()).min_by_key(|&i| self.bodies[i].capacity()) {
                    Some(i) if self.bodies[i].capacity() < body.capacity() => {
                        self.bodies[i] = body;
                    }
                    _ => {}
                }
            } else {
                self.bodies.push(body);
            }
        }
    }
}

/// Bounded reassembly of fragmented publish bodies.
#[derive(Default)]
pub(crate) struct Reassembly {
    /// At most `MAX_TRANSFERS` entries, so a vector searched linearly;
    /// boxed and present only while a transfer is in flight (8 B in an
    /// idle session). The box comes from, and goes back to, the node's
    /// [`ReassemblyPool`].
    #[allow(
        clippy::box_collection,
        reason = "8 B in every idle session where a vector takes 24"
    )]
    transfers: Option<Box<Transfers>>,
}

/// One received piece of a fragmented message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece<'a> {
    /// The sender's transfer id.
    pub transfer: u32,
    /// This piece's index.
    pub index: u16,
    /// Pieces in the message.
    pub count: u16,
    /// The piece's bytes.
    pub data: &'a [u8],
}

impl Reassembly {
    /// Adds a piece; `max_body` bounds the reassembled size. Buffers come
    /// from `pool` and go back there; a complete body is the caller's
    /// (give it back with [`ReassemblyPool::recycle_body`]).
    pub fn add(
        &mut self,
        pool: &mut ReassemblyPool,
        piece: Piece<'_>,
        max_body: usize,
        now: Time,
    ) -> FragmentResult {
        let Piece { count, data, .. } = piece;
        if count > MAX_FRAGMENTS
            || data.len() > FRAGMENT_CHUNK
            || (count as usize - 1) * FRAGMENT_CHUNK >= max_body.max(1)
        {
            return FragmentResult::Rejected;
        }
        let mut transfers = self.transfers.take().unwrap_or_else(|| pool.list());
        let outcome = Self::add_to(&mut transfers, pool, piece, max_body, now);
        if transfers.is_empty() {
            pool.put_list(transfers);
        } else {
            self.transfers = Some(transfers);
        }
        outcome
    }

    fn add_to(
        transfers: &mut Transfers,
        pool: &mut ReassemblyPool,
        piece: Piece<'_>,
        max_body: usize,
        now: Time,
    ) -> FragmentResult {
        let Piece {
            transfer,
            index,
            count,
            data,
        } = piece;
        let mut evicted = false;
        let at = match transfers.iter().position(|(t, _)| *t == transfer) {
            Some(i) => i,
            None => {
                if transfers.len() >= MAX_TRANSFERS {
                    let oldest = (0..transfers.len())
                        .min_by_key(|&i| transfers[i].1.started)
                        .unwrap_or(0);
                    let (_, old) = transfers.swap_remove(oldest);
                    pool.put_partial(old);
                    evicted = true;
                }
                let parts = pool.slots(count as usize);
                transfers.push((
                    transfer,
                    Partial {
                        count,
                        received: 0,
                        parts,
                        bytes: 0,
                        started: now,
                    },
                ));
                transfers.len() - 1
            }
        };
        let p = &mut transfers[at].1;
        // All pieces but the last are full chunks.
        let full = data.len() == FRAGMENT_CHUNK;
        if p.count != count || (index + 1 < count && !full) || p.bytes + data.len() > max_body {
            let (_, bad) = transfers.swap_remove(at);
            pool.put_partial(bad);
            return FragmentResult::Rejected;
        }
        let Some(slot) = p.parts.get_mut(index as usize) else {
            return FragmentResult::Rejected;
        };
        if slot.is_some() {
            return FragmentResult::Incomplete;
        }
        *slot = Some(pool.piece(data));
        p.received += 1;
        p.bytes += data.len();
        if p.received < p.count {
            return if evicted {
                FragmentResult::IncompleteEvicted
            } else {
                FragmentResult::Incomplete
            };
        }
        let (_, p) = transfers.swap_remove(at);
        let mut body = pool.body(p.bytes);
        for part in p.parts.iter().flatten() {
            body.extend_from_slice(part);
        }
        pool.put_partial(p);
        FragmentResult::Complete(body)
    }

    /// Drops transfers older than the timeout; returns how many.
    pub fn expire(&mut self, now: Time) -> usize {
        let Some(transfers) = self.transfers.as_mut() else {
            return 0;
        };
        let before = transfers.len();
        transfers.retain(|(_, p)| now.saturating_sub(p.started) < REASSEMBLY_TIMEOUT);
        let gone = before - transfers.len();
        if transfers.is_empty() {
            self.transfers = None;
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(transfer: u32, index: u16, count: u16, data: &[u8]) -> Piece<'_> {
        Piece {
            transfer,
            index,
            count,
            data,
        }
    }

    #[test]
    fn reassembles_out_of_order_and_rejects_inconsistency() {
        let mut r = Reassembly::default();
        let mut pool = ReassemblyPool::default();
        let now = Duration::ZERO;
        let a = vec![1u8; FRAGMENT_CHUNK];
        let b = vec![2u8; 10];
        assert_eq!(
            r.add(&mut pool, piece(1, 1, 2, &b), 100_000, now),
            FragmentResult::Incomplete
        );
        assert_eq!(
            r.add(&mut pool, piece(1, 1, 2, &b), 100_000, now),
            FragmentResult::Incomplete
        );
        match r.add(&mut pool, piece(1, 0, 2, &a), 100_000, now) {
            FragmentResult::Complete(body) => {
                assert_eq!(body.len(), FRAGMENT_CHUNK + 10);
                assert_eq!(body[0], 1);
                assert_eq!(body[FRAGMENT_CHUNK], 2);
            }
            other => panic!("{other:?}"),
        }
        // short non-final piece
        assert_eq!(
            r.add(&mut pool, piece(2, 0, 2, &b), 100_000, now),
            FragmentResult::Rejected
        );
        // count too large for the size limit
        assert_eq!(
            r.add(&mut pool, piece(3, 0, 200, &a), 10_000, now),
            FragmentResult::Rejected
        );
        // bounded number of transfers
        for t in 10..10 + MAX_TRANSFERS as u32 {
            assert_eq!(
                r.add(&mut pool, piece(t, 0, 2, &a), 100_000, now),
                FragmentResult::Incomplete
            );
        }
        // A new transfer beyond the bound evicts the oldest one.
        let later = now + Duration::from_millis(1);
        assert_eq!(
            r.add(&mut pool, piece(99, 0, 2, &a), 100_000, later),
            FragmentResult::IncompleteEvicted
        );
        assert_eq!(
            r.add(&mut pool, piece(10, 1, 2, &b), 100_000, later),
            FragmentResult::IncompleteEvicted,
            "10 was the oldest; its piece 1 starts it afresh"
        );
        match r.add(&mut pool, piece(99, 1, 2, &b), 100_000, later) {
            FragmentResult::Complete(body) => assert_eq!(body.len(), a.len() + b.len()),
            other => panic!("{other:?}"),
        }
        // 12..=17 and the restarted 10 are left.
        assert_eq!(r.expire(later + REASSEMBLY_TIMEOUT), MAX_TRANSFERS - 1);
    }

    /// After the first message, fragmented messages take their list,
    /// piece buffers, slot list and body from the pool and give them back:
    /// the pool neither grows nor runs dry from one message to the next.
    #[test]
    fn reassembly_reuses_its_buffers() {
        let mut r = Reassembly::default();
        let mut pool = ReassemblyPool::default();
        let now = Duration::ZERO;
        let a = vec![1u8; FRAGMENT_CHUNK];
        let b = vec![2u8; 10];
        let mut bodies = Vec::new();
        for t in 0..4 {
            assert_eq!(
                r.add(&mut pool, piece(t, 0, 2, &a), 100_000, now),
                FragmentResult::Incomplete
            );
            assert!(r.transfers.is_some() && pool.lists.is_empty(), "in flight");
            match r.add(&mut pool, piece(t, 1, 2, &b), 100_000, now) {
                FragmentResult::Complete(body) => {
                    assert_eq!(body.len(), FRAGMENT_CHUNK + 10);
                    assert_eq!(body[FRAGMENT_CHUNK], 2);
                    bodies.push(body.as_ptr() as usize);
                    pool.recycle_body(body);
                }
                other => panic!("{other:?}"),
            }
            assert!(r.transfers.is_none(), "an idle session holds no list");
            let held = (
                pool.lists.len(),
                pool.pieces.len(),
                pool.slots.len(),
                pool.bodies.len(),
            );
            assert_eq!(held, (1, 2, 1, 1), "message {t}");
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "the body is reused"
        );
    }

    #[test]
    fn bucket_does_not_refill_within_one_millisecond() {
        let mut b = TokenBucket::new(1, 1000, Duration::ZERO);
        let t = Duration::from_micros(500);
        assert!(b.take(1, t));
        for k in 1..100 {
            assert!(!b.take(1, t + Duration::from_micros(k * 4)), "call {k}");
        }
        assert!(b.take(1, Duration::from_millis(1)));
    }

    #[test]
    fn bucket_refills() {
        let mut b = TokenBucket::new(100, 10, Duration::ZERO);
        assert!(b.take(100, Duration::ZERO));
        assert!(!b.take(1, Duration::ZERO));
        assert!(b.take(10, Duration::from_secs(1)));
    }

    #[test]
    fn topic_list_is_a_sorted_set() {
        let mut t = TopicList::default();
        assert!(t.insert("b") && t.insert("a") && !t.insert("b"));
        assert_eq!(t.iter().collect::<Vec<_>>(), ["a", "b"]);
        assert!(t.contains("a") && !t.contains("c"));
        assert!(t.remove("a") && !t.remove("a"));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn capabilities_are_bits_and_listed_first() {
        let mut t = TopicList::default();
        let [nat, relay, _load, _fresh] = CAPABILITIES;
        assert!(t.insert(relay) && !t.insert(relay) && t.insert("a"));
        assert!(t.contains(relay) && !t.contains(nat));
        assert_eq!(t.iter().collect::<Vec<_>>(), [relay, "a"]);
        assert!(t.insert(nat));
        assert_eq!(t.iter().collect::<Vec<_>>(), [nat, relay, "a"]);
        assert_eq!(t.len(), 3);
        assert!(t.remove(nat) && !t.remove(nat) && t.remove("a"));
        assert_eq!(t.iter().collect::<Vec<_>>(), [relay]);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn stamps_measure_elapsed_time_in_milliseconds() {
        let s = Stamp::at(Duration::from_micros(1_500));
        assert_eq!(
            s.since(Duration::from_millis(11)),
            Duration::from_millis(10)
        );
        assert_eq!(s.since(Duration::ZERO), Duration::ZERO);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;
    use std::mem::size_of;

    /// The per-session records stay as small as `moss-bench idle` found
    /// them (layouts, not timing): a stamp's niche makes an optional stamp
    /// 8 B, a topic list is 16 B (bits and a thin pointer), and the
    /// established state, with the pointer to its transport record, stays
    /// within 160 B.
    #[test]
    fn idle_session_records_stay_small() {
        assert_eq!(size_of::<Stamp>(), 8);
        assert_eq!(size_of::<Option<Stamp>>(), 8);
        assert_eq!(size_of::<TopicList>(), 16);
        assert!(
            size_of::<Established>() <= 160,
            "{}",
            size_of::<Established>()
        );
        assert!(size_of::<Session>() <= 88, "{}", size_of::<Session>());
    }

    /// Stamps keep the millisecond they were made at.
    #[test]
    fn stamp_round_trips_its_millisecond() {
        let t = Duration::from_micros(12_345_678);
        let s = Stamp::at(t);
        assert_eq!(s.since(t), Duration::from_micros(678));
        assert!(s.reached(t));
        assert!(!s.reached(Duration::from_millis(12_344)));
        assert_eq!(Stamp::default().since(Duration::ZERO), Duration::ZERO);
        assert!(Stamp::at(Duration::MAX).reached(Duration::MAX));
    }
}
