//! Gateway options: the flags of the original `moss-gateway`, plus a few
//! of ours, turned into a node configuration.

use crate::flags::{self, FlagError, Kind, Parsed, Spec};
use moss::Config;
use std::net::SocketAddr;

/// Every flag the gateway takes.
pub const SPECS: &[Spec] = &[
    Spec { name: "mesh", kind: Kind::Value, help: "mesh id to join (\"global\" is the standard public mesh) (default \"global\")" },
    Spec { name: "http", kind: Kind::Value, help: "HTTP listen address for the read-only API (default \"127.0.0.1:8787\"; \":PORT\" = all interfaces)" },
    Spec { name: "listen-port", kind: Kind::Value, help: "mesh UDP listen port (0 = ephemeral)" },
    Spec { name: "static", kind: Kind::Repeated, help: "comma-separated static peers host:port (repeatable)" },
    Spec { name: "trackers", kind: Kind::Bool, help: "use the built-in BitTorrent trackers for discovery (default true)" },
    Spec { name: "dht", kind: Kind::Bool, help: "use the Mainline DHT for discovery (default true)" },
    Spec { name: "dht-bootstrap", kind: Kind::Repeated, help: "DHT bootstrap node host:port (repeatable; default: the public routers)" },
    Spec { name: "lan", kind: Kind::Bool, help: "find peers on the LAN with multicast beacons (default true)" },
    Spec { name: "lan-port", kind: Kind::Value, help: "UDP port of LAN beacons (default 44445)" },
    Spec { name: "lan-interface", kind: Kind::Repeated, help: "IPv4 address of an interface for LAN beacons (repeatable; default: the system's)" },
    Spec { name: "psk", kind: Kind::Value, help: "64 hex digits: the mesh pre-shared key" },
    Spec { name: "config", kind: Kind::Value, help: "path to a JSON config file (the Moss_Init format); flags override it" },
    Spec { name: "backend", kind: Kind::Value, help: "packet engine backend: auto, uring, mmsg, portable (default auto)" },
    Spec { name: "subscribe", kind: Kind::Repeated, help: "subscribe to a topic and show its recent messages at /api/messages (repeatable)" },
    Spec { name: "telemetry", kind: Kind::Bool, help: "gossip and serve privacy-preserving telemetry (default true)" },
    Spec { name: "epoch-sec", kind: Kind::Value, help: "telemetry epoch length in seconds (default 300)" },
    Spec { name: "k-anon", kind: Kind::Value, help: "suppress detailed metrics below this many contributors (default 5)" },
    Spec { name: "max-meshes", kind: Kind::Value, help: "most meshes joined on demand through ?meshid= (default 8)" },
    Spec { name: "public-meshes", kind: Kind::Repeated, help: "comma-separated on-demand mesh ids allowed to use trackers and the DHT (repeatable; \"*\" = all; default none)" },
    Spec { name: "shared-engine", kind: Kind::Bool, help: "run every on-demand mesh on one shared engine thread (default true; false: an engine thread per mesh)" },
    Spec { name: "webrtc", kind: Kind::Bool, help: "accept browser peers over WebRTC DataChannels, meeting them through -signal servers (default false)" },
    Spec { name: "signal", kind: Kind::Repeated, help: "comma-separated moss-signal server URLs, ws://host:port or wss://host:port, for -webrtc (repeatable; wss:// trusts the system roots and the -config file's webrtc.signal_ca)" },
    Spec { name: "http-max-conns", kind: Kind::Value, help: "most HTTP connections at once; at the cap a new client evicts the oldest connection that never sent a request, else waits in the backlog (default 512)" },
    Spec { name: "http-header-timeout-sec", kind: Kind::Value, help: "longest wait for a request head, also the keep-alive idle timeout (default 10)" },
];

