//! Node configuration: the JSON document hosts pass to `Moss_Init` (and the
//! service binaries build from flags), with the defaults of the original.
//!
//! Every block is optional and every field inside a block falls back to its
//! default on its own, so `{"gossipsub": {"D": 8}}` keeps the other degrees.
//! As in the original, a numeric `0` means "use the default". Type errors,
//! unknown enum values and inconsistent values name the offending field.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A configuration value that is present but wrong, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The document is not JSON, or a field has the wrong type.
    #[error("config field `{field}`: {reason}")]
    Parse {
        /// Dotted path of the field (`.` for the document itself).
        field: String,
        /// What serde reported.
        reason: String,
    },
    /// A field parsed but its value is not allowed.
    #[error("config field `{field}`: {reason}")]
    Invalid {
        /// Dotted path of the field.
        field: &'static str,
        /// Why the value is rejected.
        reason: String,
    },
    /// A field under a key the document chose (a per-topic score
    /// parameter) parsed but its value is not allowed.
    #[error("config field `{field}`: {reason}")]
    InvalidAt {
        /// Dotted path of the field.
        field: String,
        /// Why the value is rejected.
        reason: String,
    },
}

impl ConfigError {
    /// The dotted path of the offending field.
    pub fn field(&self) -> &str {
        match self {
            Self::Parse { field, .. } => field,
            Self::Invalid { field, .. } => field,
            Self::InvalidAt { field, .. } => field,
        }
    }
}

/// The whole node configuration.
///
/// Which fields take effect: every top-level field and the blocks
/// `gossipsub`, `security`, `engine`, `nat` and `telemetry` are read by the node or
/// the engine, with these exceptions, which are accepted (hosts of the
/// original send them), validated for type, zero-defaulted, and otherwise
/// **not read by anything yet**:
///
/// - `bootstrap_timeout_sec`;
/// - the `transport` block's buffering presets (`high_throughput`,
///   `stream_buffer_size`, `udp_buffer_size`; the engine reads its
///   `tcp_enabled` and `prefer_tcp`).
///
/// `trackers` omitted means the built-in list of `moss_discovery`, and
/// `engine.backend` is parsed by the engine, not here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Tracker announce URLs; `None` (omitted) = the built-in set
    /// (`moss_discovery::default_trackers`, chosen by the engine), empty = off.
    pub trackers: Option<Vec<String>>,
    /// Seconds between tracker announces.
    pub announce_interval_sec: u32,
    /// UDP port to bind (0 = any).
    pub listen_port: u16,
    /// Most established sessions at once.
    pub max_peers: u32,
    /// `host:port` peers dialled at start and re-dialled when lost.
    pub static_peers: Vec<String>,
    /// Seconds to wait for the first peers before reporting bootstrap state
    /// (accepted, not read yet).
    pub bootstrap_timeout_sec: u32,
    /// LAN multicast beacons on/off.
    pub lan_discovery_enabled: bool,
    /// UDP port of LAN beacons.
    pub lan_discovery_port: u16,
    /// Milliseconds between LAN beacons.
    pub lan_discovery_ms: u32,
    /// Mainline DHT on/off.
    pub dht_enabled: bool,
    /// UDP port of the DHT socket (0 = any).
    pub dht_port: u16,
    /// DHT bootstrap nodes `host:port` (empty = the public Mainline
    /// routers; a Moss-in-Rust addition so tests can use a local DHT).
    pub dht_bootstrap: Vec<String>,
    /// IPv4 addresses of the interfaces LAN beacons use (empty = the system
    /// default; a Moss-in-Rust addition, e.g. `["127.0.0.1"]` to keep
    /// beacons on this host).
    pub lan_interfaces: Vec<String>,
    /// Most random padding bytes added to handshake datagrams.
    pub obfs_pad_max: u16,
    /// Pub/sub router parameters.
    pub gossipsub: GossipSubConfig,
    /// NAT traversal and relay parameters (the supernode and relay fields
    /// are read by [`crate::relay`]).
    pub nat: NatConfig,
    /// Limits that protect the node.
    pub security: SecurityConfig,
    /// The TCP carrier switches and buffering presets (the presets are
    /// accepted, not read yet).
    pub transport: TransportConfig,
    /// Packet engine choices (a Moss-in-Rust addition).
    pub engine: EngineConfig,
    /// Privacy-preserving telemetry (off by default).
    pub telemetry: moss_telemetry::TelemetryConfig,
    /// WebRTC DataChannel peers (off by default; read by the engine).
    pub webrtc: WebrtcConfig,
}

