//! Pub/sub in the node: the glue between wire frames and the sans-IO
//! GossipSub router of `moss-gossip`.
//!
//! Own messages are signed (Ed25519 over `"moss/msg/v1" ‖ message id`) and
//! flood-published; received ones are deduplicated by id, verified once
//! (the first copy only), offered to the application validator, delivered
//! when subscribed and forwarded to mesh peers by the router. Control
//! messages (GRAFT, PRUNE with peer exchange, IHAVE, IWANT, IDONTWANT) are
//! frames of their own; bodies larger than a datagram travel as fragments.
//! A message with a bad signature, an unsigned one, or one the validator
//! rejects counts against the peer that sent it (P4).

use crate::config::{Config, ConfigError};
use crate::event::PayloadPool;
use crate::liveness::{KEEPALIVE, SILENCE};
use crate::node::Node;
#[cfg(feature = "adversary")]
use crate::receive::encode_signed;
#[cfg(feature = "adversary")]
use crate::wire::SIGNATURE_LEN;
use crate::wire::{
    signing_bytes, Frame, IdList, PxList, FRAGMENT_CHUNK, FRAME_HEADER, MAX_IDS_PER_FRAME,
    MAX_PLAINTEXT, MAX_TOPIC,
};
use crate::Time;
use moss_crypto::msgid::message_id;
use moss_crypto::{BatchVerifier, PeerId};
use moss_gossip::{Action, Control, Router};
use std::collections::BTreeSet;

pub use crate::receive::control_of;

/// Heartbeats between re-announcements of our subscriptions to a peer.
pub const RESUBSCRIBE_EVERY: u64 = 5;
/// Longest gap, in heartbeats, between re-announcements to a peer.
pub const RESUBSCRIBE_MAX: u64 = 30;
/// A new session hears our subscriptions (not our capabilities) again when
/// it is 1, 2, 4, … up to this many heartbeats old, idle or not: a lost
/// first announcement (the initiator's can also arrive before the
/// responder's session is up) would otherwise leave the peer without our
/// topics until the next [`RESUBSCRIBE_MAX`] round.
pub const RESUBSCRIBE_YOUNG: u64 = 16;

/// True if a session `age_beats` heartbeats old is due a re-announcement
/// for its youth ([`RESUBSCRIBE_YOUNG`]).
pub(crate) fn young_resubscribe(age_beats: u64) -> bool {
    age_beats.is_power_of_two() && age_beats <= RESUBSCRIBE_YOUNG
}

/// Messages are not forwarded beyond this many hops.
pub const MAX_HOPS: u8 = 32;

/// Application validator: `(topic, origin, payload) -> accept`. A rejected
/// message is neither delivered nor forwarded, and the peer that sent it is
/// penalised (P4).
pub type Validator = Box<dyn FnMut(&str, &PeerId, &[u8]) -> bool + Send>;

/// Host scoring callback: `(peer, base score) -> application score (P5)`,
/// called for every connected peer each heartbeat.
pub type AppScore = Box<dyn FnMut(&PeerId, f64) -> f64 + Send>;

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The topic is empty or longer than 255 bytes.
    #[error("invalid topic")]
    InvalidTopic,
    /// The payload exceeds `max_message_size_bytes`.
    #[error("message of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// Configured limit.
        max: usize,
    },
    /// No connected peer subscribes to the topic (or none is eligible).
    #[error("no peers subscribe to the topic")]
    NoPeers,
}

/// Adversarial behaviours for the simulator's attack scenarios (feature
/// `adversary`; never compiled into normal builds).
#[cfg(feature = "adversary")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Adversary {
    /// Never forward other nodes' messages, never answer IWANT.
    pub black_hole: bool,
}

