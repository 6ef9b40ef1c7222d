//! The public handle of a running node.

use crate::backend::{self, BackendKind};
use crate::driver::Driver;
use crate::error::{NodeError, StartError};
use crate::event::{Event, Message};
use crate::host::{Command, Host, Shared, Sink, Snapshot};
use crate::io::{NoWake, Transport};
pub use crate::report::{MeshInfo, NodeStats, PeerStat};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use moss_mesh::{Config, Identity, PeerId};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Commands queued between host and engine. About 50–200 ms of publishes
/// at the engine's rate here: a publisher that outruns the engine gets
/// `Busy` (back-pressure) instead of building a queue whose commands
/// (each holding its payload) wait for seconds.
const COMMAND_QUEUE: usize = 4096;
/// Messages buffered per subscription (and in the node-wide channel).
const MESSAGE_QUEUE: usize = 16_384;
/// Events buffered for the host.
const EVENT_QUEUE: usize = 4096;

/// Shards to run for config value `configured` (0 = one per core): at most
/// [`moss_mesh::shard::MAX_SHARDS`], and 1 where `SO_REUSEPORT` sharding is
/// not built (outside Linux).
fn shard_count(configured: u32) -> usize {
    if !cfg!(target_os = "linux") {
        return 1;
    }
    let n = match configured {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n as usize,
    };
    n.clamp(1, moss_mesh::shard::MAX_SHARDS)
}

/// Configures and starts a [`Node`].
#[must_use = "a builder does nothing until `start` is called"]
pub struct NodeBuilder {
    mesh_id: String,
    psk: Option<[u8; 32]>,
    config: Config,
    identity: Option<Identity>,
    bind: Option<SocketAddr>,
    queues: (usize, usize),
    map_lifetime: Duration,
    map_retry: Duration,
    engine: Option<crate::shared::SharedEngine>,
}

impl NodeBuilder {
    /// Sets the capacity of the host → engine command queue (default
    /// 4 096) and of each message queue (per subscription and node-wide,
    /// default 16 384); the event queue ([`Node::events`], 4 096) is made no
    /// longer than a message queue. The queues are allocated whole at
    /// start, so a host that runs many quiet nodes (a gateway's on-demand
    /// meshes) saves memory with small ones (the event queue alone is
    /// ~380 KiB at 4 096); a full queue reports `Busy` or drops and counts,
    /// as always. Values below 16 are raised to 16.
    pub fn queue_capacity(mut self, commands: usize, messages: usize) -> Self {
        self.queues = (commands.max(16), messages.max(16));
        self
    }

    /// Sets the 32-byte pre-shared key that gates the mesh.
    pub fn psk(mut self, psk: [u8; 32]) -> Self {
        self.psk = Some(psk);
        self
    }

    /// Sets the configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Parses and sets a JSON configuration (the `Moss_Init` format).
    pub fn config_json(mut self, json: &str) -> Result<Self, StartError> {
        self.config = crate::config::parse(json)?;
        Ok(self)
    }