/// GossipSub degrees, heartbeat and score parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GossipSubConfig {
    /// Target mesh degree.
    #[serde(rename = "D")]
    pub d: u32,
    /// Lowest mesh degree before grafting.
    #[serde(rename = "D_lo")]
    pub d_lo: u32,
    /// Highest mesh degree before pruning.
    #[serde(rename = "D_high")]
    pub d_high: u32,
    /// Outbound peers kept in each mesh.
    #[serde(rename = "D_out")]
    pub d_out: u32,
    /// Peers receiving lazy gossip per heartbeat.
    #[serde(rename = "D_lazy")]
    pub d_lazy: u32,
    /// Heartbeat period in milliseconds.
    pub heartbeat_ms: u32,
    /// Own messages go to every eligible topic peer (a Moss-in-Rust field;
    /// off = mesh or fanout peers only).
    pub flood_publish: bool,
    /// Send and honour IDONTWANT for messages over 1 KiB (a Moss-in-Rust
    /// field; off only for measurements).
    pub idontwant: bool,
    /// Cap of a peer's weighted sum of topic scores (P1–P4 and P3b over
    /// all topics); 0 = no cap.
    pub topic_score_cap: f64,
    /// Score parameters of every topic without its own entry in `topics`
    /// (fields left out keep the reference values).
    pub topic_defaults: TopicScoreConfig,
    /// Score parameters per topic name (fields left out keep the values
    /// of `topic_defaults`).
    pub topics: BTreeMap<String, TopicScoreConfig>,
}

/// The JSON type of a score parameter kind: `f64` as is, durations as
/// whole milliseconds.
macro_rules! json_type {
    (f64) => {
        f64
    };
    (Duration) => {
        u64
    };
}

/// The router value of a JSON score parameter of the given kind.
macro_rules! from_json {
    (f64, $v:expr) => {
        $v
    };
    (Duration, $v:expr) => {
        Duration::from_millis($v)
    };
}

