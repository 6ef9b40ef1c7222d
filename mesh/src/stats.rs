//! Counters of everything the node did and every reason it dropped input.

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Why an input was dropped. Every drop is counted under exactly one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// Shorter than the smallest datagram.
    TooShort,
    /// Longer than the largest datagram.
    Oversize,
    /// The head did not decode: garbage, another mesh's key, or an unknown kind/version.
    Unrecognized,
    /// A data datagram for a session index we do not have.
    UnknownSession,
    /// A data datagram for a session still in its handshake.
    NotEstablished,
    /// The counter was already seen or is too old.
    Replay,
    /// The AEAD tag did not verify.
    BadTag,
    /// A decrypted frame was malformed.
    MalformedFrame,
    /// A handshake datagram body was malformed or unexpected.
    BadHandshake,
    /// A Noise message did not decrypt: another mesh or a wrong PSK.
    HandshakeDecrypt,
    /// A Noise message was well-formed but the identity binding failed.
    HandshakeAuth,
    /// Too many handshakes or peers already.
    Capacity,
    /// The handshake completed with ourselves.
    SelfConnect,
    /// A message larger than `max_message_size_bytes`.
    MessageTooLarge,
    /// The sending peer exceeded its inbound rate limit.
    RateLimited,
    /// Fragments that could not be reassembled (limits, inconsistency).
    BadFragment,
    /// Hop limit reached.
    HopLimit,
    /// A telemetry stat delta that does not decode.
    BadStatDelta,
    /// A telemetry stat delta refused by the CRDT (wrong epoch length,
    /// epoch outside the open window, epoch full).
    StatDeltaRejected,
    /// A handshake initiation beyond the responder's rate budget.
    HandshakeRateLimited,
    /// A pub/sub message with a bad or missing signature, or rejected by
    /// the application validator.
    InvalidMessage,
    /// Input from a peer whose score is below the graylist threshold.
    Graylisted,
    /// A hint datagram that does not decode or names no session or dial
    /// of ours on the path it came from.
    BadHint,
    /// A message 1 whose echoed cookie is not valid for its path (or a
    /// cookie reply that names no dial of ours on that path).
    BadCookie,
    /// A relayed datagram over its sender's token bucket or the relay's
    /// bandwidth cap.
    RelayRateLimited,
    /// A relay frame for a relay session we do not have, or from a peer
    /// that is not one of its ends.
    RelayUnknownSession,
    /// A relay frame whose signature does not verify (a forged announce,
    /// revocation, request or accept), or an accept nobody asked for.
    RelayForged,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 27;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        Self::TooShort,
        Self::Oversize,
        Self::Unrecognized,
        Self::UnknownSession,
        Self::NotEstablished,
        Self::Replay,
        Self::BadTag,
        Self::MalformedFrame,
        Self::BadHandshake,
        Self::HandshakeDecrypt,
        Self::HandshakeAuth,
        Self::Capacity,
        Self::SelfConnect,
        Self::MessageTooLarge,
        Self::RateLimited,
        Self::BadFragment,
        Self::HopLimit,
        Self::BadStatDelta,
        Self::StatDeltaRejected,
        Self::HandshakeRateLimited,
        Self::InvalidMessage,
        Self::Graylisted,
        Self::BadHint,
        Self::BadCookie,
        Self::RelayRateLimited,
        Self::RelayUnknownSession,
        Self::RelayForged,
    ];

    /// Snake-case name used in stats JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::Oversize => "oversize",
            Self::Unrecognized => "unrecognized",
            Self::UnknownSession => "unknown_session",
            Self::NotEstablished => "not_established",
            Self::Replay => "replay",
            Self::BadTag => "bad_tag",
            Self::MalformedFrame => "malformed_frame",
            Self::BadHandshake => "bad_handshake",
            Self::HandshakeDecrypt => "handshake_decrypt",
            Self::HandshakeAuth => "handshake_auth",
            Self::Capacity => "capacity",
            Self::SelfConnect => "self_connect",
            Self::MessageTooLarge => "message_too_large",
            Self::RateLimited => "rate_limited",
            Self::BadFragment => "bad_fragment",
            Self::HopLimit => "hop_limit",
            Self::BadStatDelta => "bad_stat_delta",
            Self::StatDeltaRejected => "stat_delta_rejected",
            Self::HandshakeRateLimited => "handshake_rate_limited",
            Self::InvalidMessage => "invalid_message",
            Self::Graylisted => "graylisted",
            Self::BadHint => "bad_hint",
            Self::BadCookie => "bad_cookie",
            Self::RelayRateLimited => "relay_rate_limited",
            Self::RelayUnknownSession => "relay_unknown_session",
            Self::RelayForged => "relay_forged",
        }
    }
}