/// The node's pub/sub state: the router, our subscriptions and sequence
/// numbers, the validator, and the scratch buffers of the per-message path.
pub(crate) struct Pubsub {
    pub router: Router,
    /// Topics we subscribed to (internal ones such as telemetry's too).
    pub subscriptions: BTreeSet<String>,
    /// Sequence number of our next message.
    pub seq: u64,
    pub validator: Option<Validator>,
    /// Buffers of delivered payloads, returned when the application drops
    /// the message.
    pub payloads: PayloadPool,
    /// Scratch for a message body being encoded (kept between messages so
    /// the per-packet path does not allocate).
    pub body_buf: Vec<u8>,
    /// Messages delivered before their signature check.
    pub deferred: Deferred,
    /// Checks the deferred messages' signatures in one equation.
    pub batch: BatchVerifier,
    #[cfg(feature = "adversary")]
    pub adversary: Adversary,
}

/// Most messages delivered early and not yet checked; one more checks the
/// queue first.
pub const MAX_DEFERRED: usize = 64;

/// Messages delivered at the first hop before their signature was checked
/// (the Noise session already proved that the sender is their origin),
/// waiting for the check that must come before they are forwarded, so a
/// forgery is never relayed. The check runs when the node next flushes its
/// output ([`crate::Node::poll_transmit`] or
/// [`crate::Node::poll_transport`]), after the driver handed the message
/// to the application. Bodies live back to back in one buffer that keeps
/// its capacity: nothing is allocated per message.
#[derive(Default)]
pub(crate) struct Deferred {
    /// Signed bodies as received.
    bodies: Vec<u8>,
    /// (sender, message id, end of its body in `bodies`).
    entries: Vec<(PeerId, [u8; 32], usize)>,
    /// What each entry's sender (its origin) signed, and the signature.
    signed: Vec<([u8; 43], [u8; crate::wire::SIGNATURE_LEN])>,
}

/// True for a capability topic (`moss/cap/…`, the NAT and relay frames'
/// announcements): a SUBSCRIBE to it says the peer understands some
/// frames; it is no gossip topic (the router never meshes, gossips or
/// scores it, so being "in its mesh" earns no score).
pub fn is_capability(topic: &str) -> bool {
    topic.starts_with("moss/cap/")
}

impl Deferred {
    /// Queues a delivered message from `from`.
    pub fn push(&mut self, from: PeerId, id: [u8; 32], sp: &crate::wire::SignedPublish<'_>) {
        sp.encode_body(&mut self.bodies);
        self.entries.push((from, id, self.bodies.len()));
        self.signed
            .push((crate::wire::signing_bytes(&id), sp.signature));
    }

    /// True if every waiting message's signature by its sender (who is its
    /// origin) is valid, checked in one batch; false if any is not (check
    /// them one by one to learn which).
    pub fn all_valid(&self, batch: &mut BatchVerifier) -> bool {
        batch.verify_all(
            self.entries
                .iter()
                .zip(&self.signed)
                .map(|((from, _, _), (msg, sig))| (&from.0, &msg[..], sig)),
        )
    }

    /// True if message `id` waits here (a copy is a duplicate).
    pub fn contains(&self, id: &[u8; 32]) -> bool {
        self.entries.iter().any(|(_, i, _)| i == id)
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when one more must wait for the queue to be checked.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= MAX_DEFERRED
    }

    /// The waiting messages: (sender, id, signed body).
    pub fn iter(&self) -> impl Iterator<Item = (PeerId, [u8; 32], &[u8])> {
        let mut start = 0;
        self.entries.iter().map(move |&(p, id, end)| {
            let b = &self.bodies[start..end];
            start = end;
            (p, id, b)
        })
    }

    /// Empties the queue, keeping its buffers.
    pub fn clear(&mut self) {
        self.bodies.clear();
        self.entries.clear();
        self.signed.clear();
    }
}