/// Generates [`TopicScoreConfig`], its `apply` and the router-to-JSON name
/// table from the one field list of `moss_gossip::topic_param_fields!`.
macro_rules! topic_score_config {
    ($($(#[$doc:meta])* $field:ident / $json:ident: $kind:ident = $default:expr,)*) => {
        /// Score parameters of one topic, each optional (GossipSub v1.1
        /// P1–P4 and the P3b mesh failure penalty; weights of penalties are
        /// ≤ 0, decays in (0, 1); durations in milliseconds, keys ending in
        /// `_ms`). Unknown fields are errors.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct TopicScoreConfig {
            $(
                $(#[$doc])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $json: Option<json_type!($kind)>,
            )*
        }

        impl TopicScoreConfig {
            /// `base` with the fields given here replaced.
            pub fn apply(&self, base: &moss_gossip::TopicParams) -> moss_gossip::TopicParams {
                moss_gossip::TopicParams {
                    $($field: self.$json.map_or(base.$field, |v| from_json!($kind, v)),)*
                }
            }
        }

        /// The JSON key of a `moss_gossip::TopicParams` field, if it is one.
        fn topic_param_json_name(router_field: &str) -> Option<&'static str> {
            match router_field {
                $(stringify!($field) => Some(stringify!($json)),)*
                _ => None,
            }
        }
    };
}

moss_gossip::topic_param_fields!(topic_score_config);

impl GossipSubConfig {
    /// The score parameters these values give (peer-wide parameters keep
    /// the reference defaults).
    pub fn score_params(&self) -> moss_gossip::ScoreParams {
        let mut p = moss_gossip::ScoreParams::default();
        p.topic_defaults = self.topic_defaults.apply(&p.topic_defaults);
        p.topic_score_cap = self.topic_score_cap;
        for (topic, t) in &self.topics {
            p.topics.insert(topic.clone(), t.apply(&p.topic_defaults));
        }
        p
    }

    /// The dotted path of the JSON field behind a router error.
    fn error_field(e: &moss_gossip::ConfigError) -> String {
        match e {
            moss_gossip::ConfigError::Score("topic_score_cap") => {
                "gossipsub.topic_score_cap".into()
            }
            moss_gossip::ConfigError::Score(f) => match topic_param_json_name(f) {
                Some(json) => format!("gossipsub.topic_defaults.{json}"),
                None => "gossipsub".into(),
            },
            moss_gossip::ConfigError::TopicScore { topic, field } => {
                format!(
                    "gossipsub.topics.{topic}.{}",
                    topic_param_json_name(field).unwrap_or(field)
                )
            }
            _ => "gossipsub".into(),
        }
    }

    /// The router configuration these values give (other router
    /// parameters keep the reference defaults).
    pub fn router_config(&self) -> Result<moss_gossip::Config, moss_gossip::ConfigError> {
        moss_gossip::Config::builder()
            .score(self.score_params())
            .d(self.d as usize)
            .d_lo(self.d_lo as usize)
            .d_high(self.d_high as usize)
            .d_out(self.d_out as usize)
            .d_score((self.d_lo as usize).min(self.d as usize))
            .d_lazy(self.d_lazy as usize)
            .heartbeat(std::time::Duration::from_millis(u64::from(
                self.heartbeat_ms,
            )))
            .flood_publish(self.flood_publish)
            .idontwant(self.idontwant)
            .build()
    }
}

/// NAT traversal and relay parameters, all read: `upnp_enabled`,
/// `natpmp_enabled` and `pcp_enabled` (the engine maps the node's port on
/// the gateway; NAT-PMP's external address also spots CGNAT),
/// `hole_punch_attempts` (rounds per punch, 1 to
/// [`crate::nat::MAX_PUNCH_ATTEMPTS`]), `port_prediction_enabled` (punches
/// toward symmetric NATs), `supernode_min_uptime_sec` and the `relay_*`
/// fields ([`crate::relay`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatConfig {
    /// Try UPnP IGD port mapping.
    pub upnp_enabled: bool,
    /// Try NAT-PMP port mapping.
    pub natpmp_enabled: bool,
    /// Try PCP port mapping.
    pub pcp_enabled: bool,
    /// Uptime before a reachable node may become a supernode.
    pub supernode_min_uptime_sec: u32,
    /// Relay bandwidth cap per supernode.
    pub relay_max_bandwidth_kbps: u32,
    /// Most relay sessions a supernode serves.
    pub relay_max_sessions: u32,
    /// Relay session lifetime.
    pub relay_session_ttl_sec: u32,
    /// Simultaneous-open attempts per hole punch.
    pub hole_punch_attempts: u32,
    /// Predict ports of sequential symmetric NATs.
    pub port_prediction_enabled: bool,
}

/// Limits that protect the node from its peers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// Seconds a handshake may take before it is abandoned.
    pub handshake_timeout_sec: u32,
    /// Largest pub/sub payload accepted or published.
    pub max_message_size_bytes: u32,
    /// Burst, in bytes, of the token bucket a relay keeps per relayed
    /// peer. Gossip inbound is not limited by it (scoring defends gossip).
    pub rate_limit_burst: u32,
    /// Refill, in bytes per second, of the relay token bucket per relayed
    /// peer. Gossip inbound is not limited by it.
    pub rate_limit_sustained: u32,
}

