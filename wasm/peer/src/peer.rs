//! [`MossNode`]: one `moss_mesh::Node` and the host's counters, exported to
//! JavaScript. Every exported call reads the clock itself; the `*_at`
//! methods take the time, so tests drive virtual time.

use crate::clock::Monotonic;
use crate::error::{MossError, PeerError};
use crate::event::{channel_of, MossEvent};
use moss_mesh::{Config, Identity, Input, Node, Path};
use serde::Serialize;
use std::time::Duration;
use wasm_bindgen::prelude::*;

/// What the host counts beside the node's own [`moss_mesh::Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostStats {
    /// DataChannel messages that were not binary (dropped before the node).
    pub junk_dropped: u64,
    /// Transmits to a path the browser cannot carry (a UDP address or a
    /// relay), dropped.
    pub unroutable_dropped: u64,
    /// Channels the host reported closed.
    pub channels_closed: u64,
}

#[derive(Serialize)]
struct PeerView {
    peer: String,
    channel: Option<u32>,
    topics: Vec<String>,
    outbound: bool,
}

/// A Moss node in the page. Its paths are the page's DataChannels, each
/// named by a `u32` id the page picks.
#[wasm_bindgen]
pub struct MossNode {
    node: Node,
    clock: Monotonic,
    host: HostStats,
    last_channel: u32,
    seed: [u8; 32],
}

fn random32(what: &str) -> Result<[u8; 32], PeerError> {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).map_err(|e| PeerError::Random(format!("{what}: {e}")))?;
    Ok(b)
}

fn exact32(what: &'static str, b: &[u8]) -> Result<[u8; 32], PeerError> {
    b.try_into()
        .map_err(|_| PeerError::BadLength { what, got: b.len() })
}

impl MossNode {
    /// A node of mesh `mesh_id` at time `now`. `psk` and `identity_seed`
    /// are 32 bytes when given; `config_json` is the C ABI's config
    /// document (empty for the defaults).
    pub fn create_at(
        mesh_id: &str,
        psk: Option<&[u8]>,
        config_json: &str,
        identity_seed: Option<&[u8]>,
        now: Duration,
    ) -> Result<Self, PeerError> {
        if mesh_id.is_empty() {
            return Err(PeerError::Config("mesh id must not be empty".into()));
        }
        let cfg = Config::from_json(config_json)?;
        let psk = psk.map(|p| exact32("psk", p)).transpose()?;
        let seed = match identity_seed {
            Some(s) => exact32("identity seed", s)?,
            None => random32("identity")?,
        };
        let node = Node::new(
            cfg,
            Identity::from_seed(seed),
            mesh_id,
            psk.as_ref(),
            random32("node seed")?,
            now,
        )?;
        Ok(Self {
            node,
            clock: Monotonic::default(),
            host: HostStats::default(),
            last_channel: 0,
            seed,
        })
    }

    /// The wrapped node.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The host's counters.
    pub fn host_stats(&self) -> &HostStats {
        &self.host
    }

    /// [`MossNode::datagram`] at `now`.
    pub fn datagram_at(&mut self, now: Duration, channel: u32, bytes: &mut [u8]) {
        self.node.handle(
            now,
            Input::Datagram {
                from: Path::Channel(channel.into()),
                bytes,
            },
        );
    }

    /// [`MossNode::connect`] at `now`.
    pub fn connect_at(&mut self, now: Duration, channel: u32) {
        self.node.handle(now, Input::Timeout);
        self.node.connect_path(Path::Channel(channel.into()));
    }

    /// [`MossNode::timeout`] at `now`.
    pub fn timeout_at(&mut self, now: Duration) {
        self.node.handle(now, Input::Timeout);
    }

    /// [`MossNode::publish`] at `now`; returns the message id in hex.
    pub fn publish_at(
        &mut self,
        now: Duration,
        topic: &str,
        data: &[u8],
    ) -> Result<String, PeerError> {
        Ok(hex::encode(self.node.publish(now, topic, data)?))
    }

    /// [`MossNode::subscribe`] at `now`.
    pub fn subscribe_at(&mut self, now: Duration, topic: &str) -> Result<(), PeerError> {
        self.node.handle(now, Input::Timeout);
        match self.node.subscribe(topic) {
            true => Ok(()),
            false => Err(moss_mesh::PublishError::InvalidTopic.into()),
        }
    }

    /// Milliseconds from `now` to the node's next deadline.
    pub fn timeout_in(&self, now: Duration) -> f64 {
        self.node.poll_timeout().saturating_sub(now).as_secs_f64() * 1e3
    }

    /// The next datagram for a channel, with its channel id. Datagrams for
    /// paths the page cannot carry are dropped and counted.
    pub fn next_transmit(&mut self) -> Option<(u32, Vec<u8>)> {
        while let Some(t) = self.node.poll_transmit() {
            match channel_of(&t.to) {
                Some(c) => return Some((c, t.bytes)),
                None => {
                    self.host.unroutable_dropped += 1;
                    self.node.recycle(t.bytes);
                }
            }
        }
        None
    }
}

