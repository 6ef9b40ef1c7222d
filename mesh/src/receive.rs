//! Receiving pub/sub: the frames of one authenticated datagram, read in
//! order — subscriptions, signed messages (dedup, early delivery at the
//! first hop, signature, validator, delivery, forwarding through the
//! router), fragments and their reassembly, and GossipSub control.

use crate::event::{Event, Message};
use crate::node::Node;
use crate::pubsub::MAX_HOPS;
use crate::session::{FragmentResult, Piece};
use crate::stats::DropReason;
use crate::wire::{
    signing_bytes, Frame, FrameReader, SignedPublish, MAX_TOPIC, PUBLISH_FIXED, SIGNATURE_LEN,
};
use moss_crypto::msgid::message_id;
use moss_crypto::PeerId;
use moss_gossip::{Control, PxPeer, Received};

impl Node {
    fn session_peer(&self, idx: u32) -> Option<PeerId> {
        self.table.peer_of(idx)
    }

    /// Processes the frames of one authenticated datagram. Everything from
    /// a graylisted peer is ignored. `checked`: a shard verified every
    /// signed publish frame in `plain` ([`crate::preverify`]).
    pub(crate) fn handle_frames(&mut self, idx: u32, plain: &[u8], checked: bool) {
        if let Some(peer) = self.session_peer(idx) {
            if self.pubsub.router.is_graylisted(&peer, self.now) {
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
            self.pubsub.router.penalise(&peer, 1.0);
        }
    }

    fn handle_frame(&mut self, idx: u32, f: Frame<'_>, checked: bool) {
        let now = self.now;
        let Some(peer) = self.session_peer(idx) else {
            return;
        };
        match f {
            Frame::Subscribe(t) => {
                if let Some(e) = self.table.established_mut(idx) {
                    if e.topics.len() < moss_gossip::MAX_PEER_TOPICS {
                        e.topics.insert(t);
                    }
                }
                if !crate::pubsub::is_capability(t) {
                    self.pubsub.router.peer_subscribed_at(&peer, t, now);
                }
            }
            Frame::Unsubscribe(t) => {
                if let Some(e) = self.table.established_mut(idx) {
                    e.topics.remove(t);
                }
                if !crate::pubsub::is_capability(t) {
                    self.pubsub.router.peer_unsubscribed(&peer, t, now);
                }
            }
            Frame::Publish(p) => {
                // Unsigned messages are not accepted: invalid (P4).
                self.pubsub.router.on_invalid(&peer, p.topic);
                self.drop_input(DropReason::InvalidMessage);
            }
            Frame::SignedPublish(sp) => self.handle_signed(peer, sp, checked),
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
                let piece = Piece {
                    transfer,
                    index,
                    count,
                    data,
                };
                let Some(outcome) = self.table.add_fragment(idx, piece, max_body, now) else {
                    return;
                };
                match outcome {
                    FragmentResult::Incomplete => {}
                    // Not scored: loss leaves honest transfers incomplete too.
                    FragmentResult::Rejected | FragmentResult::IncompleteEvicted => {
                        self.drop_input(DropReason::BadFragment)
                    }
                    FragmentResult::Complete(body) => {
                        if signed {
                            self.reassembled(idx, peer, &body);
                        } else {
                            self.pubsub.router.penalise(&peer, 1.0);
                            self.drop_input(DropReason::InvalidMessage)
                        }
                        // The body's buffer serves the next message.
                        self.table.reassembly.recycle_body(body);
                    }
                }
            }
            Frame::Close(reason) => self.on_close(idx, reason),
            Frame::Nat(f) => self.nat_frame(idx, peer, f),
            Frame::Relay { ty, body } => self.relay_frame(peer, ty, body),
            f => {
                if let Some(c) = control_of(&f) {
                    self.control(peer, c);
                }
            }
        }
    }

