//! Node events as JavaScript sees them: one flat object per event.

use moss_mesh::{Event, Path};
use wasm_bindgen::prelude::*;

/// One event of the node: `kind` is `"message"`, `"join"` (a peer's
/// session is established), `"leave"` (the peer's last session ended) or
/// `"connect_failed"` (a dial on a channel gave no session); a browser
/// peer also passes on `"supernode"`, `"supernode_revoked"` and
/// `"relay_migrated"` (C ABI events 3, 4 and 7) should its node see them.
#[wasm_bindgen]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MossEvent {
    kind: &'static str,
    peer: String,
    channel: Option<u32>,
    topic: String,
    data: Vec<u8>,
    reason: String,
    hops: u8,
}

/// The channel id of a path, if the host owns it.
pub fn channel_of(p: &Path) -> Option<u32> {
    match p {
        Path::Channel(id) => u32::try_from(*id).ok(),
        _ => None,
    }
}

impl MossEvent {
    /// The JavaScript view of `e`.
    pub fn from_event(e: Event) -> Self {
        let blank = Self {
            kind: "",
            peer: String::new(),
            channel: None,
            topic: String::new(),
            data: Vec::new(),
            reason: String::new(),
            hops: 0,
        };
        match e {
            Event::Message(m) => Self {
                kind: "message",
                peer: m.from.to_hex(),
                topic: m.topic.to_string(),
                hops: m.hops,
                data: m.data.into_vec(),
                ..blank
            },
            Event::PeerConnected { peer, addr } => Self {
                kind: "join",
                peer: peer.to_hex(),
                channel: channel_of(&addr),
                ..blank
            },
            Event::PeerDisconnected { peer, addr, reason } => Self {
                kind: "leave",
                peer: peer.to_hex(),
                channel: channel_of(&addr),
                reason: reason.as_str().to_string(),
                ..blank
            },
            Event::ConnectFailed { addr, reason } => Self {
                kind: "connect_failed",
                channel: channel_of(&addr),
                reason,
                ..blank
            },
            Event::SupernodePromoted => Self {
                kind: "supernode",
                ..blank
            },
            Event::SupernodeRevoked { reason } => Self {
                kind: "supernode_revoked",
                reason,
                ..blank
            },
            Event::RelayMigrated { peer, to, .. } => Self {
                kind: "relay_migrated",
                peer: peer.to_hex(),
                channel: channel_of(&to),
                ..blank
            },
        }
    }
}

#[wasm_bindgen]
impl MossEvent {
    /// `"message"`, `"join"`, `"leave"`, `"connect_failed"`, `"supernode"`,
    /// `"supernode_revoked"` or `"relay_migrated"`.
    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        self.kind.to_string()
    }

    /// The peer (publisher of a message), public key in hex; empty for
    /// `connect_failed`.
    #[wasm_bindgen(getter)]
    pub fn peer(&self) -> String {
        self.peer.clone()
    }

    /// The DataChannel of a `join`, `leave` or `connect_failed`.
    #[wasm_bindgen(getter)]
    pub fn channel(&self) -> Option<u32> {
        self.channel
    }

    /// The topic of a message.
    #[wasm_bindgen(getter)]
    pub fn topic(&self) -> String {
        self.topic.clone()
    }

    /// The payload of a message (taken: a second call returns nothing).
    #[wasm_bindgen(js_name = takeData)]
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// Why a peer left (`timeout`, `closed`, `shutdown`) or a dial failed.
    #[wasm_bindgen(getter)]
    pub fn reason(&self) -> String {
        self.reason.clone()
    }

    /// Links the message travelled (1 = straight from the publisher).
    #[wasm_bindgen(getter)]
    pub fn hops(&self) -> u8 {
        self.hops
    }
}