/// Transport choices: the TCP carrier (read by the engine), and the
/// original's buffering presets (accepted and validated for type, but
/// nothing reads them: the engine sizes its own queues).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransportConfig {
    /// Larger per-peer queues for bulk traffic.
    pub high_throughput: bool,
    /// Inbound queue length per stream (0 = preset).
    pub stream_buffer_size: u32,
    /// Inbound queue length per UDP session (0 = preset).
    pub udp_buffer_size: u32,
    /// The TCP carrier (default on): listen on TCP at the UDP port number,
    /// and dial a peer over TCP when its UDP handshake times out.
    pub tcp_enabled: bool,
    /// Dial static peers over TCP instead of UDP (needs `tcp_enabled`).
    pub prefer_tcp: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            high_throughput: false,
            stream_buffer_size: 0,
            udp_buffer_size: 0,
            tcp_enabled: true,
            prefer_tcp: false,
        }
    }
}

/// WebRTC DataChannel peers (a Moss-in-Rust addition): with `enabled`,
/// the engine joins the room of this mesh (its infohash) on every
/// `signal` server, answers browser peers' offers (and offers to peers
/// whose id is larger than its own), and carries each unordered,
/// unreliable DataChannel as one more path of the node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebrtcConfig {
    /// Accept (and make) WebRTC DataChannel links.
    pub enabled: bool,
    /// `ws://host:port` or `wss://host:port` URLs of `moss-signal` servers
    /// (optionally with a path), joined in parallel.
    pub signal: Vec<String>,
    /// A PEM file of extra CA certificates trusted for `wss://` signal
    /// servers, beside the system's (empty = the system's only).
    pub signal_ca: String,
    /// `host:port` STUN servers asked for each ICE socket's
    /// server-reflexive address (offered as a `srflx` candidate).
    pub stun: Vec<String>,
    /// UDP port of the ICE sockets (0 = any).
    pub ice_port: u16,
    /// IPv4 or IPv6 addresses whose ICE host candidates are offered (empty
    /// = every interface address that is up, loopback included, IPv6
    /// link-local excluded).
    pub ice_ips: Vec<String>,
}

/// Whether `s` is `host:port` with a non-empty host and a port in 1..=65535
/// (`[v6]:port` for an IPv6 literal).
fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = match host.strip_prefix('[') {
        Some(h) => h
            .strip_suffix(']')
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok()),
        None => !host.is_empty() && !host.contains(':'),
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p != 0)
}

impl WebrtcConfig {
    /// Checks the block; the error names the bad field.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.signal.is_empty() {
            return Err(ConfigError::Invalid {
                field: "webrtc.signal",
                reason: "webrtc.enabled needs at least one signal server URL".into(),
            });
        }
        for u in &self.signal {
            if !u.starts_with("ws://") && !u.starts_with("wss://") {
                return Err(ConfigError::Invalid {
                    field: "webrtc.signal",
                    reason: format!("`{u}` is not a ws:// or wss:// URL"),
                });
            }
        }
        for (i, s) in self.stun.iter().enumerate() {
            if !is_host_port(s) {
                return Err(ConfigError::Invalid {
                    field: "webrtc.stun",
                    reason: format!("entry {i} `{s}` is not host:port"),
                });
            }
        }
        for (i, a) in self.ice_ips.iter().enumerate() {
            if a.parse::<std::net::IpAddr>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "webrtc.ice_ips",
                    reason: format!("entry {i} `{a}` is not an IP address"),
                });
            }
        }
        Ok(())
    }
}

/// Packet engine choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// `auto`, `uring`, `mmsg` or `portable`. This sans-IO crate knows no
    /// backends: the engine parses the name (`moss::backend::BackendKind::from_config`)
    /// and its error names this field.
    pub backend: String,
    /// Number of shards (0 = one per core).
    pub shards: u32,
    /// Longest an engine thread busy-polls its inputs after work before it
    /// parks, in microseconds (0 = park at once). Idle threads never spin.
    pub busy_poll_us: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            trackers: None,
            announce_interval_sec: 120,
            listen_port: 0,
            max_peers: 200,
            static_peers: Vec::new(),
            bootstrap_timeout_sec: 3,
            lan_discovery_enabled: true,
            lan_discovery_port: 44445,
            lan_discovery_ms: 1500,
            dht_enabled: true,
            dht_port: 0,
            dht_bootstrap: Vec::new(),
            lan_interfaces: Vec::new(),
            obfs_pad_max: 256,
            gossipsub: GossipSubConfig::default(),
            nat: NatConfig::default(),
            security: SecurityConfig::default(),
            transport: TransportConfig::default(),
            engine: EngineConfig::default(),
            telemetry: moss_telemetry::TelemetryConfig::default(),
            webrtc: WebrtcConfig::default(),
        }
    }
}