    /// Uses a stored identity instead of generating one.
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// Binds this exact address (default: `0.0.0.0:listen_port`).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = Some(addr);
        self
    }

    /// The lifetime a port mapping asks for (`nat.pcp_enabled`,
    /// `natpmp_enabled`, `upnp_enabled`; default one hour, at least 1 s);
    /// it is renewed at half the granted lifetime.
    pub fn port_mapping_lifetime(mut self, lifetime: Duration) -> Self {
        self.map_lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// How long port mapping waits after a round that mapped nothing before
    /// it asks again (default 10 s, doubling up to 300 s); an announcement
    /// from the gateway (224.0.0.1:5350) still makes it ask at once.
    pub fn port_mapping_retry(mut self, first: Duration) -> Self {
        self.map_retry = first;
        self
    }

    /// Runs the node on `engine`, one thread shared with every node started
    /// on it, instead of an engine thread of its own (see
    /// [`crate::SharedEngine`]). Such a node runs unsharded over the
    /// `portable` backend, without busy-polling, the TCP carrier or WebRTC,
    /// whatever `engine.shards`, `engine.backend`, `engine.busy_poll_us`,
    /// `transport` and `webrtc` say: it is for hosts that run many quiet
    /// meshes.
    pub fn shared_engine(mut self, engine: &crate::shared::SharedEngine) -> Self {
        self.engine = Some(engine.clone());
        self
    }

    /// Opens the socket and starts the engine thread.
    pub fn start(self) -> Result<Node, StartError> {
        self.config.validate()?;
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| StartError::Random(e.to_string()))?;
        let identity = match self.identity {
            Some(id) => id,
            None => {
                let mut s = [0u8; 32];
                getrandom::getrandom(&mut s).map_err(|e| StartError::Random(e.to_string()))?;
                Identity::from_seed(s)
            }
        };
        let kind = BackendKind::from_config(&self.config.engine)?;
        let bind = self
            .bind
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], self.config.listen_port)));
        let shared_engine = self.engine.clone();
        let mut shared_fd = None;
        let shard_count = if shared_engine.is_some() {
            1
        } else if self.config.webrtc.enabled {
            // DataChannel paths are sealed by the node itself, as TCP ones.
            tracing::info!("webrtc: the engine runs unsharded");
            1
        } else {
            shard_count(self.config.engine.shards)
        };
        let (transport, local_addr, backend_name) = if let Some(e) = &shared_engine {
            let (transport, addr, name, fd) = crate::shared::open(bind, e)?;
            shared_fd = Some(fd);
            (transport, addr, name)
        } else if shard_count > 1 {
            let keys = moss_crypto::MeshKeys::derive(&self.mesh_id, self.psk.as_ref());
            let s = crate::shard::start(
                kind,
                bind,
                shard_count,
                &keys,
                self.config.engine.busy_poll_us,
            )
            .map_err(|e| match e {
                crate::shard::ShardError::Backend(b) => StartError::Backend(b),
                crate::shard::ShardError::Thread(t) => StartError::Thread(t),
            })?;
            let transport = Transport::Sharded {
                shards: s.shards,
                socket: s.socket,
            };
            (transport, s.local_addr, s.backend_name)
        } else {
            let backend = backend::open(kind, bind)?;
            let local_addr = backend
                .local_addr()
                .map_err(|source| backend::BackendError::Io {
                    backend: backend.name(),
                    source,
                })?;
            let name = backend.name();
            (Transport::Direct(backend), local_addr, name)
        };
        let public_key = identity.public_key();
        let keys = moss_crypto::MeshKeys::derive(&self.mesh_id, self.psk.as_ref());
        let mut tcp = match shared_engine {
            Some(_) => None,
            None => crate::tcp::start(&self.config, &transport, local_addr, &keys)?,
        };
        let webrtc = match &transport {
            Transport::Direct(b) if self.config.webrtc.enabled && shared_engine.is_none() => {
                Some(crate::webrtc::start(
                    &self.config.webrtc,
                    public_key.to_hex(),
                    keys.infohash.iter().map(|b| format!("{b:02x}")).collect(),
                    b.waker(),
                )?)
            }
            _ => None,
        };
        let max_message = self.config.security.max_message_size_bytes as usize;
        let busy_poll = Duration::from_micros(u64::from(self.config.engine.busy_poll_us));
        let static_peers = self.config.static_peers.clone();
        let prefer_tcp = self.config.transport.prefer_tcp;
        let nat_pmp = self.config.nat.natpmp_enabled;
        let map_protocols = crate::portmap::Protocols {
            pcp: self.config.nat.pcp_enabled,
            natpmp: self.config.nat.natpmp_enabled,
            upnp: self.config.nat.upnp_enabled,
        };
        let mut core = moss_mesh::Node::new(
            self.config,
            identity,
            &self.mesh_id,
            self.psk.as_ref(),
            seed,
            Duration::ZERO,
        )?;
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        core.set_unix_origin(unix);
        core.set_local_addrs(&crate::nat::local_addrs(local_addr));
        // Behind a symmetric NAT the node punches port-filtering cones
        // through spray sockets (crate::spray).
        core.enable_spray(moss_mesh::nat::SPRAY_SOCKETS);
        let spray = crate::spray::Spray::new(local_addr, &transport);
        if nat_pmp {
            if let Some(r) = crate::nat::default_gateway().and_then(crate::nat::gateway_report) {
                core.set_gateway_report(r);
            }
        }
        if let Some(s) = transport.shards() {
            core.detach_transport(s.len())
                .map_err(|e| backend::BackendError::Unavailable {
                    backend: "shards",
                    reason: e.to_string(),
                })?;
        }
        for p in &static_peers {
            match p.to_socket_addrs() {
                Ok(addrs) => {
                    for a in addrs
                        .filter(|a| a.is_ipv4() == local_addr.is_ipv4())
                        .take(1)
                    {
                        match tcp.as_mut() {
                            Some(t) if prefer_tcp => t.add_static(a),
                            _ => core.add_static_peer(a),
                        }
                    }
                }
                Err(e) => tracing::warn!(peer = %p, error = %e, "static peer does not resolve"),
            }
        }
        let shared = Arc::new(Shared {
            peer_count: AtomicUsize::new(0),
            // A node on a shared engine always wakes it: the engine
            // thread knows whether it sleeps.
            parked: AtomicBool::new(shared_engine.is_some()),
            stopped: AtomicBool::new(false),
            events_dropped: AtomicU64::new(0),
            messages_dropped: AtomicU64::new(0),
            next_subscription: AtomicU64::new(0),
            busy_poll,
            publish_buffers: crate::host::BufferPool::new(),
            waker: match &transport {
                Transport::Direct(b) => b.waker(),
                // A sharded core sleeps on its command channel.
                Transport::Sharded { .. } => Arc::new(NoWake),
            },
        });
        let (cmd_tx, cmd_rx) = bounded(self.queues.0);
        let (ev_tx, ev_rx) = bounded(EVENT_QUEUE.min(self.queues.1));
        let keys = core.mesh_keys().clone();
        let discovery = crate::discovery::config(
            core.config(),
            keys.infohash,
            keys.beacon_key,
            local_addr.port(),
        )
        .and_then(crate::discovery::start);
        if let Some(d) = &discovery {
            let (cands, evs) = (d.candidates(), d.events());
            let (cmds, hev, sh) = (cmd_tx.clone(), ev_tx.clone(), shared.clone());
            std::thread::Builder::new()
                .name("moss-discovery-fwd".into())
                .spawn(move || crate::discovery::forward(cands, evs, cmds, hev, sh, local_addr))
                .map_err(StartError::Thread)?;
        }
        let (fh_tx, fh_rx) = bounded(self.queues.1);
        let tcp_counters = tcp.as_ref().map(|t| (t.counters(), t.local_addr()));
        let webrtc_counters = webrtc.as_ref().map(|w| w.counters());
        let driver = Driver {
            core,
            transport,
            commands: cmd_rx,
            host: Host::new(shared.clone(), ev_tx, fh_tx),
            origin: Instant::now(),
            send_dropped: 0,
            worked: false,
            tcp,
            webrtc,
            spray,
        };
        let runner = match shared_engine.zip(shared_fd) {
            Some((e, fd)) => Runner::shared(e, driver, fd)?,
            None => Runner::Thread(
                std::thread::Builder::new()
                    .name("moss-engine".into())
                    .spawn(move || driver.run())
                    .map_err(StartError::Thread)?,
            ),
        };
        // IPv4 only: NAT-PMP, PCP here and UPnP IGD map IPv4 ports.
        let portmap = local_addr.is_ipv4().then(|| {
            crate::portmap::Portmap::start(
                map_protocols,
                local_addr.port(),
                self.map_lifetime,
                self.map_retry,
                cmd_tx.clone(),
                shared.clone(),
            )
        });
        Ok(Node {
            tcp: tcp_counters,
            webrtc: webrtc_counters,
            message_queue: self.queues.1,
            mesh_id: self.mesh_id,
            public_key,
            local_addr,
            backend: backend_name,
            max_message,
            started: Instant::now(),
            commands: cmd_tx,
            shared,
            events: ev_rx,
            messages: fh_rx,
            runner: Some(runner),
            discovery,
            portmap: portmap.flatten(),
        })
    }
}

