//! Per-peer session state: handshake progress, transport cipher, the peer's
//! topics, pending frames, reassembly of fragmented messages and the
//! inbound rate limiter.

use crate::wire::{FRAGMENT_CHUNK, MAX_FRAGMENTS};
use crate::Time;
use moss_crypto::{Handshake, PeerId, TransportCipher};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

/// One session slot, keyed by our local index.
pub(crate) struct Session {
    /// The peer's index for this session (0 until known).
    pub remote_index: u32,
    /// Where the peer's datagrams come from (updated on authenticated data).
    pub addr: SocketAddr,
    /// When the slot was created.
    pub created: Time,
    /// Last authenticated datagram from the peer.
    pub last_recv: Time,
    /// Last datagram we sent.
    pub last_send: Time,
    /// Handshake or transport state.
    pub state: State,
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
}

/// An established session.
pub(crate) struct Established {
    /// The peer's authenticated identity.
    pub peer: PeerId,
    /// True if we sent message 1.
    pub initiator: bool,
    /// Transport cipher and replay window. Under detached transport the
    /// real one lives on a shard and this is a never-used stand-in with
    /// random keys (an `Option` would cost 8 B per idle session).
    pub cipher: TransportCipher,
    /// Topics the peer subscribed to.
    pub topics: HashSet<Box<str>>,
    /// Encoded frames waiting to be sealed into a datagram.
    pub pending: Vec<u8>,
    /// Initiator only: our message 3, resent if message 2 arrives again.
    pub final_datagram: Option<Vec<u8>>,
    /// Partially received fragmented messages.
    pub reassembly: Reassembly,
    /// Inbound message-byte limiter.
    pub bucket: TokenBucket,
    /// Next transfer id for messages we fragment to this peer.
    pub next_transfer: u32,
    /// Our address as the peer observed it during the handshake.
    pub observed: Option<SocketAddr>,
}

impl Session {
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

/// Token bucket over bytes.
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Time,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, rate_per_sec: u32, now: Time) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            rate: f64::from(rate_per_sec),
            last: now,
        }
    }

    /// Takes `n` tokens if available.
    pub fn take(&mut self, n: usize, now: Time) -> bool {
        let dt = now.saturating_sub(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
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
    /// The whole body is here.
    Complete(Vec<u8>),
    /// The piece violates a limit or disagrees with earlier pieces.
    Rejected,
}

struct Partial {
    count: u16,
    received: u16,
    parts: Vec<Option<Box<[u8]>>>,
    bytes: usize,
    started: Time,
}

/// Bounded reassembly of fragmented publish bodies.
#[derive(Default)]
pub(crate) struct Reassembly {
    transfers: HashMap<u32, Partial>,
}

impl Reassembly {
    /// Adds a piece; `max_body` bounds the reassembled size.
    pub fn add(
        &mut self,
        transfer: u32,
        index: u16,
        count: u16,
        data: &[u8],
        max_body: usize,
        now: Time,
    ) -> FragmentResult {
        if count > MAX_FRAGMENTS
            || data.len() > FRAGMENT_CHUNK
            || (count as usize - 1) * FRAGMENT_CHUNK >= max_body.max(1)
        {
            return FragmentResult::Rejected;
        }
        if !self.transfers.contains_key(&transfer) && self.transfers.len() >= MAX_TRANSFERS {
            return FragmentResult::Rejected;
        }
        let p = self.transfers.entry(transfer).or_insert_with(|| Partial {
            count,
            received: 0,
            parts: vec![None; count as usize],
            bytes: 0,
            started: now,
        });
        // All pieces but the last are full chunks.
        let full = data.len() == FRAGMENT_CHUNK;
        if p.count != count || (index + 1 < count && !full) || p.bytes + data.len() > max_body {
            self.transfers.remove(&transfer);
            return FragmentResult::Rejected;
        }
        let Some(slot) = p.parts.get_mut(index as usize) else {
            return FragmentResult::Rejected;
        };
        if slot.is_some() {
            return FragmentResult::Incomplete;
        }
        *slot = Some(data.into());
        p.received += 1;
        p.bytes += data.len();
        if p.received < p.count {
            return FragmentResult::Incomplete;
        }
        let Some(p) = self.transfers.remove(&transfer) else {
            return FragmentResult::Rejected;
        };
        let mut body = Vec::with_capacity(p.bytes);
        for part in p.parts.into_iter().flatten() {
            body.extend_from_slice(&part);
        }
        FragmentResult::Complete(body)
    }

    /// Drops transfers older than the timeout; returns how many.
    pub fn expire(&mut self, now: Time) -> usize {
        let before = self.transfers.len();
        self.transfers
            .retain(|_, p| now.saturating_sub(p.started) < REASSEMBLY_TIMEOUT);
        before - self.transfers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassembles_out_of_order_and_rejects_inconsistency() {
        let mut r = Reassembly::default();
        let now = Duration::ZERO;
        let a = vec![1u8; FRAGMENT_CHUNK];
        let b = vec![2u8; 10];
        assert_eq!(r.add(1, 1, 2, &b, 100_000, now), FragmentResult::Incomplete);
        assert_eq!(r.add(1, 1, 2, &b, 100_000, now), FragmentResult::Incomplete);
        match r.add(1, 0, 2, &a, 100_000, now) {
            FragmentResult::Complete(body) => {
                assert_eq!(body.len(), FRAGMENT_CHUNK + 10);
                assert_eq!(body[0], 1);
                assert_eq!(body[FRAGMENT_CHUNK], 2);
            }
            other => panic!("{other:?}"),
        }
        // short non-final piece
        assert_eq!(r.add(2, 0, 2, &b, 100_000, now), FragmentResult::Rejected);
        // count too large for the size limit
        assert_eq!(r.add(3, 0, 200, &a, 10_000, now), FragmentResult::Rejected);
        // bounded number of transfers
        for t in 10..10 + MAX_TRANSFERS as u32 {
            assert_eq!(r.add(t, 0, 2, &a, 100_000, now), FragmentResult::Incomplete);
        }
        assert_eq!(r.add(99, 0, 2, &a, 100_000, now), FragmentResult::Rejected);
        assert_eq!(r.expire(REASSEMBLY_TIMEOUT), MAX_TRANSFERS);
    }

    #[test]
    fn bucket_refills() {
        let mut b = TokenBucket::new(100, 10, Duration::ZERO);
        assert!(b.take(100, Duration::ZERO));
        assert!(!b.take(1, Duration::ZERO));
        assert!(b.take(10, Duration::from_secs(1)));
    }
}
