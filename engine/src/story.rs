//! Logs that tell a node's story at `info`: peers joining and leaving,
//! discovery results as counts and first errors, the NAT class once known,
//! shutdown. Hosts feed it the node's public events and, now and then, its
//! discovery stats; nothing here is per packet.
//!
//! A host that does not read [`Node::events`] itself lets [`Story::step`]
//! read them, on a thread of its own:
//!
//! ```
//! use std::time::Duration;
//! let node = moss::Node::builder("local")
//!     .config_json(r#"{"trackers": [], "dht_enabled": false, "lan_discovery_enabled": false}"#)?
//!     .start()?;
//! let mut story = moss::Story::new(node.mesh_id());
//! // One bounded round: events that arrived, then discovery stats and NAT.
//! assert!(story.step(&node, Duration::from_millis(10)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::discovery::DiscoveryLog;
use crate::event::Event;
use crate::node::Node;
use moss_discovery::DiscoveryStats;
use moss_mesh::PeerId;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How often [`Story::step`] reads the discovery stats and NAT class.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Hex digits of a peer id shown in logs.
const SHORT_ID: usize = 8;

/// The first hex digits of a peer id: enough to tell peers apart in a log.
pub fn short_id(peer: &PeerId) -> String {
    let mut s = peer.to_hex();
    s.truncate(SHORT_ID);
    s
}

/// The network a peer address is on, as logs name it: `loopback`, `lan`
/// (private, link-local or unique-local ranges) or `internet`.
pub fn path_of(addr: &SocketAddr) -> &'static str {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => "loopback",
        IpAddr::V4(ip) if ip.is_private() || ip.is_link_local() => "lan",
        IpAddr::V6(ip) if ip.is_loopback() => "loopback",
        IpAddr::V6(ip) if (ip.segments()[0] & 0xfe00) == 0xfc00 => "lan",
        IpAddr::V6(ip) if (ip.segments()[0] & 0xffc0) == 0xfe80 => "lan",
        _ => "internet",
    }
}

/// Turns a node's events and discovery stats into `info` log lines; one
/// per node. See the module docs for how a host drives it.
pub struct Story {
    mesh: String,
    joined: HashMap<PeerId, Instant>,
    discovery: DiscoveryLog,
    nat: Option<String>,
    polled: Option<Instant>,
}

impl Story {
    /// A story for the node of `mesh`.
    pub fn new(mesh: &str) -> Self {
        Self {
            mesh: mesh.to_string(),
            joined: HashMap::new(),
            discovery: DiscoveryLog::default(),
            nat: None,
            polled: None,
        }
    }

    /// One bounded round of following `node`: logs the events that arrive
    /// within `wait`, then (every two seconds) what is new in its discovery
    /// stats and NAT class. Returns false once the node has stopped.
    ///
    /// It reads [`Node::events`], so a host that consumes those events
    /// itself calls [`Story::event`] instead.
    pub fn step(&mut self, node: &Node, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            match node.events().recv_deadline(deadline) {
                Ok(e) => self.event(&e),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => break,
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return false,
            }
        }
        if node.is_stopped() {
            return false;
        }
        if self.polled.is_none_or(|t| t.elapsed() >= POLL_EVERY) {
            self.polled = Some(Instant::now());
            if let Some(s) = node.discovery_stats() {
                self.discovery(&s);
            }
            if let Ok(info) = node.mesh_info() {
                self.nat(&info.nat_type);
            }
        }
        true
    }

    /// Logs one host event.
    pub fn event(&mut self, e: &Event) {
        let mesh = self.mesh.as_str();
        match e {
            Event::PeerJoined { peer, addr } => {
                self.joined.insert(*peer, Instant::now());
                tracing::info!(
                    mesh,
                    peer = %short_id(peer),
                    %addr,
                    path = path_of(addr),
                    peers = self.joined.len(),
                    "peer joined"
                );
            }
            Event::PeerLeft { peer, addr, reason } => {
                let secs = self
                    .joined
                    .remove(peer)
                    .map_or(0, |t| t.elapsed().as_secs());
                tracing::info!(
                    mesh,
                    peer = %short_id(peer),
                    %addr,
                    path = path_of(addr),
                    reason,
                    connected_sec = secs,
                    peers = self.joined.len(),
                    "peer left"
                );
            }
            Event::TrackerAnnounce { tracker, peers } => {
                self.discovery.tracker(mesh, tracker, Ok(*peers))
            }
            Event::TrackerFailure { tracker, error } => {
                self.discovery.tracker(mesh, tracker, Err(error))
            }
            Event::Overflow { dropped } => tracing::warn!(
                mesh,
                dropped,
                "host events dropped: the host did not drain them in time"
            ),
            Event::SupernodePromoted => tracing::info!(mesh, "promoted to supernode"),
            Event::SupernodeRevoked { reason } => {
                tracing::info!(mesh, reason, "supernode status revoked")
            }
            Event::RelayMigrated { peer, from, to } => tracing::info!(
                mesh,
                peer = %short_id(peer),
                from,
                to,
                "relayed peer migrated to a direct path"
            ),
        }
    }

    /// Logs what changed in the discovery stats since the last call (first
    /// results, first errors, new counts).
    pub fn discovery(&mut self, stats: &DiscoveryStats) {
        self.discovery.stats(&self.mesh, stats);
    }

    /// Logs the NAT class the first time it is known, and when it changes
    /// (`unknown` is not logged).
    pub fn nat(&mut self, nat_type: &str) {
        if nat_type == "unknown" || self.nat.as_deref() == Some(nat_type) {
            return;
        }
        self.nat = Some(nat_type.to_string());
        tracing::info!(mesh = %self.mesh, nat = nat_type, "NAT class");
    }

    /// Logs the shutdown of the node, with the peers still connected.
    pub fn shutdown(&self) {
        tracing::info!(
            mesh = %self.mesh,
            peers = self.joined.len(),
            "node shutting down"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_network() {
        let p = |s: &str| path_of(&s.parse().unwrap());
        assert_eq!(p("127.0.0.1:1"), "loopback");
        assert_eq!(p("192.168.1.2:1"), "lan");
        assert_eq!(p("10.0.0.1:1"), "lan");
        assert_eq!(p("8.8.8.8:1"), "internet");
        assert_eq!(p("[::1]:1"), "loopback");
        assert_eq!(p("[fd00::1]:1"), "lan");
        assert_eq!(p("[fe80::1]:1"), "lan");
        assert_eq!(p("[2001:db8::1]:1"), "internet");
    }

    #[test]
    fn short_ids_are_a_prefix() {
        let id = moss_mesh::Identity::from_seed([7; 32]).public_key();
        assert_eq!(short_id(&id).len(), SHORT_ID);
        assert!(id.to_hex().starts_with(&short_id(&id)));
    }
}