/// A running Moss node. Dropping it stops the node.
pub struct Node {
    mesh_id: String,
    public_key: PeerId,
    local_addr: SocketAddr,
    backend: &'static str,
    max_message: usize,
    started: Instant,
    commands: Sender<Command>,
    shared: Arc<Shared>,
    events: Receiver<Event>,
    messages: Receiver<Message>,
    runner: Option<Runner>,
    discovery: Option<moss_discovery::Discovery>,
    tcp: Option<(Arc<crate::tcp::TcpCounters>, Option<SocketAddr>)>,
    webrtc: Option<Arc<crate::webrtc::WebrtcCounters>>,
    message_queue: usize,
    portmap: Option<crate::portmap::Portmap>,
}

/// What runs a node's engine.
enum Runner {
    /// Its own engine thread.
    Thread(JoinHandle<()>),
    /// A shared engine; `done` disconnects when the node has stopped.
    Shared {
        done: Receiver<()>,
        _engine: crate::shared::SharedEngine,
    },
}

impl Runner {
    /// Hands `driver` to the shared engine `engine`.
    fn shared(
        engine: crate::shared::SharedEngine,
        driver: Driver,
        fd: crate::shared::Fd,
    ) -> Result<Self, StartError> {
        let (tx, done) = bounded(0);
        // Only a panicked engine thread refuses a node: as if this node's
        // own thread could not start.
        let attach = crate::shared::Attach {
            driver,
            fd,
            done: tx,
        };
        engine
            .attach(attach)
            .map_err(|e| StartError::Thread(std::io::Error::other(e)))?;
        Ok(Self::Shared {
            done,
            _engine: engine,
        })
    }

