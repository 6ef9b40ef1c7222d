//! Minimal correct pub/sub: subscriptions are announced to every peer, a
//! node floods its own messages to subscribed peers, and received messages
//! are delivered once (BLAKE2s-id seen cache) and forwarded to the other
//! subscribed peers. Messages larger than a datagram travel as fragments.

use crate::event::{DisconnectReason, Event, Message};
use crate::node::Node;
use crate::session::FragmentResult;
use crate::stats::DropReason;
use crate::wire::{
    Frame, FrameReader, Publish, FRAGMENT_CHUNK, FRAME_HEADER, MAX_PLAINTEXT, MAX_TOPIC,
    PUBLISH_FIXED,
};
use crate::Time;
use moss_crypto::msgid::message_id;
use moss_crypto::PeerId;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// How long a message id is remembered.
pub const SEEN_TTL: Duration = Duration::from_secs(120);
/// Most ids remembered; the oldest are forgotten first beyond this.
pub const SEEN_CAPACITY: usize = 200_000;
/// Messages are not forwarded beyond this many hops.
pub const MAX_HOPS: u8 = 32;

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
    /// No connected peer subscribes to the topic.
    #[error("no peers subscribe to the topic")]
    NoPeers,
}

/// Time-bounded, size-bounded set of message ids.
#[derive(Default)]
pub struct SeenCache {
    ids: HashMap<[u8; 32], Time>,
    order: VecDeque<([u8; 32], Time)>,
}

