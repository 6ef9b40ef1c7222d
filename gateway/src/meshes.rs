//! The meshes a gateway serves: the one it started with, plus meshes joined
//! on demand through `?meshid=`, up to a fixed bound.

use crate::inbox::Inbox;
use moss::{Config, Node};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Longest mesh id accepted in `?meshid=`.
pub const MAX_MESH_ID: usize = 128;

/// Why a mesh could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The id is empty, too long or has control characters.
    #[error("invalid mesh id")]
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
}

/// Registry of served meshes.
pub struct Meshes {
    primary: String,
    base: Config,
    psk: Option<[u8; 32]>,
    topics: Vec<String>,
    max: usize,
    served: Mutex<HashMap<String, Arc<Served>>>,
}

fn valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_MESH_ID && !id.chars().any(char::is_control)
}

impl Meshes {
    /// Starts the primary mesh node.
    pub fn start(
        primary: &str,
        base: Config,
        psk: Option<[u8; 32]>,
        topics: Vec<String>,
        max: usize,
    ) -> Result<Self, MeshError> {
        let m = Self {
            primary: primary.to_string(),
            base,
            psk,
            topics,
            max,
            served: Mutex::new(HashMap::new()),
        };
        let first = m.spawn(primary, true)?;
        m.lock().insert(primary.to_string(), first);
        Ok(m)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Served>>> {
        // A panic while holding the lock leaves the map itself consistent.
        self.served.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn(&self, mesh: &str, primary: bool) -> Result<Arc<Served>, MeshError> {
        let mut cfg = self.base.clone();
        if !primary {
            // Extra meshes take an ephemeral port; static peers belong to the
            // primary mesh.
            cfg.listen_port = 0;
            cfg.static_peers.clear();
        }
        let mut b = Node::builder(mesh).config(cfg);
        if let Some(psk) = self.psk.filter(|_| primary) {
            b = b.psk(psk);
        }
        let node = b.start().map_err(|e| MeshError::Start(e.to_string()))?;
        let inbox = Inbox::start(&node, &self.topics);
        let served = Arc::new(Served { node, inbox });
        crate::story::follow(mesh, &served);
        Ok(served)
    }

    /// The node of `mesh` (the primary when `None`), joining it if needed.
    pub fn get(&self, mesh: Option<&str>) -> Result<Arc<Served>, MeshError> {
        let id = mesh.unwrap_or(&self.primary);
        if !valid(id) {
            return Err(MeshError::InvalidId);
        }
        if let Some(s) = self.lock().get(id) {
            return Ok(s.clone());
        }
        if self.lock().len() >= self.max {
            return Err(MeshError::Limit(self.max));
        }
        let s = self.spawn(id, false)?;
        tracing::info!(
            mesh = id,
            listen = %s.node.local_addr(),
            peer = %moss::short_id(&s.node.public_key()),
            "joined mesh on demand (?meshid=)"
        );
        let mut map = self.lock();
        if map.len() >= self.max {
            return Err(MeshError::Limit(self.max));
        }
        Ok(map.entry(id.to_string()).or_insert(s).clone())
    }

    /// Every served mesh.
    pub fn all(&self) -> Vec<(String, Arc<Served>)> {
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Stops every node.
    pub fn clear(&self) {
        self.lock().clear();
    }
}
