//! The meshes a gateway serves: the one it started with, plus meshes joined
//! on demand through `?meshid=`, up to a fixed bound.
//!
//! - A slot is reserved before a node is built, so concurrent requests for
//!   new ids never build more than the bound; concurrent requests for the
//!   same new id build it once.
//! - Mesh ids follow [`valid_mesh_id`].
//! - An on-demand mesh is cheap: its node runs on the gateway's one
//!   [`moss::SharedEngine`] (one thread and one poll set for every
//!   on-demand mesh; its socket is the one file descriptor a mesh adds),
//!   unsharded, without the TCP carrier, with small queues; its messages,
//!   events and log lines are handled by the gateway's one host thread
//!   ([`crate::story::Host`]), shared by every mesh. `-shared-engine=false`
//!   gives each on-demand mesh an engine thread of its own instead.
//! - On-demand meshes do not use public trackers or the DHT unless the
//!   operator names them (`-public-meshes`): any HTTP caller can name a
//!   mesh, and must not make the gateway announce arbitrary infohashes to
//!   third-party infrastructure.

use crate::inbox::Inbox;
use moss::{Config, Node};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Command queue of an on-demand mesh's node: the API only reads, so a
/// few hundred snapshots and subscriptions in flight are plenty.
const ON_DEMAND_COMMANDS: usize = 1024;
/// Message queues of an on-demand mesh's node (the inbox keeps
/// [`crate::inbox::KEEP`] per topic and drains its queue continuously).
const ON_DEMAND_MESSAGES: usize = 1024;

/// Longest mesh id accepted, in bytes.
pub const MAX_MESH_ID: usize = 128;

/// Why a mesh could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MeshError {
    /// The id breaks the mesh id rule ([`valid_mesh_id`]).
    #[error("invalid mesh id: want 1-128 bytes of UTF-8 without control, bidi or invisible format characters (U+FFFD, which marks bad UTF-8, is refused too)")]
    InvalidId,
    /// The gateway already serves its maximum number of meshes.
    #[error("mesh limit reached: this gateway serves at most {0} meshes")]
    Limit(usize),
    /// The node for the mesh could not start.
    #[error("cannot join mesh: {0}")]
    Start(String),
}

/// One served mesh.
pub struct Served {
    /// The node.
    pub node: Node,
    /// Recent messages of subscribed topics.
    pub inbox: Arc<Inbox>,
    /// Recent host events (`/api/events`).
    pub events: Arc<crate::eventlog::EventLog>,
    _live: Live,
}

/// Counts a built node while it exists.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A mesh slot: reserved at once, filled by the one request that builds it.
type Slot = Arc<OnceLock<Result<Arc<Served>, MeshError>>>;

/// How the gateway builds on-demand meshes.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Most meshes at once, the primary included.
    pub max: usize,
    /// On-demand mesh ids allowed to use trackers and the DHT; `*` allows all.
    pub public: Vec<String>,
    /// Each on-demand mesh gets an engine thread of its own instead of
    /// the shared engine (`-shared-engine=false`).
    pub separate_engines: bool,
}

/// Registry of served meshes.
pub struct Meshes {
    primary: String,
    base: Config,
    psk: Option<[u8; 32]>,
    topics: Vec<String>,
    policy: Policy,
    slots: Mutex<HashMap<String, Slot>>,
    live: Arc<AtomicUsize>,
    peak: AtomicUsize,
    /// The host thread shared by every mesh.
    host: Option<crate::story::Host>,
    /// The engine every on-demand mesh runs on, started with the first
    /// (`None` inside: it could not start, so meshes get their own).
    engine: OnceLock<Option<moss::SharedEngine>>,
}

/// The mesh id rule: 1 to [`MAX_MESH_ID`] bytes of UTF-8 with no control
/// characters (C0, DEL, C1), no bidi controls (U+061C, U+200E, U+200F,
/// U+202A-U+202E, U+2066-U+2069), no invisible format characters (U+200B-U+200D,
/// U+2060-U+2064, U+FEFF), no line or paragraph separators (U+2028, U+2029),
/// and no U+FFFD: query strings are decoded with U+FFFD in place of invalid
/// UTF-8, so refusing it makes `%ff%fe` and `%fe%ff` invalid instead of one mesh.
pub fn valid_mesh_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_MESH_ID
        && !id.chars().any(|c| {
            c.is_control()
                || matches!(c,
                    '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
                    | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{FFFD}')
        })
}