impl Pubsub {
    /// A router configured from the `gossipsub` block (an invalid block is
    /// an error), already joined to the telemetry topic when `telemetry`.
    /// `secret` keys the batch verifier's weights (the node's seed).
    pub fn new(
        cfg: &Config,
        seq: u64,
        telemetry: bool,
        now: Time,
        rng: &mut impl rand_core::RngCore,
        secret: [u8; 32],
    ) -> Result<Self, ConfigError> {
        let rc = cfg
            .gossipsub
            .router_config()
            .map_err(|e| ConfigError::Invalid {
                field: "gossipsub",
                reason: e.to_string(),
            })?;
        let phase = rc
            .heartbeat
            .mul_f64(rng.next_u32() as f64 / (u64::from(u32::MAX) + 1) as f64);
        let mut router = Router::new(rc, now + phase);
        let mut subscriptions = BTreeSet::new();
        if telemetry {
            subscriptions.insert(crate::telemetry::TELEMETRY_TOPIC.to_string());
        }
        for t in &subscriptions {
            // No peers yet: joining picks no one, so no randomness is used.
            router.join(t, now, &mut ZeroRng);
        }
        Ok(Self {
            router,
            subscriptions,
            seq,
            validator: None,
            payloads: PayloadPool::default(),
            body_buf: Vec::new(),
            deferred: Deferred::default(),
            batch: BatchVerifier::new(secret),
            #[cfg(feature = "adversary")]
            adversary: Adversary::default(),
        })
    }
}

/// A deterministic source for joins that cannot draw (no peers yet).
struct ZeroRng;

impl rand_core::RngCore for ZeroRng {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        dest.fill(0);
        Ok(())
    }
}

fn valid_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TOPIC
}

