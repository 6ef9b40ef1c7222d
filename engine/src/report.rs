//! The documents a running node reports: `Moss_GetMeshInfo`'s, and the
//! counters behind `/api/stats` and metrics.

use serde::Serialize;

/// `Moss_GetMeshInfo`'s JSON shape (plus engine facts).
#[derive(Debug, Clone, Serialize)]
pub struct MeshInfo {
    /// The mesh id.
    pub mesh_id: String,
    /// Bound UDP port.
    pub listen_port: u16,
    /// Established peers.
    pub peer_count: usize,
    /// Their addresses.
    pub peers: Vec<String>,
    /// How each of them was reached, in the same order: `direct`,
    /// `punched` (through a hole punch), or `relayed` (through a
    /// supernode, named in `relays`).
    pub paths: Vec<String>,
    /// The supernode (peer id, hex) each of them is relayed through, in
    /// the same order; `null` for a peer reached directly.
    pub relays: Vec<Option<String>>,
    /// Our topics.
    pub channels: Vec<String>,
    /// NAT class (`unknown` until the node's classifier concludes).
    pub nat_type: String,
    /// Our peer id, hex.
    pub public_key: String,
    /// Whether this node qualifies as a supernode.
    pub supernode_ready: bool,
    /// The I/O backend in use.
    pub backend: String,
}

/// Counters and state for `/api/stats` and metrics.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStats {
    /// The mesh id.
    pub mesh_id: String,
    /// Our peer id, hex.
    pub public_key: String,
    /// Bound address.
    pub listen_addr: String,
    /// The I/O backend in use.
    pub backend: String,
    /// Seconds since start.
    pub uptime_sec: u64,
    /// Established peers.
    pub peer_count: usize,
    /// Session slots including handshakes in flight.
    pub sessions: usize,
    /// Peers with their addresses and topics.
    pub peers: Vec<PeerStat>,
    /// Our topics.
    pub topics: Vec<String>,
    /// NAT class (`unknown` until the node's classifier concludes).
    pub nat_type: String,
    /// Node counters, including drops by reason.
    #[serde(flatten)]
    pub counters: moss_mesh::Stats,
    /// Datagrams the kernel refused (send queue full).
    pub send_dropped: u64,
    /// The UDP sends of `send_dropped` by the kernel's reason (`EAGAIN`,
    /// `ENOBUFS`, refused for the destination, other failures).
    pub send_drops: crate::backend::SendDrops,
    /// Publishes with no subscribed peer at send time.
    pub publish_unrouted: u64,
    /// Events the host did not drain in time.
    pub events_dropped: u64,
    /// Messages the host did not drain in time.
    pub messages_dropped: u64,
    /// Engine shards (threads with their own socket and sessions).
    pub shards: usize,
    /// Per-shard datagrams, sessions and hand-offs.
    pub shard_stats: Vec<crate::shard::ShardStat>,
    /// The port mapping on the gateway (`nat.pcp_enabled`, `natpmp_enabled`,
    /// `upnp_enabled`): protocol, external address, counters.
    pub port_mapping: crate::portmap::PortmapStatus,
    /// The birthday-spray sockets (a node behind a symmetric NAT opens them
    /// toward a port-filtering cone): rounds, sockets, wins, drops.
    pub spray: crate::spray::SprayStats,
}

/// One peer in [`NodeStats`].
#[derive(Debug, Clone, Serialize)]
pub struct PeerStat {
    /// Peer id, hex.
    pub peer_id: String,
    /// Address.
    pub addr: String,
    /// Its topics.
    pub topics: Vec<String>,
    /// True if we dialled it.
    pub outbound: bool,
    /// How the session came up: `punched` (a hole punch), `direct`, or
    /// `relayed` (through the supernode in `relay`).
    pub path: &'static str,
    /// For a relayed session, the supernode's peer id, hex.
    pub relay: Option<String>,
    /// For a punched session, the punch's time from offer to session, ms.
    pub punch_ms: Option<u64>,
    /// For a punched session, the punch offers it took (1: the first).
    pub punch_offers: u32,
}
