//! Serializable counters and health reported by [`crate::Discovery::stats`].

use serde::Serialize;

use crate::tracker_url::TrackerKind;

/// A snapshot of the runner's health and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiscoveryStats {
    /// The listen port currently announced.
    pub listen_port: u16,
    /// One entry per configured tracker URL, in configuration order.
    pub trackers: Vec<TrackerStats>,
    /// Mainline DHT state (`None` when the DHT is disabled).
    pub dht: Option<DhtStats>,
    /// LAN beacon counters (`None` when LAN discovery is disabled).
    pub lan: Option<LanStats>,
    /// Candidates delivered to the channel.
    pub candidates_emitted: u64,
    /// Candidates and datagrams dropped, by reason.
    pub drops: DropCounters,
}

/// Health of one tracker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrackerStats {
    /// The URL as configured.
    pub url: String,
    /// UDP or HTTP; `None` when the URL is unsupported or malformed.
    pub kind: Option<TrackerKind>,
    /// False for `https://`, unknown schemes and malformed URLs (never contacted).
    pub supported: bool,
    /// Successful announces.
    pub announces_ok: u64,
    /// Failed announce cycles (resolution, connection, timeout, tracker error, bad response).
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// Peers returned over all announces (before deduplication).
    pub peers_returned: u64,
    /// Wall-clock time of the last success, in milliseconds since the Unix epoch.
    pub last_ok_unix_ms: Option<u64>,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Interval used after the last success, in seconds.
    pub interval_sec: Option<u64>,
}

/// Lifecycle of the DHT node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DhtState {
    /// The node is being created.
    #[default]
    Starting,
    /// The node runs; announces and lookups are periodic.
    Running,
    /// The node could not be created (see `last_error`).
    Failed,
    /// The runner stopped.
    Stopped,
}

/// Mainline DHT counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DhtStats {
    /// Lifecycle state.
    pub state: DhtState,
    /// Local UDP port of the DHT socket once bound.
    pub local_port: Option<u16>,
    /// `announce_peer` queries that stored our address on at least one node.
    pub announces_ok: u64,
    /// `announce_peer` queries that failed.
    pub announce_failures: u64,
    /// `get_peers` lookups run.
    pub lookups: u64,
    /// Peer addresses returned by lookups (before deduplication).
    pub peers_found: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

/// LAN beacon counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LanStats {
    /// Beacons sent (one per interface per interval).
    pub beacons_sent: u64,
    /// Beacon sends that failed.
    pub send_errors: u64,
    /// Datagrams received on the beacon socket.
    pub beacons_received: u64,
    /// Authenticated beacons of other runners of our mesh.
    pub beacons_accepted: u64,
    /// Our own beacons looped back (ignored).
    pub own_beacons: u64,
    /// Wrong length, magic or reserved flags.
    pub rejected_malformed: u64,
    /// Unsupported version.
    pub rejected_version: u64,
    /// Mesh tag of another mesh.
    pub rejected_foreign_mesh: u64,
    /// Our mesh tag but a bad MAC: forged or corrupted.
    pub rejected_bad_mac: u64,
    /// Authenticated beacon announcing port 0.
    pub rejected_zero_port: u64,
    /// Socket errors while receiving.
    pub receive_errors: u64,
    /// Setup or socket error that stopped LAN discovery, if any.
    pub last_error: Option<String>,
}

/// Drop counters by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DropCounters {
    /// Candidate already delivered within the deduplication window.
    pub duplicate: u64,
    /// Candidate equal to our own loopback/unspecified address and listen port.
    pub self_address: u64,
    /// Candidate with port 0 or an unspecified, multicast or broadcast IP.
    pub invalid_address: u64,
    /// Candidate dropped because the bounded channel was full.
    pub channel_full: u64,
    /// Candidate dropped because the receiver was dropped.
    pub receiver_gone: u64,
    /// Event dropped because the bounded event channel was full.
    pub events_full: u64,
    /// Peers beyond the per-response cap in tracker responses.
    pub oversized_peer_lists: u64,
    /// Tracker datagrams or HTTP bodies that failed to decode.
    pub malformed_tracker_responses: u64,
    /// Well-formed UDP tracker responses not matching an outstanding request
    /// (transaction id, action, or unsolicited).
    pub unexpected_tracker_responses: u64,
    /// Configured tracker URLs that are unsupported (`https://`, other schemes) or malformed.
    pub unsupported_trackers: u64,
}