    /// A reassembled signed message from `peer` on session `idx`:
    /// `id ‖ signed publish body`.
    fn reassembled(&mut self, idx: u32, peer: PeerId, body: &[u8]) {
        let (claimed, rest) = body.split_at(32.min(body.len()));
        match SignedPublish::decode_body(rest) {
            Ok(sp) => {
                let p = sp.publish;
                let id = message_id(&p.origin, p.seq, p.topic, p.payload);
                if claimed != id {
                    // Lied about the id in the first fragment.
                    self.pubsub.router.on_invalid(&peer, p.topic);
                    return self.drop_input(DropReason::InvalidMessage);
                }
                self.handle_signed(peer, sp, false)
            }
            Err(_) => {
                self.penalise_malformed(idx);
                self.drop_input(DropReason::MalformedFrame)
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
        self.pubsub.router.early_idontwant(now, &from, id, topic);
        self.drain_router();
    }

    fn control(&mut self, peer: PeerId, c: Control) {
        let now = self.now;
        #[cfg(feature = "adversary")]
        if self.pubsub.adversary.black_hole && matches!(c, Control::IWant { .. }) {
            return;
        }
        self.pubsub.router.on_control(now, &peer, c, &mut self.rng);
    }

    /// `checked`: a shard already verified the signature of this frame.
    fn handle_signed(&mut self, peer: PeerId, sp: SignedPublish<'_>, checked: bool) {
        let now = self.now;
        let p = sp.publish;
        if p.payload.len() > self.cfg.security.max_message_size_bytes as usize {
            self.pubsub.router.on_invalid(&peer, p.topic);
            return self.drop_input(DropReason::MessageTooLarge);
        }
        // No byte limiter here: the relay buckets (`rate_limit_*`) do not
        // apply to gossip. A flooding peer is met by its score: duplicates
        // are dropped before any work, forgeries cost it P4 and end in the
        // graylist, whose datagrams are dropped unread.
        let id = message_id(&p.origin, p.seq, p.topic, p.payload);
        if self.pubsub.router.is_seen(&id) {
            self.pubsub.router.on_duplicate(&peer, &id, now);
            self.stats.messages_duplicate += 1;
            return;
        }
        if self.pubsub.deferred.contains(&id) {
            self.stats.messages_duplicate += 1;
            return;
        }
        let origin = PeerId(p.origin);
        // First hop from its origin, on a topic the application takes:
        // the session proved who sent it, so deliver now and check the
        // signature before forwarding (`check_deferred`).
        if !checked
            && origin == peer
            && p.topic != crate::telemetry::TELEMETRY_TOPIC
            && self.pubsub.subscriptions.contains(p.topic)
        {
            if !self.validate(&peer, &origin, p.topic, p.payload) {
                return;
            }
            if self.pubsub.deferred.is_full() {
                self.check_deferred();
            }
            self.deliver(origin, id, p.hops.saturating_add(1), p.topic, p.payload);
            self.pubsub.deferred.push(peer, id, &sp);
            return;
        }
        self.accept_signed(peer, id, sp, checked, false);
    }

    /// Checks the signatures of the messages delivered early, then routes
    /// the genuine ones (forwarding, caching); a forgery is counted
    /// `invalid_message` against its sender and goes no further.
    pub(crate) fn check_deferred(&mut self) {
        if self.pubsub.deferred.is_empty() {
            return;
        }
        let d = std::mem::take(&mut self.pubsub.deferred);
        // One batch equation for all of them (the same rule as one by
        // one); if it fails, each is checked alone to find the forgery.
        let checked = d.all_valid(&mut self.pubsub.batch);
        for (peer, id, body) in d.iter() {
            match SignedPublish::decode_body(body) {
                Ok(sp) => self.accept_signed(peer, id, sp, checked, true),
                // Encoded by us a moment ago: cannot fail.
                Err(_) => self.drop_input(DropReason::MalformedFrame),
            }
        }
        let mut d = d;
        d.clear();
        self.pubsub.deferred = d;
        self.drain_router();
    }

    /// The telemetry check and the application validator; false (counted
    /// and scored) if the message is refused.
    fn validate(&mut self, peer: &PeerId, origin: &PeerId, topic: &str, payload: &[u8]) -> bool {
        // Telemetry deltas are validated here, before forwarding: a
        // malformed one goes no further and counts against its sender.
        if topic == crate::telemetry::TELEMETRY_TOPIC
            && moss_telemetry::StatDelta::decode(payload).is_err()
        {
            self.pubsub.router.on_invalid(peer, topic);
            self.drop_input(DropReason::BadStatDelta);
            return false;
        }
        if let Some(v) = self.pubsub.validator.as_mut() {
            if !v(topic, origin, payload) {
                self.pubsub.router.on_invalid(peer, topic);
                self.drop_input(DropReason::InvalidMessage);
                return false;
            }
        }
        true
    }

    /// A new signed message `id`: verify (unless `checked`), validate
    /// (unless `delivered` early, which validated it), deliver (unless
    /// `delivered`) and route.
    fn accept_signed(
        &mut self,
        peer: PeerId,
        id: [u8; 32],
        sp: SignedPublish<'_>,
        checked: bool,
        delivered: bool,
    ) {
        let now = self.now;
        let p = sp.publish;
        let origin = PeerId(p.origin);
        // Only the first copy of an id is verified; an invalid copy is not
        // remembered, so it cannot shadow the genuine message.
        if !checked && !origin.verify(&signing_bytes(&id), &sp.signature) {
            self.pubsub.router.on_invalid(&peer, p.topic);
            return self.drop_input(DropReason::InvalidMessage);
        }
        if !delivered && !self.validate(&peer, &origin, p.topic, p.payload) {
            return;
        }
        let hops = p.hops.saturating_add(1);
        let last_hop = p.hops >= MAX_HOPS;
        // The body to forward (hop count raised), encoded in the scratch
        // buffer; the router copies it into its message cache.
        let mut buf = std::mem::take(&mut self.pubsub.body_buf);
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
            self.pubsub
                .router
                .on_message(now, &peer, &origin, id, p.topic, p.payload.len(), body);
        self.pubsub.body_buf = buf;
        let delivered = match r {
            Received::New { subscribed }
                if !delivered && subscribed && self.pubsub.subscriptions.contains(p.topic) =>
            {
                self.deliver(origin, id, hops, p.topic, p.payload);
                true
            }
            Received::New { .. } => delivered,
            Received::Duplicate => {
                self.stats.messages_duplicate += 1;
                delivered
            }
            Received::Graylisted => {
                self.drop_input(DropReason::Graylisted);
                delivered
            }
        };
        if delivered && p.topic != crate::telemetry::TELEMETRY_TOPIC {
            self.nat_saw_origin(peer, origin, p.hops);
        }
        // At the hop limit the message goes no further: a drop only when it
        // was not delivered here either.
        if last_hop && !delivered {
            self.drop_input(DropReason::HopLimit);
        }
    }

    /// Hands a new message of a subscribed topic to the application, or,
    /// on the telemetry topic, merges its delta at once (never an event,
    /// so merging does not wait for the driver to drain events).
    fn deliver(&mut self, from: PeerId, id: [u8; 32], hops: u8, topic: &str, payload: &[u8]) {
        self.stats.messages_delivered += 1;
        if topic == crate::telemetry::TELEMETRY_TOPIC {
            return self.merge_delta(payload);
        }
        // The topic is the router's interned name and the payload a pooled
        // buffer: no allocation per message.
        self.events.push_back(Event::Message(Message {
            topic: self.pubsub.router.intern(topic),
            from,
            data: self.pubsub.payloads.copy_of(payload),
            id,
            hops,
        }));
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
pub(crate) fn encode_signed(
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