#[wasm_bindgen]
impl MossNode {
    /// A node of mesh `mesh_id`. `psk`: 32 bytes or nothing; `config_json`:
    /// the C ABI's config document (empty or absent for the defaults);
    /// `identity_seed`: the 32-byte Ed25519 seed of a kept identity, or
    /// nothing for a fresh one. Throws a [`MossError`].
    #[wasm_bindgen(constructor)]
    pub fn new(
        mesh_id: &str,
        psk: Option<Vec<u8>>,
        config_json: Option<String>,
        identity_seed: Option<Vec<u8>>,
    ) -> Result<MossNode, MossError> {
        let now = Monotonic::default().now();
        let mut n = Self::create_at(
            mesh_id,
            psk.as_deref(),
            config_json.as_deref().unwrap_or(""),
            identity_seed.as_deref(),
            now,
        )?;
        n.clock.at(now.as_secs_f64() * 1e3);
        Ok(n)
    }

    /// This node's peer id: its public key in hex.
    #[wasm_bindgen(js_name = peerId)]
    pub fn peer_id(&self) -> String {
        self.node.public_key().to_hex()
    }

    /// The 32-byte identity seed, for a page that keeps its identity.
    #[wasm_bindgen(js_name = identitySeed)]
    pub fn identity_seed(&self) -> Vec<u8> {
        self.seed.to_vec()
    }

    /// The signaling room: the mesh's infohash in hex (derived from the
    /// mesh id and the PSK, so a signal server learns neither).
    pub fn room(&self) -> String {
        hex::encode(self.node.mesh_keys().infohash)
    }

    /// A datagram arrived on DataChannel `channel`. Junk is dropped and
    /// counted by the node; nothing throws.
    pub fn datagram(&mut self, channel: u32, mut bytes: Vec<u8>) {
        let now = self.clock.now();
        self.datagram_at(now, channel, &mut bytes);
    }

    /// A DataChannel message that was not binary: dropped and counted.
    #[wasm_bindgen(js_name = junk)]
    pub fn junk(&mut self) {
        self.host.junk_dropped += 1;
    }

    /// DataChannel `channel` opened on our side of an offer: dial the peer
    /// through it (the answering side waits for the handshake).
    pub fn connect(&mut self, channel: u32) {
        let now = self.clock.now();
        self.connect_at(now, channel);
    }

    /// DataChannel `channel` closed: its session ends now.
    #[wasm_bindgen(js_name = channelClosed)]
    pub fn channel_closed(&mut self, channel: u32) {
        self.host.channels_closed += 1;
        self.node.close_path(Path::Channel(channel.into()));
    }

    /// Runs what is due (call when [`MossNode::next_timeout_ms`] elapsed).
    pub fn timeout(&mut self) {
        let now = self.clock.now();
        self.timeout_at(now);
    }

    /// Milliseconds until [`MossNode::timeout`] is due (0 when overdue).
    #[wasm_bindgen(js_name = nextTimeoutMs)]
    pub fn next_timeout_ms(&mut self) -> f64 {
        let now = self.clock.now();
        self.timeout_in(now)
    }

    /// The next datagram to send, or nothing; its DataChannel is
    /// [`MossNode::transmit_channel`].
    #[wasm_bindgen(js_name = pollTransmit)]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let (c, b) = self.next_transmit()?;
        self.last_channel = c;
        Some(b)
    }

    /// The DataChannel of the datagram [`MossNode::poll_transmit`] returned last.
    #[wasm_bindgen(js_name = transmitChannel)]
    pub fn transmit_channel(&self) -> u32 {
        self.last_channel
    }

    /// The next event, or nothing.
    #[wasm_bindgen(js_name = pollEvent)]
    pub fn poll_event(&mut self) -> Option<MossEvent> {
        self.node.poll_event().map(MossEvent::from_event)
    }

    /// Subscribes to `topic` (again is a no-op). Throws on an invalid
    /// topic (code -4).
    pub fn subscribe(&mut self, topic: &str) -> Result<(), MossError> {
        let now = self.clock.now();
        Ok(self.subscribe_at(now, topic)?)
    }

    /// Unsubscribes from `topic`; false if not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        self.node.unsubscribe(topic)
    }

    /// Publishes `data` on `topic`; returns the message id in hex. Throws
    /// a [`MossError`] (-4 bad topic, -5 too large, -6 no peers).
    pub fn publish(&mut self, topic: &str, data: &[u8]) -> Result<String, MossError> {
        let now = self.clock.now();
        Ok(self.publish_at(now, topic, data)?)
    }

    /// Established peers as JSON: `[{peer, channel, topics, outbound}]`.
    #[wasm_bindgen(js_name = peersJson)]
    pub fn peers_json(&self) -> String {
        let v: Vec<PeerView> = self
            .node
            .peers()
            .into_iter()
            .map(|p| PeerView {
                peer: p.peer.to_hex(),
                channel: channel_of(&p.addr),
                topics: p.topics,
                outbound: p.outbound,
            })
            .collect();
        serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
    }

    /// Counters as JSON: the node's stats (as the C ABI reports them) plus
    /// `host` (junk, unroutable, closed channels).
    #[wasm_bindgen(js_name = statsJson)]
    pub fn stats_json(&self) -> String {
        #[derive(Serialize)]
        struct All<'a> {
            #[serde(flatten)]
            node: &'a moss_mesh::Stats,
            host: &'a HostStats,
            peers: usize,
            sessions: usize,
        }
        serde_json::to_string(&All {
            node: self.node.stats(),
            host: &self.host,
            peers: self.node.peer_count(),
            sessions: self.node.session_count(),
        })
        .unwrap_or_else(|_| "{}".into())
    }

    /// Closes every session (peers learn at once: the close frames are in
    /// [`MossNode::poll_transmit`]).
    pub fn shutdown(&mut self) {
        self.node.shutdown();
    }
}
