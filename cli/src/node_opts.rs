//! The flags every command shares, turned into a running node.

use crate::error::CliError;
use crate::identity;
use clap::Args;
use moss::{Config, Node};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long one round of the story logger waits for events.
const STORY_ROUND: Duration = Duration::from_millis(250);

/// Flags shared by every command that runs a node.
#[derive(Debug, Clone, Args)]
pub struct NodeOpts {
    /// Mesh id to join.
    #[arg(long, global = true, default_value = "global", value_name = "ID")]
    pub mesh: String,
    /// File holding the mesh pre-shared key (64 hex digits or 32 raw bytes).
    #[arg(long, global = true, value_name = "FILE")]
    pub psk_file: Option<PathBuf>,
    /// Static peer host:port to dial (repeatable, or comma-separated).
    #[arg(
        long = "static",
        global = true,
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    pub static_peers: Vec<String>,
    /// UDP port to listen on (default: the config's, else ephemeral).
    #[arg(long, global = true, value_name = "PORT")]
    pub listen_port: Option<u16>,
    /// Do not announce to BitTorrent trackers.
    #[arg(long, global = true)]
    pub no_trackers: bool,
    /// Do not use the Mainline DHT.
    #[arg(long, global = true)]
    pub no_dht: bool,
    /// Do not send or listen for LAN beacons.
    #[arg(long, global = true)]
    pub no_lan: bool,
    /// JSON config file (the `Moss_Init` format); flags override it.
    #[arg(long, global = true, value_name = "FILE.json")]
    pub config: Option<PathBuf>,
    /// Identity file to use (see `moss id`; default: a fresh identity per run).
    #[arg(long, global = true, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Packet engine backend: auto, uring, mmsg or portable.
    #[arg(long, global = true, value_name = "NAME")]
    pub backend: Option<String>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::File {
        path: path.display().to_string(),
        source,
    })
}

/// Parses a PSK file: 64 hex digits (surrounding whitespace ignored) or
/// exactly 32 raw bytes.
pub fn parse_psk(bytes: &[u8]) -> Result<[u8; 32], String> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let t = text.trim();
        if t.len() == 64 {
            if let Ok(v) = hex::decode(t) {
                return v.try_into().map_err(|_| "not 32 bytes".to_string());
            }
        }
    }
    bytes
        .try_into()
        .map_err(|_| "want 64 hex digits or 32 raw bytes".to_string())
}

impl NodeOpts {
    /// The node configuration: the config file, then the flags over it.
    pub fn config(&self) -> Result<Config, CliError> {
        let mut c = match &self.config {
            Some(p) => {
                let text = String::from_utf8(read(p)?)
                    .map_err(|_| CliError::Usage(format!("{}: not UTF-8", p.display())))?;
                moss::config::parse(&text)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?
            }
            None => Config::default(),
        };
        if let Some(port) = self.listen_port {
            c.listen_port = port;
        }
        if self.no_trackers {
            c.trackers = Some(Vec::new());
        }
        if self.no_dht {
            c.dht_enabled = false;
        }
        if self.no_lan {
            c.lan_discovery_enabled = false;
        }
        c.static_peers.extend(
            self.static_peers
                .iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
        if let Some(b) = &self.backend {
            c.engine.backend = b.clone();
        }
        moss::config::validate(&c).map_err(|e| CliError::Usage(format!("invalid options: {e}")))?;
        Ok(c)
    }

    /// Starts the node these flags describe.
    pub fn start(&self) -> Result<Node, CliError> {
        let mut b = Node::builder(&self.mesh).config(self.config()?);
        if let Some(p) = &self.psk_file {
            let psk = parse_psk(&read(p)?)
                .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?;
            b = b.psk(psk);
        }
        if let Some(p) = &self.identity {
            b = b.identity(identity::load(p)?);
        }
        let node = b.start()?;
        tracing::info!(
            mesh = %self.mesh,
            listen = %node.local_addr(),
            backend = node.backend(),
            peer = %moss::short_id(&node.public_key()),
            "node started"
        );
        Ok(node)
    }
}

/// Runs `f` with `node` while a scoped thread logs the node's story;
/// logs the shutdown once `f` returns.
pub fn with_story<T>(node: &Node, f: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    let mut story = moss::Story::new(node.mesh_id());
    std::thread::scope(|s| {
        let logger = s.spawn(|| {
            // Each step blocks up to STORY_ROUND on the node's events.
            loop {
                if done.load(Ordering::Relaxed) || !story.step(node, STORY_ROUND) {
                    break story;
                }
            }
        });
        let out = f();
        done.store(true, Ordering::Relaxed);
        if let Ok(story) = logger.join() {
            story.shutdown();
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        n: NodeOpts,
    }

    fn opts(args: &str) -> NodeOpts {
        T::parse_from(std::iter::once("t").chain(args.split_whitespace())).n
    }

    #[test]
    fn offline_flags_turn_every_channel_off() {
        let c = opts(
            "--no-trackers --no-dht --no-lan --listen-port 41001 --static a:1,b:2 --static c:3",
        )
        .config()
        .unwrap();
        assert_eq!(c.trackers, Some(vec![]));
        assert!(!c.dht_enabled && !c.lan_discovery_enabled);
        assert_eq!(c.listen_port, 41001);
        assert_eq!(c.static_peers, ["a:1", "b:2", "c:3"]);
        let d = opts("").config().unwrap();
        assert!(d.dht_enabled && d.lan_discovery_enabled && d.trackers.is_none());
        assert!(matches!(
            opts("--backend dpdk").config(),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn psk_files_take_hex_or_raw() {
        let hex64 = "ab".repeat(32);
        assert_eq!(
            parse_psk(format!("{hex64}\n").as_bytes()).unwrap(),
            [0xab; 32]
        );
        assert_eq!(parse_psk(&[7u8; 32]).unwrap(), [7; 32]);
        assert!(parse_psk(b"abcd").is_err());
    }
}
