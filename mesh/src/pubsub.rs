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

use crate::config::Config;
use crate::event::{DisconnectReason, Event, Message, PayloadPool};
use crate::node::Node;
use crate::session::FragmentResult;
use crate::stats::DropReason;
use crate::wire::{
    signing_bytes, Frame, FrameReader, IdList, PxList, SignedPublish, FRAGMENT_CHUNK, FRAME_HEADER,
    MAX_IDS_PER_FRAME, MAX_PLAINTEXT, MAX_TOPIC, PUBLISH_FIXED, SIGNATURE_LEN,
};
use crate::Time;
use moss_crypto::msgid::message_id;
use moss_crypto::PeerId;
use moss_gossip::{Action, Control, PxPeer, Received, Router};
use std::collections::BTreeSet;

/// A mesh peer we sent nothing to for this many heartbeats gets an empty
/// datagram (liveness for the check below).
pub const MESH_KEEPALIVE_BEATS: u32 = 2;
/// A mesh peer silent for this many heartbeats leaves our meshes (its
/// session may live on until the idle timeout).
pub const MESH_SILENCE_BEATS: u32 = 6;

/// Heartbeats between re-announcements of our subscriptions to a peer.
pub const RESUBSCRIBE_EVERY: u64 = 5;
/// Longest gap, in heartbeats, between re-announcements to a peer.
pub const RESUBSCRIBE_MAX: u64 = 30;

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

/// The node's pub/sub state.
pub(crate) struct Gossip {
    pub router: Router,
    validator: Option<Validator>,
    /// Buffers of delivered payloads, returned when the application drops
    /// the message.
    payloads: PayloadPool,
    /// Scratch for a message body being encoded (kept between messages so
    /// the per-packet path does not allocate).
    body_buf: Vec<u8>,
    /// Scratch for a frame being built.
    frame_buf: Vec<u8>,
    #[cfg(feature = "adversary")]
    adversary: Adversary,
}

impl Gossip {
    /// A router configured from the `gossipsub` block, already joined to
    /// `topics`.
    pub fn new(
        cfg: &Config,
        topics: &BTreeSet<String>,
        now: Time,
        rng: &mut impl rand_core::RngCore,
    ) -> Self {
        let rc = cfg.gossipsub.router_config().unwrap_or_default();
        let phase = rc
            .heartbeat
            .mul_f64(rng.next_u32() as f64 / (u64::from(u32::MAX) + 1) as f64);
        let mut router = Router::new(rc, now + phase);
        for t in topics {
            // No peers yet: joining picks no one, so no randomness is used.
            router.join(t, now, &mut ZeroRng);
        }
        Self {
            router,
            validator: None,
            payloads: PayloadPool::default(),
            body_buf: Vec::new(),
            frame_buf: Vec::new(),
            #[cfg(feature = "adversary")]
            adversary: Adversary::default(),
        }
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
        if self.subscriptions.insert(topic.to_string()) {
            let peers: Vec<u32> = self.by_peer.values().copied().collect();
            for idx in peers {
                self.queue_frame(idx, &Frame::Subscribe(topic));
            }
            let now = self.now;
            self.gossip.router.join(topic, now, &mut self.rng);
            self.drain_router();
        }
        true
    }