impl Node {
    /// Subscribes to a topic; peers learn at once and the topic mesh is
    /// formed. Returns false for an invalid topic name.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if !valid_topic(topic) {
            return false;
        }
        if self.pubsub.subscriptions.insert(topic.to_string()) {
            for idx in self.table.peer_indices() {
                self.queue_frame(idx, &Frame::Subscribe(topic));
            }
            let now = self.now;
            self.pubsub.router.join(topic, now, &mut self.rng);
            self.drain_router();
        }
        true
    }

    /// Leaves a topic; returns false if we were not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        if !self.pubsub.subscriptions.remove(topic) {
            return false;
        }
        let now = self.now;
        self.pubsub.router.leave(topic, now);
        for idx in self.table.peer_indices() {
            self.queue_frame(idx, &Frame::Unsubscribe(topic));
        }
        self.drain_router();
        true
    }

    /// Installs the application validator.
    pub fn set_validator(&mut self, v: Validator) {
        self.pubsub.validator = Some(v);
    }

    /// Installs the host scoring callback (P5; `Moss_SetScoringCallback`).
    pub fn set_app_score(&mut self, f: AppScore) {
        self.pubsub.router.set_app_score(f);
    }

    /// Our local score of a connected or recently connected peer. Scores
    /// never leave the node.
    pub fn peer_score(&self, peer: &PeerId) -> f64 {
        self.pubsub.router.peer_score(peer, self.now)
    }

    /// Our mesh peers for a topic.
    pub fn mesh_peers(&self, topic: &str) -> Vec<PeerId> {
        self.pubsub.router.mesh_peers(topic)
    }

    /// Messages and body bytes in the message cache, ids in the seen cache.
    pub fn cache_usage(&self) -> (usize, usize, usize) {
        self.pubsub.router.cache_usage()
    }

    /// Announces our subscriptions to a newly established session and
    /// registers its peer with the router.
    pub(crate) fn send_subscriptions(&mut self, idx: u32) {
        if let Some(s) = self.table.get(idx) {
            if let Some(e) = s.established() {
                let addr = s.path.router_addr();
                self.pubsub.router.add_peer(e.peer, addr, e.initiator);
            }
        }
        let topics: Vec<String> = self.pubsub.subscriptions.iter().cloned().collect();
        for t in topics {
            self.queue_frame(idx, &Frame::Subscribe(&t));
        }
    }

    /// The router forgets a peer whose last session ended.
    pub(crate) fn pubsub_peer_down(&mut self, peer: &PeerId) {
        let now = self.now;
        self.pubsub.router.remove_peer(peer, now);
    }

    /// Runs the heartbeat when due (called from the node's tick).
    pub(crate) fn pubsub_tick(&mut self, now: Time) {
        if now >= self.pubsub.router.next_heartbeat() {
            self.pubsub.router.heartbeat(now, &mut self.rng);
            self.drain_router();
            self.mesh_liveness(now);
            // Subscriptions ride on unreliable datagrams: each peer hears
            // them again every RESUBSCRIBE_EVERY heartbeats when a datagram
            // goes to it anyway, and every RESUBSCRIBE_MAX regardless.
            let beat = self.pubsub.router.heartbeat_count();
            let period = self.pubsub.router.config().heartbeat.as_millis().max(1);
            let t = &self.table;
            // In index order (`peer_indices`): a peer's sessions that share
            // a wire address (a supernode's own and the ones it relays)
            // then send in the same order in every run.
            let due: Vec<(u32, bool)> = t
                .peer_indices()
                .into_iter()
                .filter_map(|idx| {
                    let i = u64::from(idx);
                    let e = t.established(idx)?;
                    let busy = !e.pending.is_empty();
                    let age =
                        u64::try_from(e.up.since(now).as_millis() / period).unwrap_or(u64::MAX);
                    let forced = i % RESUBSCRIBE_MAX == beat % RESUBSCRIBE_MAX;
                    // A young session's rounds: its first announcement may
                    // have been lost.
                    let young = young_resubscribe(age);
                    let routine = busy && i % RESUBSCRIBE_EVERY == beat % RESUBSCRIBE_EVERY;
                    (forced || young || routine).then_some((idx, forced))
                })
                .collect();
            let topics: Vec<String> = self.pubsub.subscriptions.iter().cloned().collect();
            for (idx, forced) in due {
                for t in &topics {
                    // Capabilities go with the first subscriptions and then
                    // only on the rare forced round: they change nothing
                    // the router sees, and peers rarely need them.
                    if forced || !is_capability(t) {
                        self.queue_frame(idx, &Frame::Subscribe(t));
                    }
                }
            }
        }
    }

    /// Mesh peers must be alive ([`crate::liveness`]): one silent for
    /// [`SILENCE`] is dropped from our meshes, so a node whose neighbours
    /// vanished grafts live ones before sessions time out; every session
    /// hears from us at least every [`KEEPALIVE`].
    fn mesh_liveness(&mut self, now: Time) {
        let mut mesh: BTreeSet<PeerId> = BTreeSet::new();
        for t in &self.pubsub.subscriptions {
            mesh.extend(self.pubsub.router.mesh_peers(t));
        }
        for p in mesh {
            let Some(idx) = self.table.by_peer(&p) else {
                continue;
            };
            let Some(s) = self.table.get(idx) else {
                continue;
            };
            let (sent, heard) = (s.last_send, s.last_recv);
            if heard.since(now) >= SILENCE {
                self.pubsub.router.peer_unresponsive(&p, now);
            } else if sent.since(now) >= KEEPALIVE {
                self.seal_and_send(idx, true);
            }
        }
        self.drain_router();
    }

    /// Publishes `data` on `topic`: signed, then flooded to every eligible
    /// peer of the topic. Returns the message id.
    pub fn publish(
        &mut self,
        now: Time,
        topic: &str,
        data: &[u8],
    ) -> Result<[u8; 32], PublishError> {
        self.now = now;
        if !valid_topic(topic) {
            return Err(PublishError::InvalidTopic);
        }
        let max = self.cfg.security.max_message_size_bytes as usize;
        if data.len() > max {
            return Err(PublishError::TooLarge {
                size: data.len(),
                max,
            });
        }
        let origin = self.identity.public_key().0;
        let seq = self.pubsub.seq;
        let id = message_id(&origin, seq, topic, data);
        let signature = self.identity.sign(&signing_bytes(&id));
        let mut body = std::mem::take(&mut self.pubsub.body_buf);
        body.clear();
        crate::receive::encode_signed(&mut body, signature, 0, origin, seq, topic, data);
        let r = self
            .pubsub
            .router
            .publish(now, id, topic, &body[..], &mut self.rng);
        self.pubsub.body_buf = body;
        if r.is_err() {
            return Err(PublishError::NoPeers);
        }
        self.pubsub.seq = self.pubsub.seq.wrapping_add(1);
        self.stats.messages_published += 1;
        self.drain_router();
        Ok(id)
    }

    /// Carries out what the router asked for.
    pub(crate) fn drain_router(&mut self) {
        while let Some(a) = self.pubsub.router.poll_action() {
            match a {
                Action::Send { to, id } => {
                    if let Some(idx) = self.table.by_peer(&to) {
                        self.send_cached(idx, &id);
                    }
                }
                Action::Control { to, control } => {
                    if let Some(idx) = self.table.by_peer(&to) {
                        self.send_control(idx, &control);
                    }
                }
                // Port 0 is the placeholder address of a peer without one
                // (a relay or host channel): nothing to dial.
                Action::Dial(addr) if addr.port() != 0 => {
                    if self.table.sessions.len() < self.cfg.max_peers as usize
                        && self.table.by_path(&addr.into()).is_none()
                        && !self.nat_probe_third(addr)
                    {
                        self.connect(addr);
                    }
                }
                Action::Dial(_) => {}
            }
        }
    }

    /// Queues the cached body of message `id` to session `idx` (nothing if
    /// the message cache no longer holds it). A body that fits one datagram
    /// is written, frame header and all, straight from the cache into the
    /// session's pending datagram: one copy, and one more when it is sealed.
    fn send_cached(&mut self, idx: u32, id: &[u8; 32]) {
        let Some(body) = self.pubsub.router.cached_body(id) else {
            return;
        };
        #[cfg(feature = "adversary")]
        if self.pubsub.adversary.black_hole
            && body.get(SIGNATURE_LEN + 1..SIGNATURE_LEN + 33)
                != Some(&self.identity.public_key().0[..])
        {
            return;
        }
        if body.is_empty() {
            return;
        }
        let len = FRAME_HEADER + body.len();
        if len > MAX_PLAINTEXT {
            let mut framed = std::mem::take(&mut self.pubsub.body_buf);
            framed.clear();
            framed.extend_from_slice(id);
            framed.extend_from_slice(body);
            self.send_fragments(idx, &framed);
            self.pubsub.body_buf = framed;
            return;
        }
        let Some(full) = self
            .table
            .established(idx)
            .map(|e| e.pending.len() + len > MAX_PLAINTEXT)
        else {
            return;
        };
        if full {
            // Fields borrowed apart: the message cache stays borrowed.
            if let Some(s) = self.table.sessions.get_mut(&idx) {
                self.transport
                    .seal(&mut self.outbox, &mut self.stats, idx, s, false, self.now);
            }
        }
        let Some(e) = self.table.established_mut(idx) else {
            return;
        };
        self.outbox.fill(&mut e.pending);
        e.pending.push(crate::wire::ty::SIGNED_PUBLISH);
        e.pending
            .extend_from_slice(&(body.len() as u16).to_le_bytes());
        e.pending.extend_from_slice(body);
        self.table.mark_dirty(idx);
        self.stats.messages_forwarded += 1;
    }

    /// Queues a signed publish body, fragmented when it exceeds a datagram.
    /// A fragmented body travels as `id ‖ body`, so the receiver learns the
    /// id from the first fragment and can send IDONTWANT before the rest
    /// arrives (the id is checked against the body once it is complete).
    #[cfg(feature = "adversary")]
    fn send_body(&mut self, idx: u32, id: &[u8; 32], body: &[u8]) {
        if FRAME_HEADER + body.len() <= MAX_PLAINTEXT {
            if let Some(p) = self.pending_room(idx, FRAME_HEADER + body.len()) {
                p.push(crate::wire::ty::SIGNED_PUBLISH);
                p.extend_from_slice(&(body.len() as u16).to_le_bytes());
                p.extend_from_slice(body);
            }
            self.stats.messages_forwarded += 1;
            return;
        }
        let mut framed = Vec::with_capacity(32 + body.len());
        framed.extend_from_slice(id);
        framed.extend_from_slice(body);
        self.send_fragments(idx, &framed);
    }

    /// Queues `id ‖ body` as signed fragments.
    fn send_fragments(&mut self, idx: u32, body: &[u8]) {
        let count = body.len().div_ceil(FRAGMENT_CHUNK) as u16;
        let Some(e) = self.table.established_mut(idx) else {
            return;
        };
        let transfer = e.next_transfer;
        e.next_transfer = e.next_transfer.wrapping_add(1);
        self.stats.messages_forwarded += 1;
        for (i, chunk) in body.chunks(FRAGMENT_CHUNK).enumerate() {
            let f = Frame::SignedFragment {
                transfer,
                index: i as u16,
                count,
                data: chunk,
            };
            self.queue_frame(idx, &f);
        }
    }

    fn send_control(&mut self, idx: u32, c: &Control) {
        match c {
            Control::Graft { topic } => self.queue_frame(idx, &Frame::Graft(topic)),
            Control::Prune {
                topic,
                backoff_secs,
                px,
            } => {
                let recs: Vec<_> = px.iter().map(|p| (p.peer.0, p.addr)).collect();
                let mut bytes = Vec::new();
                PxList::encode_records(&recs, &mut bytes);
                if let Ok(px) = PxList::parse(&bytes) {
                    self.queue_frame(
                        idx,
                        &Frame::Prune {
                            topic,
                            backoff_secs: *backoff_secs,
                            px,
                        },
                    );
                }
            }
            Control::IHave { topic, ids } => {
                for chunk in ids.chunks(MAX_IDS_PER_FRAME) {
                    if let Some(ids) = IdList::new(chunk) {
                        self.queue_frame(idx, &Frame::IHave { topic, ids });
                    }
                }
            }
            Control::IWant { ids } => {
                for chunk in ids.chunks(MAX_IDS_PER_FRAME) {
                    if let Some(ids) = IdList::new(chunk) {
                        self.queue_frame(idx, &Frame::IWant(ids));
                    }
                }
            }
            Control::IDontWant { ids } => {
                for chunk in ids.chunks(MAX_IDS_PER_FRAME) {
                    if let Some(ids) = IdList::new(chunk) {
                        self.queue_frame(idx, &Frame::IDontWant(ids));
                    }
                }
            }
        }
    }
}