impl Default for GossipSubConfig {
    /// The router's own defaults (`moss_gossip::Config::default()`).
    fn default() -> Self {
        let r = moss_gossip::Config::default();
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Self {
            d: n(r.d),
            d_lo: n(r.d_lo),
            d_high: n(r.d_high),
            d_out: n(r.d_out),
            d_lazy: n(r.d_lazy),
            heartbeat_ms: u32::try_from(r.heartbeat.as_millis()).unwrap_or(u32::MAX),
            flood_publish: r.flood_publish,
            idontwant: r.idontwant,
            topic_score_cap: r.score.topic_score_cap,
            topic_defaults: TopicScoreConfig::default(),
            topics: BTreeMap::new(),
        }
    }
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            upnp_enabled: false,
            natpmp_enabled: false,
            pcp_enabled: false,
            supernode_min_uptime_sec: 300,
            relay_max_bandwidth_kbps: 256,
            relay_max_sessions: 50,
            relay_session_ttl_sec: 1800,
            hole_punch_attempts: 3,
            port_prediction_enabled: true,
        }
    }
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            handshake_timeout_sec: 5,
            max_message_size_bytes: 65536,
            rate_limit_burst: 256_000,
            rate_limit_sustained: 64_000,
        }
    }
}

/// Default of [`EngineConfig::busy_poll_us`]: off. On the 2-core shared
/// machine of BENCHMARKS.md, polling threads took the CPU from the threads
/// they waited for (flood delivery fell to 0.08–0.46 of calm at 50 µs, and
/// echo throughput did not improve); hosts with idle cores can raise it.
pub const DEFAULT_BUSY_POLL_US: u32 = 0;
/// Largest accepted [`EngineConfig::busy_poll_us`] (10 ms): polling is for
/// wake-up latency, not a substitute for parking.
pub const MAX_BUSY_POLL_US: u32 = 10_000;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            backend: "auto".into(),
            shards: 0,
            busy_poll_us: DEFAULT_BUSY_POLL_US,
        }
    }
}

/// Largest `max_message_size_bytes` a node accepts (fragment count bound).
pub const MAX_MESSAGE_SIZE_LIMIT: u32 = 1 << 20;

/// Replaces a zero with the default, as the original does.
fn zero_default(v: &mut u32, d: u32) {
    if *v == 0 {
        *v = d;
    }
}

