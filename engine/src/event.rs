//! What a running node reports to its host.

pub use moss_mesh::Payload;
use moss_mesh::PeerId;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// A message delivered on a subscribed topic. The topic is shared with
/// the subscription and the payload sits in a pooled buffer that goes back
/// to the node when the message is dropped: delivery allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic (see [`Message::topic`] for a `&str`).
    pub topic: Arc<str>,
    /// Publisher's peer id.
    pub from: PeerId,
    /// Application bytes: derefs to `[u8]` (see [`Message::data`]).
    pub data: Payload,
    /// BLAKE2s message id.
    pub id: [u8; 32],
}

impl Message {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The application bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The application bytes as a vector, without copying.
    pub fn into_data(self) -> Vec<u8> {
        self.data.into_vec()
    }
}

/// Host-visible events; [`Event::id`] gives the C ABI event number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A peer session came up (event 1).
    PeerJoined {
        /// The peer.
        peer: PeerId,
        /// Its address.
        addr: SocketAddr,
    },
    /// A peer's last session ended (event 2).
    PeerLeft {
        /// The peer.
        peer: PeerId,
        /// Its last address.
        addr: SocketAddr,
        /// `timeout`, `closed` or `shutdown`.
        reason: &'static str,
    },
    /// This node became a supernode (event 3).
    SupernodePromoted,
    /// This node stopped being a supernode (event 4).
    SupernodeRevoked {
        /// The condition that failed.
        reason: String,
    },
    /// A relayed peer moved to a direct path (event 7).
    RelayMigrated {
        /// The peer.
        peer: PeerId,
        /// The relay path it left (`relay:<supernode>/<session>`).
        from: String,
        /// The direct address it took.
        to: String,
    },
    /// A tracker announce succeeded (event 5).
    TrackerAnnounce {
        /// Tracker URL.
        tracker: String,
        /// Peers it returned.
        peers: usize,
    },
    /// A tracker announce failed (event 6).
    TrackerFailure {
        /// Tracker URL.
        tracker: String,
        /// What went wrong.
        error: String,
    },
    /// Events were dropped because the host did not drain them in time.
    Overflow {
        /// How many were lost since the last report.
        dropped: u64,
    },
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracker: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
}

impl Event {
    /// The C ABI event id (1 peer joined, 2 peer left, 3 supernode
    /// promoted, 4 supernode revoked, 5 tracker announce, 6 tracker failure,
    /// 7 relay migrated; 100 = host queue overflow, a Moss-in-Rust
    /// addition).
    pub fn id(&self) -> i32 {
        match self {
            Event::PeerJoined { .. } => 1,
            Event::PeerLeft { .. } => 2,
            Event::SupernodePromoted => 3,
            Event::SupernodeRevoked { .. } => 4,
            Event::RelayMigrated { .. } => 7,
            Event::TrackerAnnounce { .. } => 5,
            Event::TrackerFailure { .. } => 6,
            Event::Overflow { .. } => 100,
        }
    }

    /// The JSON detail passed to event callbacks.
    pub fn detail_json(&self) -> String {
        let mut d = Detail {
            peer_id: None,
            addr: None,
            reason: None,
            tracker: None,
            peers: None,
            error: None,
            dropped: None,
            from: None,
        };
        match self {
            Event::PeerJoined { peer, addr } => {
                d.peer_id = Some(peer.to_hex());
                d.addr = Some(addr.to_string());
            }
            Event::PeerLeft { peer, addr, reason } => {
                d.peer_id = Some(peer.to_hex());
                d.addr = Some(addr.to_string());
                d.reason = Some(reason);
            }
            Event::TrackerAnnounce { tracker, peers } => {
                d.tracker = Some(tracker);
                d.peers = Some(*peers);
            }
            Event::TrackerFailure { tracker, error } => {
                d.tracker = Some(tracker);
                d.error = Some(error);
            }
            Event::Overflow { dropped } => d.dropped = Some(*dropped),
            Event::SupernodePromoted => {}
            Event::SupernodeRevoked { reason } => d.reason = Some(reason),
            Event::RelayMigrated { peer, from, to } => {
                d.peer_id = Some(peer.to_hex());
                d.from = Some(from);
                d.addr = Some(to.clone());
            }
        }
        serde_json::to_string(&d).unwrap_or_else(|_| "{}".into())
    }
}