/// Why options were rejected.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    /// A flag problem.
    #[error(transparent)]
    Flag(#[from] FlagError),
    /// The config file could not be read.
    #[error("cannot read -config {path}: {source}")]
    ConfigFile {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The config is invalid (names the field).
    #[error("invalid config: {0}")]
    Config(#[from] moss::ConfigError),
}

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Mesh to join first.
    pub mesh: String,
    /// HTTP listen address.
    pub http: SocketAddr,
    /// Node configuration.
    pub config: Config,
    /// Mesh PSK.
    pub psk: Option<[u8; 32]>,
    /// Topics to subscribe to and show.
    pub subscribe: Vec<String>,
    /// Most meshes at once.
    pub max_meshes: usize,
    /// On-demand meshes allowed to announce publicly (`*` = all).
    pub public_meshes: Vec<String>,
    /// On-demand meshes share one engine thread (`-shared-engine`).
    pub shared_engine: bool,
    /// HTTP server bounds.
    pub http_limits: crate::serve::HttpLimits,
}

fn bad(flag: &str, value: &str, reason: &str) -> FlagError {
    FlagError::BadValue {
        flag: flag.into(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Parses `-http`: `host:port`, or `:port` for every interface (as Go does).
pub fn parse_http(v: &str) -> Result<SocketAddr, FlagError> {
    let full = if v.starts_with(':') {
        format!("0.0.0.0{v}")
    } else {
        v.to_string()
    };
    full.parse()
        .map_err(|_| bad("http", v, "want host:port or :port"))
}

fn parse_psk(v: &str) -> Result<[u8; 32], FlagError> {
    let bytes = hex::decode(v).map_err(|_| bad("psk", v, "not hex"))?;
    bytes
        .try_into()
        .map_err(|_| bad("psk", v, "need exactly 32 bytes (64 hex digits)"))
}

/// Every item of comma-separated, repeatable values, trimmed, empties skipped.
fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

impl Options {
    /// Builds options from command-line arguments (without the program name).
    pub fn from_args(args: &[String]) -> Result<Self, OptionsError> {
        let p: Parsed = flags::parse(SPECS, args)?;
        let mut config = match p.get("config") {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| OptionsError::ConfigFile {
                        path: path.into(),
                        source,
                    })?;
                moss::config::parse(&text)?
            }
            None => Config::default(),
        };
        if p.get("listen-port").is_some() {
            config.listen_port = p.parse("listen-port", 0u16)?;
        }
        if !p.bool("trackers", true)? {
            config.trackers = Some(Vec::new());
        }
        if p.get("dht").is_some() {
            config.dht_enabled = p.bool("dht", true)?;
        }
        config
            .dht_bootstrap
            .extend(p.all("dht-bootstrap").iter().cloned());
        if p.get("lan").is_some() {
            config.lan_discovery_enabled = p.bool("lan", true)?;
        }
        config
            .lan_interfaces
            .extend(p.all("lan-interface").iter().cloned());
        config.static_peers.extend(split_list(p.all("static")));
        // A gateway exists to serve telemetry: on unless turned off.
        config.telemetry.enabled = p.bool("telemetry", true)?;
        if p.get("epoch-sec").is_some() {
            config.telemetry.epoch_sec = p.parse("epoch-sec", 300u64)?;
        }
        if p.get("k-anon").is_some() {
            config.telemetry.k_anon = p.parse("k-anon", 5u32)?;
        }
        if let Some(b) = p.get("backend") {
            config.engine.backend = b.to_string();
        }
        if p.get("webrtc").is_some() {
            config.webrtc.enabled = p.bool("webrtc", false)?;
        }
        config.webrtc.signal.extend(split_list(p.all("signal")));
        moss::config::validate(&config)?;
        let max_meshes: usize = p.parse("max-meshes", 8)?;
        if max_meshes == 0 {
            return Err(bad("max-meshes", "0", "must be at least 1").into());
        }
        let http_limits = crate::serve::HttpLimits {
            max_connections: p.parse("http-max-conns", 512usize)?,
            header_timeout: std::time::Duration::from_secs(
                p.parse("http-header-timeout-sec", 10u64)?,
            ),
        };
        for (flag, zero) in [
            ("http-max-conns", http_limits.max_connections == 0),
            (
                "http-header-timeout-sec",
                http_limits.header_timeout.is_zero(),
            ),
        ] {
            if zero {
                return Err(bad(flag, "0", "must be at least 1").into());
            }
        }
        Ok(Self {
            public_meshes: split_list(p.all("public-meshes")),
            shared_engine: p.bool("shared-engine", true)?,
            http_limits,
            mesh: p.get("mesh").unwrap_or("global").to_string(),
            http: parse_http(p.get("http").unwrap_or("127.0.0.1:8787"))?,
            config,
            psk: p.get("psk").map(parse_psk).transpose()?,
            subscribe: p.all("subscribe").to_vec(),
            max_meshes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> Result<Options, OptionsError> {
        Options::from_args(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn product_description_demo_flags() {
        let o = opts(
            "-mesh local -http :8811 -listen-port 41002 -static 127.0.0.1:41001 -trackers=false",
        )
        .unwrap();
        assert_eq!(o.mesh, "local");
        assert_eq!(o.http, "0.0.0.0:8811".parse().unwrap());
        assert_eq!(o.config.listen_port, 41002);
        assert_eq!(o.config.static_peers, vec!["127.0.0.1:41001"]);
        assert_eq!(o.config.trackers, Some(vec![]));
        let d = opts("").unwrap();
        assert_eq!(d.mesh, "global");
        assert_eq!(d.http, "127.0.0.1:8787".parse().unwrap());
        assert_eq!(d.config.trackers, None);
    }

    #[test]
    fn webrtc_flags_fill_the_webrtc_block() {
        let o = opts("-webrtc -signal ws://127.0.0.1:8788,ws://127.0.0.1:8789").unwrap();
        assert!(o.config.webrtc.enabled);
        assert_eq!(
            o.config.webrtc.signal,
            vec!["ws://127.0.0.1:8788", "ws://127.0.0.1:8789"]
        );
        assert!(!opts("").unwrap().config.webrtc.enabled);
    }

    #[test]
    fn offline_flags_turn_every_discovery_channel_off() {
        let o = opts("-trackers=false -dht=false -lan=false").unwrap();
        assert_eq!(o.config.trackers, Some(vec![]));
        assert!(!o.config.dht_enabled);
        assert!(!o.config.lan_discovery_enabled);
        // -trackers=false keeps its meaning: trackers only.
        let o = opts("-trackers=false").unwrap();
        assert!(o.config.dht_enabled && o.config.lan_discovery_enabled);
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            ("-listen-port 99999", "-listen-port"),
            ("-http nope", "-http"),
            ("-psk abcd", "-psk"),
            ("-trackers=perhaps", "-trackers"),
            ("-static nohostport", "static_peers"),
            ("-backend dpdk", "engine.backend"),
            ("-epoch-sec 0", "telemetry.epoch_sec"),
            ("-lan-interface eth0", "lan_interfaces"),
            ("-dht-bootstrap nope", "dht_bootstrap"),
            ("-k-anon x", "-k-anon"),
            ("-webrtc", "webrtc.signal"),
            ("-webrtc -signal http://x:1", "webrtc.signal"),
            ("-bogus 1", "-bogus"),
        ] {
            let e = opts(args).unwrap_err().to_string();
            assert!(e.contains(flag), "{args}: {e}");
        }
    }
}
