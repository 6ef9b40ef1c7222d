//! The global handle table and the per-handle state machine
//! (initialised → running → released).

use crate::callbacks::{Callbacks, Dispatcher};
use crate::codes::FfiError;
use moss_engine::{Config, Identity, Node, StartError, WebrtcError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, RwLock, RwLockReadGuard};

/// Handle ids are issued once, counting up from 1, and never reused.
static NEXT_ID: AtomicI64 = AtomicI64::new(1);

/// Live handles. Entries leave the table in `Moss_Stop`.
static TABLE: LazyLock<RwLock<HashMap<i64, Arc<Handle>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// One `Moss_Init` result.
pub struct Handle {
    /// The id the host holds.
    pub id: i64,
    /// The mesh id.
    pub mesh_id: String,
    psk: Option<[u8; 32]>,
    /// The parsed configuration.
    pub config: Config,
    identity: Identity,
    /// The host's callbacks.
    pub callbacks: Callbacks,
    state: RwLock<State>,
}

/// Where a handle is in its life.
pub enum State {
    /// Initialised; channels subscribed so far are joined at start.
    Ready {
        /// Channels to join at start, in order.
        pending: Vec<String>,
    },
    /// The node runs.
    Running {
        /// The engine node.
        node: Box<Node>,
        /// Its dispatch thread.
        dispatcher: Dispatcher,
    },
    /// Released by `Moss_Stop` (a call that raced the release sees this).
    Released,
}

/// What `Moss_Stop` found.
pub enum Stopped {
    /// The node was running and is now stopped.
    WasRunning,
    /// The handle was never started (it is released all the same).
    NeverStarted,
}