impl SeenCache {
    /// Inserts `id`; false if it was already present.
    pub fn insert(&mut self, id: [u8; 32], now: Time) -> bool {
        if self.ids.contains_key(&id) {
            return false;
        }
        if self.order.len() >= SEEN_CAPACITY {
            if let Some((old, _)) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        self.ids.insert(id, now);
        self.order.push_back((id, now));
        true
    }

    /// Forgets ids older than the TTL.
    pub fn expire(&mut self, now: Time) {
        while let Some(&(id, t)) = self.order.front() {
            if now.saturating_sub(t) < SEEN_TTL {
                break;
            }
            self.order.pop_front();
            self.ids.remove(&id);
        }
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

fn valid_topic(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TOPIC
}

impl Node {
    /// Subscribes to a topic; peers learn at once. Returns false for an
    /// invalid topic name.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if !valid_topic(topic) {
            return false;
        }
        if self.subscriptions.insert(topic.to_string()) {
            let peers: Vec<u32> = self.by_peer.values().copied().collect();
            for idx in peers {
                self.queue_frame(idx, &Frame::Subscribe(topic));
            }
        }
        true
    }

    /// Leaves a topic; returns false if we were not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        if !self.subscriptions.remove(topic) {
            return false;
        }
        let peers: Vec<u32> = self.by_peer.values().copied().collect();
        for idx in peers {
            self.queue_frame(idx, &Frame::Unsubscribe(topic));
        }
        true
    }

    pub(crate) fn send_subscriptions(&mut self, idx: u32) {
        let topics: Vec<String> = self.subscriptions.iter().cloned().collect();
        for t in topics {
            self.queue_frame(idx, &Frame::Subscribe(&t));
        }
    }

    /// Publishes `data` on `topic` to every connected subscriber.
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
        let targets = self.subscribers(topic, None, None);
        if targets.is_empty() {
            return Err(PublishError::NoPeers);
        }
        let origin = self.identity.public_key().0;
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let id = message_id(&origin, seq, topic, data);
        self.seen.insert(id, now);
        let p = Publish {
            hops: 0,
            origin,
            seq,
            topic,
            payload: data,
        };
        self.stats.messages_published += 1;
        self.send_publish(&targets, &p);
        Ok(id)
    }

    /// Established sessions whose peer subscribes to `topic`, except the
    /// session a message came from and its origin.
    fn subscribers(
        &self,
        topic: &str,
        except_idx: Option<u32>,
        except_peer: Option<PeerId>,
    ) -> Vec<u32> {
        self.by_peer
            .iter()
            .filter(|(p, i)| Some(**i) != except_idx && Some(**p) != except_peer)
            .filter(|(_, i)| {
                self.sessions
                    .get(i)
                    .and_then(|s| s.established())
                    .is_some_and(|e| e.topics.contains(topic))
            })
            .map(|(_, i)| *i)
            .collect()
    }

    fn send_publish(&mut self, targets: &[u32], p: &Publish<'_>) {
        let mut body = Vec::with_capacity(p.body_len());
        p.encode_body(&mut body);
        if FRAME_HEADER + body.len() <= MAX_PLAINTEXT {
            let mut frame = Vec::with_capacity(FRAME_HEADER + body.len());
            frame.push(0x20);
            frame.extend_from_slice(&(body.len() as u16).to_le_bytes());
            frame.extend_from_slice(&body);
            for &idx in targets {
                self.queue_frame_bytes(idx, &frame);
            }
            return;
        }
        let count = body.len().div_ceil(FRAGMENT_CHUNK) as u16;
        for &idx in targets {
            let Some(e) = self
                .sessions
                .get_mut(&idx)
                .and_then(|s| s.established_mut())
            else {
                continue;
            };
            let transfer = e.next_transfer;
            e.next_transfer = e.next_transfer.wrapping_add(1);
            for (i, chunk) in body.chunks(FRAGMENT_CHUNK).enumerate() {
                let f = Frame::Fragment {
                    transfer,
                    index: i as u16,
                    count,
                    data: chunk,
                };
                self.queue_frame(idx, &f);
            }
        }
    }

    /// Processes the frames of one authenticated datagram.
    pub(crate) fn handle_frames(&mut self, idx: u32, plain: &[u8]) {
        for f in FrameReader::new(plain) {
            match f {
                Ok(f) => self.handle_frame(idx, f),
                Err(_) => return self.drop_input(DropReason::MalformedFrame),
            }
        }
    }

    fn handle_frame(&mut self, idx: u32, f: Frame<'_>) {
        let now = self.now;
        match f {
            Frame::Subscribe(t) => {
                if let Some(e) = self
                    .sessions
                    .get_mut(&idx)
                    .and_then(|s| s.established_mut())
                {
                    if e.topics.len() < 4096 {
                        e.topics.insert(t.into());
                    }
                }
            }
            Frame::Unsubscribe(t) => {
                if let Some(e) = self
                    .sessions
                    .get_mut(&idx)
                    .and_then(|s| s.established_mut())
                {
                    e.topics.remove(t);
                }
            }
            Frame::Publish(p) => self.handle_publish(idx, p),
            Frame::Fragment {
                transfer,
                index,
                count,
                data,
            } => {
                let max_body =
                    self.cfg.security.max_message_size_bytes as usize + PUBLISH_FIXED + MAX_TOPIC;
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
                    FragmentResult::Rejected => self.drop_input(DropReason::BadFragment),
                    FragmentResult::Complete(body) => match Publish::decode_body(&body) {
                        Ok(p) => self.handle_publish(idx, p),
                        Err(_) => self.drop_input(DropReason::MalformedFrame),
                    },
                }
            }
            Frame::Close(_) => self.remove_session(idx, Some(DisconnectReason::Closed)),
        }
    }

    fn handle_publish(&mut self, idx: u32, p: Publish<'_>) {
        let now = self.now;
        if p.payload.len() > self.cfg.security.max_message_size_bytes as usize {
            return self.drop_input(DropReason::MessageTooLarge);
        }
        let Some(e) = self
            .sessions
            .get_mut(&idx)
            .and_then(|s| s.established_mut())
        else {
            return;
        };
        if !e.bucket.take(p.body_len(), now) {
            return self.drop_input(DropReason::RateLimited);
        }
        let id = message_id(&p.origin, p.seq, p.topic, p.payload);
        if !self.seen.insert(id, now) {
            self.stats.messages_duplicate += 1;
            return;
        }
        let origin = PeerId(p.origin);
        if self.subscriptions.contains(p.topic) {
            self.stats.messages_delivered += 1;
            self.events.push_back(Event::Message(Message {
                topic: p.topic.to_string(),
                from: origin,
                data: p.payload.to_vec(),
                id,
            }));
        }
        if p.hops >= MAX_HOPS {
            return self.drop_input(DropReason::HopLimit);
        }
        let targets = self.subscribers(p.topic, Some(idx), Some(origin));
        if targets.is_empty() {
            return;
        }
        self.stats.messages_forwarded += targets.len() as u64;
        let fwd = Publish {
            hops: p.hops + 1,
            ..p
        };
        self.send_publish(&targets, &fwd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_cache_dedups_and_expires() {
        let mut c = SeenCache::default();
        assert!(c.insert([1; 32], Duration::ZERO));
        assert!(!c.insert([1; 32], Duration::from_secs(1)));
        c.expire(SEEN_TTL);
        assert!(c.is_empty());
        assert!(c.insert([1; 32], SEEN_TTL));
    }
}