    /// Waits until the engine has finished the node.
    fn join(self) {
        match self {
            Self::Thread(t) => {
                let _ = t.join();
            }
            Self::Shared { done, .. } => {
                let _ = done.recv();
            }
        }
    }
}

/// Messages of one topic; iterate or poll. Dropping it unsubscribes at
/// once when no other subscription of the topic remains.
#[must_use = "dropping a subscription unsubscribes"]
pub struct Subscription {
    topic: String,
    pub(crate) rx: Receiver<Message>,
    id: u64,
    commands: Sender<Command>,
    shared: Arc<Shared>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // A stopped engine or a full queue loses nothing: the engine also
        // drops a sink whose channel is gone when its next message comes.
        let cmd = Command::DropSubscription {
            topic: std::mem::take(&mut self.topic),
            id: self.id,
        };
        if self.commands.try_send(cmd).is_ok() {
            self.shared.nudge();
        }
    }
}

impl Subscription {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Waits up to `timeout` for the next message.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Message> {
        crate::spin::recv_timeout(&self.rx, self.shared.busy_poll, timeout)
    }

    /// The next message if one is queued.
    pub fn try_recv(&self) -> Option<Message> {
        self.rx.try_recv().ok()
    }
}

impl Iterator for Subscription {
    type Item = Message;
    fn next(&mut self) -> Option<Message> {
        crate::spin::recv(&self.rx, self.shared.busy_poll)
    }
}

impl Node {
    /// Starts configuring a node of mesh `mesh_id`.
    pub fn builder(mesh_id: &str) -> NodeBuilder {
        NodeBuilder {
            mesh_id: mesh_id.to_string(),
            psk: None,
            config: Config::default(),
            identity: None,
            bind: None,
            queues: (COMMAND_QUEUE, MESSAGE_QUEUE),
            map_lifetime: crate::portmap::DEFAULT_LIFETIME,
            map_retry: crate::portmap::RETRY_FIRST,
            engine: None,
        }
    }