impl Handle {
    /// Registers a new handle and returns its id.
    pub fn register(
        mesh_id: String,
        psk: Option<[u8; 32]>,
        config: Config,
        identity: Identity,
    ) -> i64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let h = Arc::new(Handle {
            id,
            mesh_id,
            psk,
            config,
            identity,
            callbacks: Callbacks::default(),
            state: RwLock::new(State::Ready {
                pending: Vec::new(),
            }),
        });
        write_table().insert(id, h);
        id
    }

    /// Looks a handle up.
    pub fn get(id: i64) -> Result<Arc<Handle>, FfiError> {
        TABLE
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
            .ok_or(FfiError::InvalidHandle(id))
    }

    /// Our peer id (known from `Moss_Init` on).
    pub fn public_key_hex(&self) -> String {
        self.identity.public_key().to_hex()
    }

    /// Read access to the state (held only for non-blocking engine calls or
    /// bounded waits; never while calling the host).
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the running node, or fails with the state's error.
    pub fn with_node<T>(
        &self,
        f: impl FnOnce(&Node) -> Result<T, FfiError>,
    ) -> Result<T, FfiError> {
        match &*self.state() {
            State::Running { node, .. } => f(node),
            State::Ready { .. } => Err(FfiError::NotStarted),
            State::Released => Err(FfiError::InvalidHandle(self.id)),
        }
    }

    /// Adds a channel: joined now if running, at start otherwise.
    pub fn subscribe(&self, channel: &str) -> Result<(), FfiError> {
        self.change_channel(channel, true)
    }

    /// Removes a channel (pending or joined).
    pub fn unsubscribe(&self, channel: &str) -> Result<(), FfiError> {
        self.change_channel(channel, false)
    }

    fn change_channel(&self, channel: &str, join: bool) -> Result<(), FfiError> {
        // A running node needs only shared access; the write lock is taken
        // only to edit the pending list of a node not started yet.
        if let State::Running { node, .. } = &*self.state() {
            let r = if join {
                node.join(channel)
            } else {
                node.unsubscribe(channel)
            };
            return r.map_err(FfiError::from_node);
        }
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        match &mut *st {
            State::Ready { pending } => {
                if join {
                    if !pending.iter().any(|c| c == channel) {
                        pending.push(channel.to_string());
                    }
                } else {
                    pending.retain(|c| c != channel);
                }
                Ok(())
            }
            State::Running { node, .. } => {
                let r = if join {
                    node.join(channel)
                } else {
                    node.unsubscribe(channel)
                };
                r.map_err(FfiError::from_node)
            }
            State::Released => Err(FfiError::InvalidHandle(self.id)),
        }
    }

    /// Builds and starts the node and its dispatch thread.
    pub fn start(self: &Arc<Self>) -> Result<(), FfiError> {
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        let pending = match &mut *st {
            State::Ready { pending } => std::mem::take(pending),
            State::Running { .. } => return Err(FfiError::AlreadyStarted),
            State::Released => return Err(FfiError::InvalidHandle(self.id)),
        };
        let mut b = Node::builder(&self.mesh_id)
            .config(self.config.clone())
            .identity(self.identity.clone());
        if let Some(psk) = self.psk {
            b = b.psk(psk);
        }
        let started = b.start().map_err(|e| match e {
            StartError::Config(c) => FfiError::Config(c.to_string()),
            StartError::Backend(b) => FfiError::Listen(b.to_string()),
            StartError::Random(r) => FfiError::Internal(r),
            StartError::Thread(t) => FfiError::Internal(t.to_string()),
            // `webrtc.enabled` in a library built without WebRTC is a config
            // this build cannot honour; an ICE socket that cannot bind is a
            // listen failure.
            StartError::Webrtc(w @ WebrtcError::NotBuilt) => FfiError::Config(w.to_string()),
            StartError::Webrtc(w) => FfiError::Listen(w.to_string()),
        });
        let node = match started {
            Ok(n) => n,
            Err(e) => {
                *st = State::Ready { pending };
                return Err(e);
            }
        };
        if let Err(e) = node.set_app_score(self.callbacks.scorer()) {
            *st = State::Ready { pending };
            return Err(FfiError::from_node(e));
        }
        for c in &pending {
            if let Err(e) = node.join(c) {
                *st = State::Ready { pending };
                return Err(FfiError::from_node(e));
            }
        }
        let dispatcher =
            Dispatcher::spawn(self.clone(), node.messages().clone(), node.events().clone())
                .map_err(|e| FfiError::Internal(format!("cannot spawn the dispatch thread: {e}")));
        match dispatcher {
            Ok(dispatcher) => {
                *st = State::Running {
                    node: Box::new(node),
                    dispatcher,
                };
                Ok(())
            }
            Err(e) => {
                *st = State::Ready { pending };
                Err(e)
            }
        }
    }

    /// Messages and events the engine dropped because the host was slow
    /// (atomic counters: no round trip to a possibly busy engine thread).
    pub fn host_drops(&self) -> Option<u64> {
        match &*self.state() {
            State::Running { node, .. } => {
                let (messages, events) = node.host_drops();
                Some(messages + events)
            }
            _ => None,
        }
    }

    /// Removes handle `id` from the table and stops its node. No callback of
    /// this handle starts after it returns (unless called from one of them).
    pub fn stop(id: i64) -> Result<Stopped, FfiError> {
        let h = {
            let mut table = write_table();
            let h = table.remove(&id).ok_or(FfiError::InvalidHandle(id))?;
            if table.is_empty() {
                // Give the table's memory back once no handle is left, so a
                // host that stopped everything holds no Moss allocation.
                table.shrink_to_fit();
            }
            h
        };
        let old = {
            let mut st = h.state.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *st, State::Released)
        };
        match old {
            State::Running {
                mut node,
                dispatcher,
            } => {
                dispatcher.stop();
                node.stop();
                Ok(Stopped::WasRunning)
            }
            State::Ready { .. } => Ok(Stopped::NeverStarted),
            State::Released => Err(FfiError::InvalidHandle(id)),
        }
    }
}

fn write_table() -> std::sync::RwLockWriteGuard<'static, HashMap<i64, Arc<Handle>>> {
    TABLE.write().unwrap_or_else(|p| p.into_inner())
}