    /// Leaves a topic; returns false if we were not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        if !self.subscriptions.remove(topic) {
            return false;
        }
        let now = self.now;
        self.gossip.router.leave(topic, now);
        let peers: Vec<u32> = self.by_peer.values().copied().collect();
        for idx in peers {
            self.queue_frame(idx, &Frame::Unsubscribe(topic));
        }
        self.drain_router();
        true
    }

    /// Installs the application validator.
    pub fn set_validator(&mut self, v: Validator) {
        self.gossip.validator = Some(v);
    }

    /// Installs the host scoring callback (P5; `Moss_SetScoringCallback`).
    pub fn set_app_score(&mut self, f: AppScore) {
        self.gossip.router.set_app_score(f);
    }

    /// Our local score of a connected or recently connected peer. Scores
    /// never leave the node.
    pub fn peer_score(&self, peer: &PeerId) -> f64 {
        self.gossip.router.peer_score(peer, self.now)
    }

    /// Our mesh peers for a topic.
    pub fn mesh_peers(&self, topic: &str) -> Vec<PeerId> {
        self.gossip.router.mesh_peers(topic)
    }

    /// Messages and body bytes in the message cache, ids in the seen cache.
    pub fn cache_usage(&self) -> (usize, usize, usize) {
        self.gossip.router.cache_usage()
    }

    /// Announces our subscriptions to a newly established session and
    /// registers its peer with the router.
    pub(crate) fn send_subscriptions(&mut self, idx: u32) {
        if let Some(s) = self.sessions.get(&idx) {
            if let Some(e) = s.established() {
                self.gossip.router.add_peer(e.peer, s.addr, e.initiator);
            }
        }
        let topics: Vec<String> = self.subscriptions.iter().cloned().collect();
        for t in topics {
            self.queue_frame(idx, &Frame::Subscribe(&t));
        }
    }

    /// The router forgets a peer whose last session ended.
    pub(crate) fn pubsub_peer_down(&mut self, peer: &PeerId) {
        let now = self.now;
        self.gossip.router.remove_peer(peer, now);
    }

    /// Runs the heartbeat when due (called from the node's tick).
    pub(crate) fn pubsub_tick(&mut self, now: Time) {
        if now >= self.gossip.router.next_heartbeat() {
            self.gossip.router.heartbeat(now, &mut self.rng);
            self.drain_router();
            self.mesh_liveness(now);
            // Subscriptions ride on unreliable datagrams: each peer hears
            // them again every RESUBSCRIBE_EVERY heartbeats when a datagram
            // goes to it anyway, and every RESUBSCRIBE_MAX regardless.
            let beat = self.gossip.router.heartbeat_count();
            let due: Vec<u32> = self
                .by_peer
                .values()
                .copied()
                .filter(|&idx| {
                    let i = u64::from(idx);
                    let busy = self
                        .sessions
                        .get(&idx)
                        .and_then(|s| s.established())
                        .is_some_and(|e| !e.pending.is_empty());
                    (busy && i % RESUBSCRIBE_EVERY == beat % RESUBSCRIBE_EVERY)
                        || i % RESUBSCRIBE_MAX == beat % RESUBSCRIBE_MAX
                })
                .collect();
            for idx in due {
                let topics: Vec<String> = self.subscriptions.iter().cloned().collect();
                for t in topics {
                    self.queue_frame(idx, &Frame::Subscribe(&t));
                }
            }
        }
    }

    /// Mesh peers must be alive: they hear from us at least every
    /// [`MESH_KEEPALIVE_BEATS`] heartbeats, and one silent for
    /// [`MESH_SILENCE_BEATS`] is dropped from our meshes, so a node whose
    /// neighbours vanished grafts live ones long before sessions time out.
    fn mesh_liveness(&mut self, now: Time) {
        let hb = self.gossip.router.config().heartbeat;
        let mut mesh: BTreeSet<PeerId> = BTreeSet::new();
        for t in &self.subscriptions {
            mesh.extend(self.gossip.router.mesh_peers(t));
        }
        for p in mesh {
            let Some(&idx) = self.by_peer.get(&p) else {
                continue;
            };
            let Some(s) = self.sessions.get(&idx) else {
                continue;
            };
            let (sent, heard) = (s.last_send, s.last_recv);
            if heard.since(now) >= hb * MESH_SILENCE_BEATS {
                self.gossip.router.peer_unresponsive(&p, now);
            } else if sent.since(now) >= hb * MESH_KEEPALIVE_BEATS {
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
        let seq = self.seq;
        let id = message_id(&origin, seq, topic, data);
        let signature = self.identity.sign(&signing_bytes(&id));
        let mut body = std::mem::take(&mut self.gossip.body_buf);
        body.clear();
        encode_signed(&mut body, signature, 0, origin, seq, topic, data);
        let r = self
            .gossip
            .router
            .publish(now, id, topic, &body[..], &mut self.rng);
        self.gossip.body_buf = body;
        if r.is_err() {
            return Err(PublishError::NoPeers);
        }
        self.seq = self.seq.wrapping_add(1);
        self.stats.messages_published += 1;
        self.drain_router();
        Ok(id)
    }

    /// Carries out what the router asked for.
    pub(crate) fn drain_router(&mut self) {
        while let Some(a) = self.gossip.router.poll_action() {
            match a {
                Action::Send { to, id } => {
                    if let Some(&idx) = self.by_peer.get(&to) {
                        self.send_cached(idx, &id);
                    }
                }
                Action::Control { to, control } => {
                    if let Some(&idx) = self.by_peer.get(&to) {
                        self.send_control(idx, &control);
                    }
                }
                Action::Dial(addr) => {
                    if self.sessions.len() < self.cfg.max_peers as usize
                        && !self.by_addr.contains_key(&addr)
                    {
                        self.connect(addr);
                    }
                }
            }
        }
    }

    /// Queues the cached body of message `id` to session `idx` (nothing if
    /// the message cache no longer holds it).
    fn send_cached(&mut self, idx: u32, id: &[u8; 32]) {
        let mut buf = std::mem::take(&mut self.gossip.body_buf);
        buf.clear();
        if let Some(body) = self.gossip.router.cached_body(id) {
            buf.extend_from_slice(body);
        }
        #[cfg(feature = "adversary")]
        let skip = self.gossip.adversary.black_hole
            && buf.get(SIGNATURE_LEN + 1..SIGNATURE_LEN + 33)
                != Some(&self.identity.public_key().0[..]);
        #[cfg(not(feature = "adversary"))]
        let skip = false;
        if !buf.is_empty() && !skip {
            self.send_body(idx, id, &buf);
        }
        self.gossip.body_buf = buf;
    }

    /// Queues a signed publish body, fragmented when it exceeds a datagram.
    /// A fragmented body travels as `id ‖ body`, so the receiver learns the
    /// id from the first fragment and can send IDONTWANT before the rest
    /// arrives (the id is checked against the body once it is complete).
    fn send_body(&mut self, idx: u32, id: &[u8; 32], body: &[u8]) {
        let mut frame = std::mem::take(&mut self.gossip.frame_buf);
        frame.clear();
        if FRAME_HEADER + body.len() <= MAX_PLAINTEXT {
            frame.push(0x22);
            frame.extend_from_slice(&(body.len() as u16).to_le_bytes());
            frame.extend_from_slice(body);
            self.stats.messages_forwarded += 1;
            self.queue_frame_bytes(idx, &frame);
            self.gossip.frame_buf = frame;
            return;
        }
        let mut framed = frame;
        framed.extend_from_slice(id);
        framed.extend_from_slice(body);
        self.send_fragments(idx, &framed);
        self.gossip.frame_buf = framed;
    }

    /// Queues `id ‖ body` as signed fragments.
    fn send_fragments(&mut self, idx: u32, body: &[u8]) {
        let count = body.len().div_ceil(FRAGMENT_CHUNK) as u16;
        let Some(e) = self
            .sessions
            .get_mut(&idx)
            .and_then(|s| s.established_mut())
        else {
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

    fn session_peer(&self, idx: u32) -> Option<PeerId> {
        self.sessions
            .get(&idx)
            .and_then(|s| s.established())
            .map(|e| e.peer)
    }

    /// Processes the frames of one authenticated datagram. Everything from
    /// a graylisted peer is ignored. `checked`: a shard verified every
    /// signed publish frame in `plain` ([`crate::preverify`]).
    pub(crate) fn handle_frames(&mut self, idx: u32, plain: &[u8], checked: bool) {
        if let Some(peer) = self.session_peer(idx) {
            if self.gossip.router.is_graylisted(&peer, self.now) {
                return self.drop_input(DropReason::Graylisted);
            }
        }
        for f in FrameReader::new(plain) {
            match f {
                Ok(f) => self.handle_frame(idx, f, checked),
                Err(_) => {
                    self.penalise_malformed(idx);
                    self.drop_input(DropReason::MalformedFrame);
                    break;
                }
            }
        }
        self.drain_router();
    }

    /// A malformed frame inside an authenticated datagram is the peer's
    /// fault: it counts as misbehaviour (P7).
    fn penalise_malformed(&mut self, idx: u32) {
        if let Some(peer) = self.session_peer(idx) {
            self.gossip.router.penalise(&peer, 1.0);
        }
    }

    fn handle_frame(&mut self, idx: u32, f: Frame<'_>, checked: bool) {
        let now = self.now;
        let Some(peer) = self.session_peer(idx) else {
            return;
        };
        match f {
            Frame::Subscribe(t) => {
                if let Some(e) = self
                    .sessions
                    .get_mut(&idx)
                    .and_then(|s| s.established_mut())
                {
                    if e.topics.len() < moss_gossip::MAX_PEER_TOPICS {
                        e.topics.insert(t);
                    }
                }
                self.gossip.router.peer_subscribed(&peer, t);
            }
            Frame::Unsubscribe(t) => {
                if let Some(e) = self
                    .sessions
                    .get_mut(&idx)
                    .and_then(|s| s.established_mut())
                {
                    e.topics.remove(t);
                }
                self.gossip.router.peer_unsubscribed(&peer, t, now);
            }
            Frame::Publish(p) => {
                // Unsigned messages are not accepted: invalid (P4).
                self.gossip.router.on_invalid(&peer, p.topic);
                self.drop_input(DropReason::InvalidMessage);
            }
            Frame::SignedPublish(sp) => self.handle_signed(idx, peer, sp, checked),
            Frame::Fragment {
                transfer,
                index,
                count,
                data,
            }
            | Frame::SignedFragment {
                transfer,
                index,
                count,
                data,
            } => {
                let signed = matches!(f, Frame::SignedFragment { .. });
                if signed && index == 0 {
                    self.early_idontwant(peer, data);
                }
                let max_body = self.cfg.security.max_message_size_bytes as usize
                    + 32
                    + SIGNATURE_LEN
                    + PUBLISH_FIXED
                    + MAX_TOPIC;
                let Some(e) = self
                    .sessions
                    .get_mut(&idx)
                    .and_then(|s| s.established_mut())
                else {
                    return;
                };
                match e
                    .reassembly
                    .add(transfer, index, count, data, max_body, now)
                {
                    FragmentResult::Incomplete => {}
                    // Not scored: loss leaves honest transfers incomplete too.
                    FragmentResult::Rejected | FragmentResult::IncompleteEvicted => {
                        self.drop_input(DropReason::BadFragment)
                    }
                    FragmentResult::Complete(body) if signed => {
                        let (claimed, rest) = body.split_at(32.min(body.len()));
                        match SignedPublish::decode_body(rest) {
                            Ok(sp) => {
                                let p = sp.publish;
                                let id = message_id(&p.origin, p.seq, p.topic, p.payload);
                                if claimed != id {
                                    // Lied about the id in the first fragment.
                                    self.gossip.router.on_invalid(&peer, p.topic);
                                    return self.drop_input(DropReason::InvalidMessage);
                                }
                                self.handle_signed(idx, peer, sp, false)
                            }
                            Err(_) => {
                                self.penalise_malformed(idx);
                                self.drop_input(DropReason::MalformedFrame)
                            }
                        }
                    }
                    FragmentResult::Complete(_) => {
                        self.gossip.router.penalise(&peer, 1.0);
                        self.drop_input(DropReason::InvalidMessage)
                    }
                }
            }
            Frame::Close(_) => self.remove_session(idx, Some(DisconnectReason::Closed)),
            f => {
                if let Some(c) = control_of(&f) {
                    self.control(peer, c);
                }
            }
        }
    }

    /// First fragment of a large message: `id ‖ signature ‖ hops ‖ origin
    /// ‖ seq ‖ topic_len ‖ topic ‖ …`. Tell mesh peers at once that we are
    /// getting it.
    fn early_idontwant(&mut self, from: PeerId, data: &[u8]) {
        let head = 32 + SIGNATURE_LEN + PUBLISH_FIXED;
        let Some(&tlen) = data.get(head - 1) else {
            return;
        };
        let Some(topic) = data
            .get(head..head + tlen as usize)
            .and_then(|t| std::str::from_utf8(t).ok())
        else {
            return;
        };
        let mut id = [0u8; 32];
        id.copy_from_slice(&data[..32]);
        let now = self.now;
        self.gossip.router.early_idontwant(now, &from, id, topic);
        self.drain_router();
    }

    fn control(&mut self, peer: PeerId, c: Control) {
        let now = self.now;
        #[cfg(feature = "adversary")]
        if self.gossip.adversary.black_hole && matches!(c, Control::IWant { .. }) {
            return;
        }
        self.gossip.router.on_control(now, &peer, c, &mut self.rng);
    }

    /// `checked`: a shard already verified the signature of this frame.
    fn handle_signed(&mut self, idx: u32, peer: PeerId, sp: SignedPublish<'_>, checked: bool) {
        let now = self.now;
        let p = sp.publish;
        if p.payload.len() > self.cfg.security.max_message_size_bytes as usize {
            self.gossip.router.on_invalid(&peer, p.topic);
            return self.drop_input(DropReason::MessageTooLarge);
        }
        let Some(e) = self
            .sessions
            .get_mut(&idx)
            .and_then(|s| s.established_mut())
        else {
            return;
        };
        if !e.bucket.take(sp.body_len(), now) {
            self.gossip.router.rate_limited(&peer, now);
            return self.drop_input(DropReason::RateLimited);
        }
        let id = message_id(&p.origin, p.seq, p.topic, p.payload);
        if self.gossip.router.is_seen(&id) {
            self.gossip.router.on_duplicate(&peer, &id, now);
            self.stats.messages_duplicate += 1;
            return;
        }
        let origin = PeerId(p.origin);
        // Only the first copy of an id is verified; an invalid copy is not
        // remembered, so it cannot shadow the genuine message.
        if !checked && !origin.verify(&signing_bytes(&id), &sp.signature) {
            self.gossip.router.on_invalid(&peer, p.topic);
            return self.drop_input(DropReason::InvalidMessage);
        }
        // Telemetry deltas are validated here, before forwarding: a
        // malformed one goes no further and counts against its sender.
        if p.topic == crate::telemetry::TELEMETRY_TOPIC
            && moss_telemetry::StatDelta::decode(p.payload).is_err()
        {
            self.gossip.router.on_invalid(&peer, p.topic);
            return self.drop_input(DropReason::BadStatDelta);
        }
        if let Some(v) = self.gossip.validator.as_mut() {
            if !v(p.topic, &origin, p.payload) {
                self.gossip.router.on_invalid(&peer, p.topic);
                return self.drop_input(DropReason::InvalidMessage);
            }
        }
        let hops = p.hops.saturating_add(1);
        let last_hop = p.hops >= MAX_HOPS;
        // The body to forward (hop count raised), encoded in the scratch
        // buffer; the router copies it into its message cache.
        let mut buf = std::mem::take(&mut self.gossip.body_buf);
        buf.clear();
        if !last_hop {
            encode_signed(
                &mut buf,
                sp.signature,
                hops,
                p.origin,
                p.seq,
                p.topic,
                p.payload,
            );
        }
        let body = (!last_hop).then_some(&buf[..]);
        let r =
            self.gossip
                .router
                .on_message(now, &peer, &origin, id, p.topic, p.payload.len(), body);
        self.gossip.body_buf = buf;
        if last_hop {
            self.drop_input(DropReason::HopLimit);
        }
        match r {
            Received::New { subscribed } => {
                if subscribed && self.subscriptions.contains(p.topic) {
                    self.stats.messages_delivered += 1;
                    // The topic is the router's interned name and the
                    // payload a pooled buffer: no allocation per message.
                    self.events.push_back(Event::Message(Message {
                        topic: self.gossip.router.intern(p.topic),
                        from: origin,
                        data: self.gossip.payloads.copy_of(p.payload),
                        id,
                        hops,
                    }));
                }
            }
            Received::Duplicate => self.stats.messages_duplicate += 1,
            Received::Graylisted => self.drop_input(DropReason::Graylisted),
        }
    }
}

/// The router's value for a GossipSub control frame (`None` for other
/// frames).
pub fn control_of(f: &Frame<'_>) -> Option<Control> {
    Some(match *f {
        Frame::Graft(t) => Control::Graft { topic: t.into() },
        Frame::Prune {
            topic,
            backoff_secs,
            px,
        } => Control::Prune {
            topic: topic.into(),
            backoff_secs,
            px: px
                .iter()
                .map(|(p, addr)| PxPeer {
                    peer: PeerId(p),
                    addr,
                })
                .collect(),
        },
        Frame::IHave { topic, ids } => Control::IHave {
            topic: topic.into(),
            ids: ids.iter().collect(),
        },
        Frame::IWant(ids) => Control::IWant {
            ids: ids.iter().collect(),
        },
        Frame::IDontWant(ids) => Control::IDontWant {
            ids: ids.iter().collect(),
        },
        _ => return None,
    })
}

/// Appends a signed publish body to `out`.
fn encode_signed(
    out: &mut Vec<u8>,
    signature: [u8; SIGNATURE_LEN],
    hops: u8,
    origin: [u8; 32],
    seq: u64,
    topic: &str,
    payload: &[u8],
) {
    let sp = SignedPublish {
        signature,
        publish: crate::wire::Publish {
            hops,
            origin,
            seq,
            topic,
            payload,
        },
    };
    out.reserve(sp.body_len());
    sp.encode_body(out);
}

#[cfg(feature = "adversary")]
impl Node {
    /// Sets this node's misbehaviour (simulator attack scenarios).
    pub fn set_adversary(&mut self, a: Adversary) {
        self.gossip.adversary = a;
    }

    /// Queues raw frame bytes (possibly malformed) to a connected peer.
    pub fn send_raw_frames(&mut self, peer: &PeerId, frames: &[u8]) -> bool {
        let Some(&idx) = self.by_peer.get(peer) else {
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
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
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
        let targets: Vec<u32> = self
            .by_peer
            .values()
            .copied()
            .filter(|i| {
                self.sessions
                    .get(i)
                    .and_then(|s| s.established())
                    .is_some_and(|e| e.topics.contains(topic))
            })
            .collect();
        for &idx in &targets {
            self.send_body(idx, &[0x5A; 32], &body);
        }
        targets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_bodies_round_trip_and_sign_the_id() {
        let id = crate::Identity::from_seed([3; 32]);
        let origin = id.public_key().0;
        let mid = message_id(&origin, 7, "t", b"x");
        let sig = id.sign(&signing_bytes(&mid));
        let mut body = Vec::new();
        encode_signed(&mut body, sig, 2, origin, 7, "t", b"x");
        let sp = SignedPublish::decode_body(&body).unwrap();
        assert_eq!(sp.publish.hops, 2);
        assert_eq!(body[SignedPublish::HOPS_OFFSET], 2);
        assert!(PeerId(origin).verify(&signing_bytes(&mid), &sp.signature));
        let other = message_id(&origin, 8, "t", b"x");
        assert!(!PeerId(origin).verify(&signing_bytes(&other), &sp.signature));
    }
}