/// Drop counters by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drops([u64; DropReason::COUNT]);

impl Drops {
    /// Counts one drop.
    pub fn add(&mut self, r: DropReason) {
        self.0[r as usize] += 1;
    }

    /// The count for one reason.
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize]
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds another set of counters (shards' counters are summed).
    pub fn merge(&mut self, other: &Drops) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

impl Serialize for Drops {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(DropReason::COUNT))?;
        for r in DropReason::ALL {
            m.serialize_entry(r.as_str(), &self.get(r))?;
        }
        m.end()
    }
}

/// Everything a node counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Datagrams handed to the node.
    pub datagrams_in: u64,
    /// Datagrams the node emitted.
    pub datagrams_out: u64,
    /// Bytes handed to the node.
    pub bytes_in: u64,
    /// Bytes the node emitted.
    pub bytes_out: u64,
    /// Handshakes we started.
    pub handshakes_initiated: u64,
    /// Handshakes that produced a session (either role).
    pub handshakes_completed: u64,
    /// Handshakes that failed or timed out.
    pub handshakes_failed: u64,
    /// Messages this node published.
    pub messages_published: u64,
    /// Messages delivered to the local application.
    pub messages_delivered: u64,
    /// Message copies forwarded to peers.
    pub messages_forwarded: u64,
    /// Messages received again after the first copy.
    pub messages_duplicate: u64,
    /// Handshakes completed with Noise IK (a 1-RTT reconnect).
    pub ik_completed: u64,
    /// Hints sent (unknown session, IK refused).
    pub hints_sent: u64,
    /// Cookie replies sent to message 1s under load.
    pub cookies_sent: u64,
    /// Inputs dropped, by reason.
    pub drops: Drops,
    /// NAT traversal counters.
    pub nat: crate::nat::NatStats,
    /// Datagrams this node relayed between two other peers (supernode).
    pub relayed_datagrams: u64,
    /// Bytes of those datagrams.
    pub relayed_bytes: u64,
    /// Relay sessions whose data plane followed an end to a new address
    /// (supernode).
    pub relay_routes_moved: u64,
}

impl Stats {
    /// Adds another node's counters (for sharded engines).
    pub fn merge(&mut self, o: &Stats) {
        self.datagrams_in += o.datagrams_in;
        self.datagrams_out += o.datagrams_out;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.handshakes_initiated += o.handshakes_initiated;
        self.handshakes_completed += o.handshakes_completed;
        self.handshakes_failed += o.handshakes_failed;
        self.messages_published += o.messages_published;
        self.messages_delivered += o.messages_delivered;
        self.messages_forwarded += o.messages_forwarded;
        self.messages_duplicate += o.messages_duplicate;
        self.ik_completed += o.ik_completed;
        self.hints_sent += o.hints_sent;
        self.cookies_sent += o.cookies_sent;
        self.drops.merge(&o.drops);
        self.nat.merge(&o.nat);
        self.relayed_datagrams += o.relayed_datagrams;
        self.relayed_bytes += o.relayed_bytes;
        self.relay_routes_moved += o.relay_routes_moved;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_reasons_have_distinct_names_and_slots() {
        let mut names = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            assert!(names.insert(r.as_str()));
        }
        let mut d = Drops::default();
        d.add(DropReason::Replay);
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["replay"], 1);
        assert_eq!(json["bad_tag"], 0);
    }
}