impl Meshes {
    /// Starts the primary mesh node.
    pub fn start(
        primary: &str,
        base: Config,
        psk: Option<[u8; 32]>,
        topics: Vec<String>,
        policy: Policy,
    ) -> Result<Self, MeshError> {
        let m = Self {
            primary: primary.to_string(),
            base,
            psk,
            topics,
            policy,
            slots: Mutex::new(HashMap::new()),
            live: Arc::new(AtomicUsize::new(0)),
            peak: AtomicUsize::new(0),
            host: crate::story::Host::start(),
            engine: OnceLock::new(),
        };
        let first = m.spawn(primary, true)?;
        let slot = Slot::default();
        let _ = slot.set(Ok(first));
        m.lock().insert(primary.to_string(), slot);
        Ok(m)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding the lock leaves the map itself consistent.
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node configuration of a mesh.
    fn config(&self, mesh: &str, primary: bool) -> Config {
        let mut cfg = self.base.clone();
        if primary {
            return cfg;
        }
        // Extra meshes take an ephemeral port; static peers belong to the
        // primary mesh.
        cfg.listen_port = 0;
        cfg.static_peers.clear();
        // Cheap on-demand meshes: one engine thread (no shard threads), no
        // TCP carrier (its watcher thread and listener; nobody dials an
        // ephemeral port over TCP), and small queues (see `spawn`).
        cfg.engine.shards = 1;
        cfg.transport.tcp_enabled = false;
        // Browser peers meet the primary mesh only (one signal room, one ICE port).
        cfg.webrtc.enabled = false;
        if !self.policy.public.iter().any(|p| p == "*" || p == mesh) {
            cfg.trackers = Some(Vec::new());
            cfg.dht_enabled = false;
        }
        cfg
    }

    fn spawn(&self, mesh: &str, primary: bool) -> Result<Arc<Served>, MeshError> {
        let live = Live(self.live.clone());
        let now = self.live.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let mut b = Node::builder(mesh).config(self.config(mesh, primary));
        if !primary {
            b = b.queue_capacity(ON_DEMAND_COMMANDS, ON_DEMAND_MESSAGES);
            if let Some(e) = self.shared_engine() {
                b = b.shared_engine(e);
            }
        }
        if let Some(psk) = self.psk.filter(|_| primary) {
            b = b.psk(psk);
        }
        let node = b.start().map_err(|e| MeshError::Start(e.to_string()))?;
        let inbox = Inbox::start(&node, &self.topics);
        let served = Arc::new(Served {
            node,
            inbox,
            events: Arc::default(),
            _live: live,
        });
        if let Some(h) = &self.host {
            h.follow(mesh, &served);
        }
        Ok(served)
    }

    /// The on-demand meshes' engine (started on first use), unless the
    /// policy gives each mesh its own or it could not start.
    fn shared_engine(&self) -> Option<&moss::SharedEngine> {
        if self.policy.separate_engines {
            return None;
        }
        self.engine
            .get_or_init(|| match moss::SharedEngine::start() {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "on-demand meshes get an engine thread each");
                    None
                }
            })
            .as_ref()
    }

    /// The node of `mesh` (the primary when `None`), joining it if needed.
    pub fn get(&self, mesh: Option<&str>) -> Result<Arc<Served>, MeshError> {
        let id = mesh.unwrap_or(&self.primary);
        if !valid_mesh_id(id) {
            return Err(MeshError::InvalidId);
        }
        let slot = {
            let mut map = self.lock();
            match map.get(id) {
                Some(s) => s.clone(),
                None if map.len() >= self.policy.max => {
                    return Err(MeshError::Limit(self.policy.max))
                }
                None => map.entry(id.to_string()).or_default().clone(),
            }
        };
        // Other requests for the same id wait here for the one building it.
        let r = slot
            .get_or_init(|| {
                let built = self.spawn(id, false);
                if let Ok(s) = &built {
                    tracing::info!(
                        mesh = id,
                        listen = %s.node.local_addr(),
                        peer = %moss::short_id(&s.node.public_key()),
                        "joined mesh on demand (?meshid=)"
                    );
                }
                built
            })
            .clone();
        if r.is_err() {
            let mut map = self.lock();
            if map.get(id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                map.remove(id);
            }
        }
        r
    }

    /// Every served mesh (slots still being built are left out).
    pub fn all(&self) -> Vec<(String, Arc<Served>)> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .filter_map(|(k, s)| match s.get() {
                Some(Ok(served)) => Some((k.clone(), served.clone())),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Most nodes that existed at once since the start.
    #[cfg(test)]
    pub fn peak_nodes(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Stops every node.
    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline() -> Config {
        let mut c = Config {
            trackers: Some(vec!["udp://127.0.0.1:9/announce".into()]),
            dht_enabled: false,
            lan_discovery_enabled: false,
            ..Config::default()
        };
        c.telemetry.enabled = false;
        c
    }

    #[test]
    fn concurrent_new_ids_never_build_past_the_limit() {
        let max = 4;
        let m = Arc::new(
            Meshes::start(
                "primary",
                offline(),
                None,
                vec![],
                Policy {
                    max,
                    ..Policy::default()
                },
            )
            .unwrap(),
        );
        let n = 24;
        let barrier = Arc::new(std::sync::Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (m, barrier) = (m.clone(), barrier.clone());
                // Every id twice: same-id requests must share one build.
                std::thread::spawn(move || {
                    barrier.wait();
                    m.get(Some(&format!("mesh-{}", i / 2))).is_ok()
                })
            })
            .collect();
        let ok = threads
            .into_iter()
            .map(|t| t.join().unwrap_or(false))
            .filter(|ok| *ok)
            .count();
        assert_eq!(m.all().len(), max);
        // The primary plus three on-demand ids, each requested twice.
        assert_eq!(ok, (max - 1) * 2);
        assert!(
            m.peak_nodes() <= max,
            "peak {} > limit {max}",
            m.peak_nodes()
        );
    }

    #[test]
    fn on_demand_meshes_run_on_one_shared_engine() {
        let policy = Policy {
            max: 8,
            ..Policy::default()
        };
        let m = Meshes::start("primary", offline(), None, vec![], policy).unwrap();
        // The primary keeps an engine of its own: nothing shared yet.
        assert!(m.engine.get().is_none());
        let served: Vec<_> = ["one", "two", "three"]
            .iter()
            .map(|id| m.get(Some(id)).unwrap())
            .collect();
        let engine = m.shared_engine().expect("the shared engine started");
        assert_eq!(engine.node_count(), 3);
        let stats = served[1].node.stats().unwrap();
        assert_eq!(stats.mesh_id, "two");
        assert_eq!(stats.backend, "portable");
        m.clear();
        drop(served);
        // The host thread may hold a mesh for a moment (it upgrades its
        // weak reference per event): the last holder stops the node.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while engine.node_count() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(engine.node_count(), 0, "cleared meshes left the engine");
        let own = Meshes::start(
            "primary",
            offline(),
            None,
            vec![],
            Policy {
                max: 8,
                separate_engines: true,
                ..Policy::default()
            },
        )
        .unwrap();
        own.get(Some("one")).unwrap();
        assert!(own.shared_engine().is_none(), "-shared-engine=false");
    }

    #[test]
    fn on_demand_meshes_are_cheap() {
        let mut base = offline();
        base.engine.shards = 4;
        let m = Meshes::start("primary", base.clone(), None, vec![], Policy::default()).unwrap();
        // The primary keeps the operator's config; on-demand meshes run one
        // engine thread without the TCP carrier.
        assert_eq!(m.config("primary", true), base);
        let c = m.config("x", false);
        assert_eq!(c.engine.shards, 1);
        assert!(!c.transport.tcp_enabled);
    }

    #[test]
    fn mesh_id_rule() {
        for good in [
            "global",
            "a",
            "../etc",
            "<b>x</b>",
            "mesh \"q\"",
            "ünïcödé",
            &"x".repeat(MAX_MESH_ID),
        ] {
            assert!(valid_mesh_id(good), "{good:?}");
        }
        for bad in [
            "",
            "a\nb",
            "a\u{7f}",
            "a\u{85}",
            "\u{202E}evil",
            "x\u{2066}",
            "zero\u{200B}width",
            "\u{FEFF}",
            "bad\u{FFFD}",
            "\u{2028}",
            &"x".repeat(MAX_MESH_ID + 1),
        ] {
            assert!(!valid_mesh_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn on_demand_meshes_announce_only_when_allowed() {
        let policy = Policy {
            max: 8,
            public: vec!["open".into()],
            ..Policy::default()
        };
        let m = Meshes::start("primary", offline(), None, vec![], policy).unwrap();
        let closed = m.config("closed", false);
        assert_eq!(closed.trackers, Some(vec![]));
        assert!(!closed.dht_enabled);
        assert_eq!(m.config("open", false).trackers, offline().trackers);
        let mut base = offline();
        base.dht_enabled = true;
        let all = Meshes::start(
            "p",
            offline(),
            None,
            vec![],
            Policy {
                max: 2,
                public: vec!["*".into()],
                ..Policy::default()
            },
        )
        .unwrap();
        assert_eq!(all.config("any", false).trackers, offline().trackers);
        assert!(Meshes { base, ..all }.config("any", false).dht_enabled);
    }
}