#[cfg(feature = "adversary")]
impl Node {
    /// Sets this node's misbehaviour (simulator attack scenarios).
    pub fn set_adversary(&mut self, a: Adversary) {
        self.pubsub.adversary = a;
    }

    /// Queues raw frame bytes (possibly malformed) to a connected peer.
    pub fn send_raw_frames(&mut self, peer: &PeerId, frames: &[u8]) -> bool {
        let Some(idx) = self.table.by_peer(peer) else {
            return false;
        };
        self.queue_frame_bytes(idx, frames);
        true
    }

    /// Sends a message with a forged signature straight to every connected
    /// peer of `topic` (an invalid-message spammer).
    pub fn publish_invalid(&mut self, now: Time, topic: &str, data: &[u8]) -> usize {
        self.now = now;
        let origin = self.identity.public_key().0;
        let seq = self.pubsub.seq;
        self.pubsub.seq = self.pubsub.seq.wrapping_add(1);
        let mut body = Vec::new();
        encode_signed(
            &mut body,
            [0x5A; SIGNATURE_LEN],
            0,
            origin,
            seq,
            topic,
            data,
        );
        let t = &self.table;
        let targets: Vec<u32> = t
            .by_peer
            .values()
            .copied()
            .filter(|&i| t.established(i).is_some_and(|e| e.topics.contains(topic)))
            .collect();
        for &idx in &targets {
            self.send_body(idx, &[0x5A; 32], &body);
        }
        targets.len()
    }
}