    /// This node's peer id.
    pub fn public_key(&self) -> PeerId {
        self.public_key
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The mesh id.
    pub fn mesh_id(&self) -> &str {
        &self.mesh_id
    }

    /// The TCP carrier's counters (`None` when it does not run: disabled,
    /// or a sharded engine).
    pub fn tcp_stats(&self) -> Option<crate::tcp::TcpStats> {
        self.tcp.as_ref().map(|(c, _)| c.snapshot())
    }

    /// The WebRTC side's counters (`None` when `webrtc.enabled` is off).
    pub fn webrtc_stats(&self) -> Option<crate::webrtc::WebrtcStats> {
        self.webrtc.as_ref().map(|c| c.snapshot())
    }

    /// The TCP listen address (`None` when not listening on TCP).
    pub fn tcp_local_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|(_, a)| *a)
    }

    /// The I/O backend in use (`uring`, `mmsg` or `portable`).
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Established peers right now.
    pub fn peer_count(&self) -> usize {
        self.shared.peer_count.load(Ordering::SeqCst)
    }

    pub(crate) fn send(&self, cmd: Command) -> Result<(), NodeError> {
        if self.shared.stopped.load(Ordering::SeqCst) {
            return Err(NodeError::Stopped);
        }
        match self.commands.try_send(cmd) {
            Ok(()) => {
                self.shared.nudge();
                Ok(())
            }
            Err(TrySendError::Full(c)) => {
                // A refused publish's buffer goes back to the pool.
                if let Command::Publish { buf, .. } = c {
                    self.shared.publish_buffers.give(buf);
                }
                self.shared.nudge();
                Err(NodeError::Busy)
            }
            Err(TrySendError::Disconnected(_)) => Err(NodeError::Stopped),
        }
    }

    fn check_topic(topic: &str) -> Result<(), NodeError> {
        if topic.is_empty() || topic.len() > moss_mesh::wire::MAX_TOPIC {
            return Err(NodeError::InvalidTopic);
        }
        Ok(())
    }

    /// Subscribes to `topic`, returning its message stream.
    pub fn subscribe(&self, topic: &str) -> Result<Subscription, NodeError> {
        Self::check_topic(topic)?;
        let (tx, rx) = bounded(self.message_queue);
        let id = self
            .shared
            .next_subscription
            .fetch_add(1, Ordering::Relaxed);
        self.send(Command::Subscribe {
            topic: topic.to_string(),
            sink: Sink::Channel(id, tx),
        })?;
        Ok(Subscription {
            topic: topic.to_string(),
            rx,
            id,
            commands: self.commands.clone(),
            shared: self.shared.clone(),
        })
    }

    /// Subscribes to `topic` with delivery to [`Node::messages`] (for hosts
    /// that dispatch every topic from one place, like the C ABI).
    pub fn join(&self, topic: &str) -> Result<(), NodeError> {
        Self::check_topic(topic)?;
        self.send(Command::Subscribe {
            topic: topic.to_string(),
            sink: Sink::Firehose,
        })
    }

    /// Leaves `topic` (all its subscriptions end).
    pub fn unsubscribe(&self, topic: &str) -> Result<(), NodeError> {
        Self::check_topic(topic)?;
        self.send(Command::Unsubscribe {
            topic: topic.to_string(),
        })
    }

    /// Messages of topics joined with [`Node::join`].
    pub fn messages(&self) -> &Receiver<Message> {
        &self.messages
    }

    /// Host events (peer joined/left, tracker results, overflow).
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// Publishes `data` on `topic`. Returns once the engine has the message;
    /// `NoPeers` when no peer is connected at all.
    pub fn publish(&self, topic: &str, data: &[u8]) -> Result<(), NodeError> {
        Self::check_topic(topic)?;
        if data.len() > self.max_message {
            return Err(NodeError::TooLarge {
                size: data.len(),
                max: self.max_message,
            });
        }
        if self.peer_count() == 0 {
            return Err(NodeError::NoPeers);
        }
        // One pooled buffer carries topic and payload to the engine, which
        // hands it back: no allocation per publish once the pool is warm.
        let mut buf = self.shared.publish_buffers.take();
        buf.extend_from_slice(topic.as_bytes());
        buf.extend_from_slice(data);
        let cmd = Command::Publish {
            buf,
            topic_len: topic.len(),
        };
        self.send(cmd)
    }

    /// Dials `host:port` without waiting.
    pub fn connect(&self, addr: &str) -> Result<(), NodeError> {
        let addr = self.resolve(addr)?;
        self.send(Command::Connect { addr, reply: None })
    }

    /// Dials `host:port` and waits until the session is up or fails.
    pub fn connect_wait(&self, addr: &str, timeout: Duration) -> Result<PeerId, NodeError> {
        let addr = self.resolve(addr)?;
        let (tx, rx) = bounded(1);
        self.send(Command::Connect {
            addr,
            reply: Some(tx),
        })?;
        match rx.recv_timeout(timeout) {
            Ok(Ok(peer)) => Ok(peer),
            Ok(Err(reason)) => Err(NodeError::ConnectFailed(reason)),
            Err(_) => Err(NodeError::Timeout),
        }
    }

    pub(crate) fn resolve(&self, addr: &str) -> Result<SocketAddr, NodeError> {
        addr.to_socket_addrs()
            .map_err(|_| NodeError::BadAddress(addr.to_string()))?
            .find(|a| a.is_ipv4() == self.local_addr.is_ipv4())
            .ok_or_else(|| NodeError::BadAddress(addr.to_string()))
    }

    fn snapshot(&self) -> Result<Snapshot, NodeError> {
        let (tx, rx) = bounded(1);
        self.send(Command::Snapshot(tx))?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| NodeError::Timeout)
    }

    /// Counters and peers.
    pub fn stats(&self) -> Result<NodeStats, NodeError> {
        let s = self.snapshot()?;
        Ok(NodeStats {
            mesh_id: self.mesh_id.clone(),
            public_key: self.public_key.to_hex(),
            listen_addr: self.local_addr.to_string(),
            backend: self.backend.to_string(),
            uptime_sec: self.started.elapsed().as_secs(),
            peer_count: s.peers.len(),
            sessions: s.sessions,
            peers: s
                .peers
                .iter()
                .map(|p| PeerStat {
                    peer_id: p.peer.to_hex(),
                    addr: p.addr.to_string(),
                    topics: p.topics.clone(),
                    outbound: p.outbound,
                    path: path_kind(p, &s.punched),
                    relay: relay_of(p),
                    punch_ms: s
                        .punch_ms
                        .iter()
                        .find(|(q, _, _)| *q == p.peer)
                        .map(|&(_, ms, _)| ms),
                    punch_offers: s
                        .punch_ms
                        .iter()
                        .find(|(q, _, _)| *q == p.peer)
                        .map_or(0, |&(_, _, n)| n),
                })
                .collect(),
            topics: s.subscriptions,
            nat_type: s.nat_type.as_str().into(),
            counters: s.stats,
            send_dropped: s.send_dropped,
            send_drops: s.send_drops,
            publish_unrouted: s.publish_unrouted,
            events_dropped: self.shared.events_dropped.load(Ordering::Relaxed),
            messages_dropped: self.shared.messages_dropped.load(Ordering::Relaxed),
            shards: s.shards.len(),
            shard_stats: s.shards,
            port_mapping: self
                .portmap
                .as_ref()
                .map(|p| p.status())
                .unwrap_or_default(),
            spray: s.spray,
        })
    }

    /// Installs the application score (GossipSub P5): `f(peer, base_score)`
    /// runs on the engine thread for every connected peer each heartbeat, so
    /// it must be quick and must not wait on this node.
    pub fn set_app_score(
        &self,
        f: impl FnMut(&PeerId, f64) -> f64 + Send + 'static,
    ) -> Result<(), NodeError> {
        self.send(Command::SetAppScore(Box::new(f)))
    }

    /// The telemetry snapshot (`Moss_GetNetworkStats`; serializes as `{}`
    /// when telemetry is off).
    pub fn network_stats(&self) -> Result<moss_mesh::NetworkSnapshot, NodeError> {
        Ok(self.snapshot()?.network)
    }

    /// The newest `limit` links of the telemetry hash chain, oldest first.
    pub fn chain(&self, limit: usize) -> Result<Vec<moss_mesh::ChainLink>, NodeError> {
        let (tx, rx) = bounded(1);
        self.send(Command::Chain { limit, reply: tx })?;
        rx.recv_timeout(Duration::from_secs(5))
            .map_err(|_| NodeError::Timeout)
    }

    /// Discovery state: per-tracker health, DHT, LAN beacons, drops
    /// (`None` when every discovery channel is off).
    pub fn discovery_stats(&self) -> Option<moss_discovery::DiscoveryStats> {
        self.discovery.as_ref().map(|d| d.stats())
    }

    /// `Moss_GetMeshInfo`'s document.
    pub fn mesh_info(&self) -> Result<MeshInfo, NodeError> {
        let s = self.snapshot()?;
        Ok(MeshInfo {
            mesh_id: self.mesh_id.clone(),
            listen_port: self.local_addr.port(),
            peer_count: s.peers.len(),
            peers: s.peers.iter().map(|p| p.addr.to_string()).collect(),
            paths: s
                .peers
                .iter()
                .map(|p| path_kind(p, &s.punched).into())
                .collect(),
            relays: s.peers.iter().map(relay_of).collect(),
            channels: s.subscriptions,
            nat_type: s.nat_type.as_str().into(),
            public_key: self.public_key.to_hex(),
            supernode_ready: s.supernode,
            backend: self.backend.to_string(),
        })
    }

    /// Stops the node: peers are told, the engine thread exits. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.discovery.take() {
            d.stop();
        }
        // The mapping is deleted first (a few seconds at most).
        if let Some(mut p) = self.portmap.take() {
            p.stop();
        }
        // A full command queue (a host publishing flat out) must not lose
        // the stop: wait for room. The engine drains the queue while it
        // runs, so this only times out if the engine thread is wedged, and
        // then joining it would hang too, so it is left detached.
        self.shared.waker.wake();
        let sent = self
            .commands
            .send_timeout(Command::Stop, Duration::from_secs(5));
        self.shared.waker.wake();
        if let Some(t) = self.runner.take() {
            match sent {
                Ok(()) | Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => t.join(),
                Err(crossbeam_channel::SendTimeoutError::Timeout(_)) => {
                    tracing::warn!("engine thread did not take the stop command; left detached");
                }
            }
        }
        self.shared.stopped.store(true, Ordering::SeqCst);
    }

    /// True once stopped.
    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }

    /// `(messages, events)` dropped so far because the host did not drain
    /// them in time: the counters of [`NodeStats`], read without a round
    /// trip to the engine thread (which can be busy in a receive flood).
    pub fn host_drops(&self) -> (u64, u64) {
        (
            self.shared.messages_dropped.load(Ordering::Relaxed),
            self.shared.events_dropped.load(Ordering::Relaxed),
        )
    }
}

/// How peer `p`'s session is reached, as mesh info and stats name it.
fn path_kind(p: &moss_mesh::PeerInfo, punched: &[PeerId]) -> &'static str {
    if matches!(p.addr, moss_mesh::Path::Relay { .. }) {
        "relayed"
    } else if punched.contains(&p.peer) {
        "punched"
    } else {
        "direct"
    }
}

/// The supernode (hex) peer `p` is relayed through, if it is.
fn relay_of(p: &moss_mesh::PeerInfo) -> Option<String> {
    match p.addr {
        moss_mesh::Path::Relay { via, .. } => Some(via.to_hex()),
        _ => None,
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}