impl Config {
    /// Parses a JSON document; empty or whitespace-only text is the default.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Parse {
                field: path,
                reason: e.into_inner().to_string(),
            }
        })?;
        cfg.apply_zero_defaults();
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply_zero_defaults(&mut self) {
        let d = Config::default();
        zero_default(&mut self.announce_interval_sec, d.announce_interval_sec);
        zero_default(&mut self.max_peers, d.max_peers);
        zero_default(&mut self.bootstrap_timeout_sec, d.bootstrap_timeout_sec);
        zero_default(&mut self.lan_discovery_ms, d.lan_discovery_ms);
        if self.lan_discovery_port == 0 {
            self.lan_discovery_port = d.lan_discovery_port;
        }
        let g = &mut self.gossipsub;
        let dg = d.gossipsub;
        zero_default(&mut g.d, dg.d);
        zero_default(&mut g.d_lo, dg.d_lo);
        zero_default(&mut g.d_high, dg.d_high);
        zero_default(&mut g.d_out, dg.d_out);
        zero_default(&mut g.d_lazy, dg.d_lazy);
        zero_default(&mut g.heartbeat_ms, dg.heartbeat_ms);
        let n = &mut self.nat;
        let dn = d.nat;
        zero_default(&mut n.supernode_min_uptime_sec, dn.supernode_min_uptime_sec);
        zero_default(&mut n.relay_max_bandwidth_kbps, dn.relay_max_bandwidth_kbps);
        zero_default(&mut n.relay_max_sessions, dn.relay_max_sessions);
        zero_default(&mut n.relay_session_ttl_sec, dn.relay_session_ttl_sec);
        zero_default(&mut n.hole_punch_attempts, dn.hole_punch_attempts);
        let s = &mut self.security;
        let ds = d.security;
        zero_default(&mut s.handshake_timeout_sec, ds.handshake_timeout_sec);
        zero_default(&mut s.max_message_size_bytes, ds.max_message_size_bytes);
        zero_default(&mut s.rate_limit_burst, ds.rate_limit_burst);
        zero_default(&mut s.rate_limit_sustained, ds.rate_limit_sustained);
        if self.telemetry.epoch_sec == 0 {
            self.telemetry.epoch_sec = d.telemetry.epoch_sec;
        }
        if self.engine.backend.is_empty() {
            self.engine.backend = d.engine.backend;
        }
    }

    /// Checks cross-field rules; the error names the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Err(e) = self.telemetry.validate() {
            let field = match e.field() {
                "epoch_sec" => "telemetry.epoch_sec",
                "dp_epsilon" => "telemetry.dp_epsilon",
                "bandwidth_cap_bytes" => "telemetry.bandwidth_cap_bytes",
                "degree_cap" => "telemetry.degree_cap",
                "k_anon" => "telemetry.k_anon",
                _ => "telemetry",
            };
            return Err(ConfigError::Invalid {
                field,
                reason: e.to_string(),
            });
        }
        let g = &self.gossipsub;
        if !(g.d_lo <= g.d && g.d <= g.d_high) {
            return Err(ConfigError::Invalid {
                field: "gossipsub.D",
                reason: format!(
                    "need D_lo ({}) <= D ({}) <= D_high ({})",
                    g.d_lo, g.d, g.d_high
                ),
            });
        }
        if g.d_out >= g.d_lo {
            return Err(ConfigError::Invalid {
                field: "gossipsub.D_out",
                reason: format!("must be below D_lo ({})", g.d_lo),
            });
        }
        if let Err(e) = g.router_config() {
            return Err(ConfigError::InvalidAt {
                field: GossipSubConfig::error_field(&e),
                reason: e.to_string(),
            });
        }
        if self.security.max_message_size_bytes > MAX_MESSAGE_SIZE_LIMIT {
            return Err(ConfigError::Invalid {
                field: "security.max_message_size_bytes",
                reason: format!("at most {MAX_MESSAGE_SIZE_LIMIT}"),
            });
        }
        if self.security.rate_limit_burst < self.security.max_message_size_bytes {
            return Err(ConfigError::Invalid {
                field: "security.rate_limit_burst",
                reason: "must be at least max_message_size_bytes".into(),
            });
        }
        if self.engine.busy_poll_us > MAX_BUSY_POLL_US {
            return Err(ConfigError::Invalid {
                field: "engine.busy_poll_us",
                reason: format!("at most {MAX_BUSY_POLL_US}"),
            });
        }
        for (i, p) in self.static_peers.iter().enumerate() {
            if p.rsplit_once(':')
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .is_none()
            {
                return Err(ConfigError::Invalid {
                    field: "static_peers",
                    reason: format!("entry {i} `{p}` is not host:port"),
                });
            }
        }
        for (i, a) in self.lan_interfaces.iter().enumerate() {
            if a.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(ConfigError::Invalid {
                    field: "lan_interfaces",
                    reason: format!("entry {i} `{a}` is not an IPv4 address"),
                });
            }
        }
        for (i, p) in self.dht_bootstrap.iter().enumerate() {
            if p.rsplit_once(':')
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .is_none()
            {
                return Err(ConfigError::Invalid {
                    field: "dht_bootstrap",
                    reason: format!("entry {i} `{p}` is not host:port"),
                });
            }
        }
        self.webrtc.validate()?;
        if let Some(t) = &self.trackers {
            for u in t {
                if !(u.starts_with("udp://")
                    || u.starts_with("http://")
                    || u.starts_with("https://"))
                {
                    return Err(ConfigError::Invalid {
                        field: "trackers",
                        reason: format!("`{u}` is not a udp:// or http(s):// URL"),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webrtc_block_is_off_by_default_and_validated_by_field() {
        let c = Config::default();
        assert!(!c.webrtc.enabled);
        let on = Config::from_json(r#"{"webrtc":{"enabled":true,"signal":["ws://127.0.0.1:8788"],"ice_ips":["127.0.0.1"]}}"#).unwrap();
        assert!(on.validate().is_ok());
        assert_eq!(on.webrtc.ice_port, 0);
        let field = |j: &str| match Config::from_json(j).map(|c| c.validate()) {
            Ok(Err(ConfigError::Invalid { field, .. })) => field,
            Err(ConfigError::Invalid { field, .. }) => field,
            other => panic!("{j}: {other:?}"),
        };
        assert_eq!(field(r#"{"webrtc":{"enabled":true}}"#), "webrtc.signal");
        assert_eq!(
            field(r#"{"webrtc":{"signal":["http://x:1"]}}"#),
            "webrtc.signal"
        );
        assert_eq!(
            field(r#"{"webrtc":{"ice_ips":["::1x"]}}"#),
            "webrtc.ice_ips"
        );
        for bad in [
            "x",
            "x:",
            ":3478",
            "x:0",
            "x:70000",
            "::1:3478",
            "[::1:3478",
        ] {
            let j = format!(r#"{{"webrtc":{{"stun":["{bad}"]}}}}"#);
            assert_eq!(field(&j), "webrtc.stun", "{bad}");
        }
        let more = Config::from_json(
            r#"{"webrtc":{"enabled":true,"signal":["wss://s.example:443/x"],
                "stun":["stun.example:3478","127.0.0.1:3478","[::1]:3478"],"ice_ips":["::1","127.0.0.1"]}}"#,
        )
        .unwrap();
        assert!(more.validate().is_ok());
    }

    #[test]
    fn partial_blocks_keep_other_defaults() {
        let c = Config::from_json(r#"{"gossipsub":{"D":8,"D_high":14},"trackers":[]}"#).unwrap();
        assert_eq!(c.gossipsub.d, 8);
        assert_eq!(c.gossipsub.d_lo, 4);
        assert_eq!(c.gossipsub.heartbeat_ms, 1000);
        assert_eq!(c.trackers, Some(vec![]));
        let d = Config::from_json("{}").unwrap();
        assert_eq!(d, Config::default());
        assert_eq!(d.trackers, None, "omitted: the built-in set");
    }

    #[test]
    fn zero_means_default() {
        let c =
            Config::from_json(r#"{"max_peers":0,"security":{"handshake_timeout_sec":0}}"#).unwrap();
        assert_eq!(c.max_peers, 200);
        assert_eq!(c.security.handshake_timeout_sec, 5);
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::from_json(r#"{"gossipsub":{"D_lo":"x"}}"#).unwrap_err();
        assert_eq!(e.field(), "gossipsub.D_lo");
        let e = Config::from_json(r#"{"listen_port":70000}"#).unwrap_err();
        assert_eq!(e.field(), "listen_port");
        let e = Config::from_json(r#"{"max_peers":-1}"#).unwrap_err();
        assert_eq!(e.field(), "max_peers");
        let e = Config::from_json(r#"{"gossipsub":{"D":20}}"#).unwrap_err();
        assert_eq!(e.field(), "gossipsub.D");
        let e = Config::from_json(r#"{"static_peers":["nope"]}"#).unwrap_err();
        assert_eq!(e.field(), "static_peers");
        let e = Config::from_json(r#"{"telemetry":{"degree_cap":70000}}"#).unwrap_err();
        assert_eq!(e.field(), "telemetry.degree_cap");
        let e = Config::from_json(r#"{"engine":{"busy_poll_us":10001}}"#).unwrap_err();
        assert_eq!(e.field(), "engine.busy_poll_us");
        let c = Config::from_json(r#"{"engine":{"busy_poll_us":50}}"#).unwrap();
        assert_eq!(c.engine.busy_poll_us, 50);
        let c = Config::from_json(r#"{"telemetry":{"epoch_sec":0}}"#).unwrap();
        assert_eq!(c.telemetry.epoch_sec, 300);
        let c = Config::from_json(r#"{"telemetry":{"enabled":true}}"#).unwrap();
        assert!(c.telemetry.enabled);
        assert_eq!(c.telemetry.k_anon, 5);
        let e = Config::from_json("{").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }));
        assert!(e.to_string().contains("config field"));
    }

    #[test]
    fn score_parameters_per_topic_and_defaults() {
        let c = Config::from_json(
            r#"{"gossipsub":{"topic_score_cap":50,
                "topic_defaults":{"mesh_failure_penalty_weight":-2,"invalid_weight":-20},
                "topics":{"news":{"topic_weight":0.5,"time_in_mesh_quantum_ms":500,
                                  "first_deliveries_cap":10}}}}"#,
        )
        .unwrap();
        let p = c.gossipsub.score_params();
        assert_eq!(p.topic_score_cap, 50.0);
        assert_eq!(p.topic_defaults.mesh_failure_penalty_weight, -2.0);
        assert_eq!(p.topic_defaults.invalid_weight, -20.0);
        assert_eq!(
            p.topic_defaults.time_in_mesh_weight, 0.03,
            "reference value kept"
        );
        let news = &p.topics["news"];
        assert_eq!(news.topic_weight, 0.5);
        assert_eq!(news.time_in_mesh_quantum, Duration::from_millis(500));
        assert_eq!(news.first_deliveries_cap, 10.0);
        assert_eq!(news.invalid_weight, -20.0, "from topic_defaults");
        assert_eq!(
            c.gossipsub.router_config().map(|r| r.score.topics.len()),
            Ok(1)
        );
        // Round trip through JSON.
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(Config::from_json(&text).unwrap(), c);
        // Nothing given: the reference parameters.
        let d = Config::default().gossipsub.score_params();
        assert_eq!(d, moss_gossip::ScoreParams::default());
    }

    #[test]
    fn bad_score_parameters_name_the_field() {
        let cases = [
            (
                r#"{"gossipsub":{"topics":{"news":{"mesh_failure_penalty_weight":1}}}}"#,
                "gossipsub.topics.news.mesh_failure_penalty_weight",
            ),
            (
                r#"{"gossipsub":{"topics":{"news":{"first_deliveries_decay":1.5}}}}"#,
                "gossipsub.topics.news.first_deliveries_decay",
            ),
            (
                r#"{"gossipsub":{"topics":{"a":{"time_in_mesh_quantum_ms":0}}}}"#,
                "gossipsub.topics.a.time_in_mesh_quantum_ms",
            ),
            (
                r#"{"gossipsub":{"topic_defaults":{"topic_weight":-1}}}"#,
                "gossipsub.topic_defaults.topic_weight",
            ),
            (
                r#"{"gossipsub":{"topic_score_cap":-3}}"#,
                "gossipsub.topic_score_cap",
            ),
            (
                r#"{"gossipsub":{"topics":{"a":{"invalid_weight":"x"}}}}"#,
                "gossipsub.topics.a.invalid_weight",
            ),
            (
                r#"{"gossipsub":{"topics":{"a":{"typo_weight":1}}}}"#,
                "gossipsub.topics.a",
            ),
            (
                r#"{"gossipsub":{"topics":{"a":{"mesh_deliveries_window_ms":-1}}}}"#,
                "gossipsub.topics.a.mesh_deliveries_window_ms",
            ),
        ];
        for (json, field) in cases {
            let e = Config::from_json(json).unwrap_err();
            assert!(e.field().starts_with(field), "{json}: {e}");
        }
    }
}
