//! The runner the engine starts: configuration, the [`Discovery`] handle, candidates and events.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::beacon;
use crate::clock::later;
use crate::sink::Shared;
use crate::stats::{DhtStats, DiscoveryStats, LanStats, TrackerStats};
use crate::tracker_url::TrackerUrl;

/// The built-in tracker list, the one list of the workspace (the engine uses
/// it when a node config omits `trackers`),
/// taken from the original Moss specification.
pub fn default_trackers() -> Vec<String> {
    [
        "udp://tracker.opentrackr.org:1337/announce",
        "udp://open.stealth.si:80/announce",
        "udp://tracker.openbittorrent.com:6969/announce",
        "udp://tracker1.bt.moack.co.kr:80/announce",
        "udp://exodus.desync.com:6969/announce",
        "udp://tracker.torrent.eu.org:451/announce",
        "udp://explodie.org:6969/announce",
        "udp://open.demonii.com:1337/announce",
        "http://tracker.opentrackr.org:1337/announce",
        "http://tracker.openbittorrent.com:80/announce",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// Mainline DHT settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtConfig {
    /// Bootstrap nodes as `host:port`; empty means the `mainline` crate's
    /// public defaults.
    pub bootstrap: Vec<String>,
    /// UDP port of the DHT's own socket (0: any free port).
    pub port: u16,
    /// Address the DHT socket binds to.
    pub bind: Ipv4Addr,
    /// Per-request timeout of DHT queries.
    pub request_timeout: Duration,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            bootstrap: Vec::new(),
            port: 0,
            bind: Ipv4Addr::UNSPECIFIED,
            request_timeout: Duration::from_secs(2),
        }
    }
}

/// LAN multicast beacon settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanConfig {
    /// 32-byte key the mesh derives from its mesh id and PSK; authenticates beacons.
    pub beacon_key: [u8; 32],
    /// Multicast group (default 239.255.77.77).
    pub group: Ipv4Addr,
    /// UDP port of the group (default 44445).
    pub port: u16,
    /// Interval between beacons (default 1500 ms).
    pub interval: Duration,
    /// Local interface addresses to join the group on and send from; empty
    /// means the system's default multicast interface.
    pub interfaces: Vec<Ipv4Addr>,
}

impl LanConfig {
    /// Defaults of the original Moss with the given key.
    pub fn new(beacon_key: [u8; 32]) -> Self {
        Self {
            beacon_key,
            group: beacon::DEFAULT_GROUP,
            port: beacon::DEFAULT_PORT,
            interval: beacon::DEFAULT_INTERVAL,
            interfaces: Vec::new(),
        }
    }
}

/// Everything [`Discovery::start`] needs. The mesh fills it from what it derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Rendezvous key (the mesh's infohash).
    pub infohash: [u8; 20],
    /// The engine's listen port, announced everywhere.
    pub listen_port: u16,
    /// Tracker URLs (`udp://host:port/announce`, `http://host[:port]/path`); empty disables trackers.
    pub trackers: Vec<String>,
    /// Our announce interval (default 120 s); a tracker's shorter interval wins.
    pub announce_interval: Duration,
    /// Mainline DHT, if enabled.
    pub dht: Option<DhtConfig>,
    /// LAN beacons, if enabled.
    pub lan: Option<LanConfig>,
    /// Capacity of the candidate channel; candidates beyond it are dropped and counted.
    pub max_candidates: usize,
    /// Capacity of the event channel.
    pub max_events: usize,
    /// A candidate address is delivered at most once per window.
    pub dedup_window: Duration,
    /// Largest peer list accepted from one tracker response.
    pub max_peers_per_response: usize,
    /// UDP trackers: first retransmission timeout (BEP 15: 15 s, doubling).
    pub udp_retransmit_base: Duration,
    /// UDP trackers: retransmissions before giving up a cycle (BEP 15 allows 8; default 3).
    pub udp_max_retransmits: u32,
    /// HTTP trackers: TCP connect timeout per address.
    pub http_connect_timeout: Duration,
    /// HTTP trackers: deadline for the response after connecting.
    pub http_response_timeout: Duration,
    /// HTTP trackers: largest response accepted.
    pub http_max_response: usize,
    /// How long [`Discovery::stop`] waits for its threads before detaching them.
    pub stop_timeout: Duration,
}

impl DiscoveryConfig {
    /// A config with the defaults: built-in trackers, 120 s interval, no DHT, no LAN.
    pub fn new(infohash: [u8; 20], listen_port: u16) -> Self {
        Self {
            infohash,
            listen_port,
            trackers: default_trackers(),
            announce_interval: Duration::from_secs(120),
            dht: None,
            lan: None,
            max_candidates: 256,
            max_events: 64,
            dedup_window: Duration::from_secs(300),
            max_peers_per_response: 200,
            udp_retransmit_base: Duration::from_secs(15),
            udp_max_retransmits: 3,
            http_connect_timeout: Duration::from_secs(5),
            http_response_timeout: Duration::from_secs(10),
            http_max_response: 64 * 1024,
            stop_timeout: Duration::from_secs(3),
        }
    }
}

/// Where a candidate came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A tracker, by its configured URL.
    Tracker(String),
    /// The Mainline DHT.
    Dht,
    /// A LAN beacon.
    Lan,
}

/// A peer address worth dialing (it may not be a Moss node: the handshake decides).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Candidate {
    /// Address to dial.
    pub addr: SocketAddr,
    /// Which channel produced it.
    pub source: Source,
}

/// Tracker events the host maps to its event ids (5 and 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DiscoveryEvent {
    /// An announce succeeded.
    TrackerAnnounce {
        /// The tracker URL.
        tracker: String,
        /// Peers it returned.
        peers: usize,
    },
    /// An announce cycle failed (or the URL is unsupported).
    TrackerFailure {
        /// The tracker URL.
        tracker: String,
        /// What went wrong.
        error: String,
    },
}

impl DiscoveryEvent {
    /// Moss host event id: 5 tracker announce, 6 tracker failure.
    pub fn event_id(&self) -> i32 {
        match self {
            DiscoveryEvent::TrackerAnnounce { .. } => 5,
            DiscoveryEvent::TrackerFailure { .. } => 6,
        }
    }
}

/// Why [`Discovery::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// `listen_port` is 0.
    #[error("listen_port must not be 0")]
    ZeroListenPort,
    /// `announce_interval` is zero.
    #[error("announce_interval must be positive")]
    ZeroInterval,
    /// `max_candidates` or `max_events` is zero.
    #[error("channel capacities must be positive")]
    ZeroCapacity,
    /// The LAN beacon interval is zero.
    #[error("lan interval must be positive")]
    ZeroLanInterval,
    /// The operating system's randomness source failed.
    #[error("randomness unavailable: {0}")]
    Random(getrandom::Error),
    /// A worker thread could not be spawned.
    #[error("cannot spawn thread: {0}")]
    Spawn(std::io::Error),
}

/// What [`Discovery::stop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StopReport {
    /// Threads that ended and were joined.
    pub joined: usize,
    /// Threads still busy at the deadline (e.g. in a blocking name lookup),
    /// detached; they exit on their own at their next stop check.
    pub detached: usize,
}

/// A running discovery instance. Dropping it stops it.
pub struct Discovery {
    shared: Arc<Shared>,
    candidates: Receiver<Candidate>,
    events: Receiver<DiscoveryEvent>,
    threads: Vec<JoinHandle<()>>,
    done: Receiver<()>,
    stop_timeout: Duration,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

/// Signals the done channel when a worker thread ends, even by panic.
struct DoneGuard(Sender<()>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

impl Discovery {
    /// Validates `config`, creates the channels and starts one thread per
    /// tracker, one for the DHT and one for LAN beacons. Socket and resolution
    /// problems are not errors here: they are reported in [`Self::stats`] and
    /// [`Self::events`] and retried.
    pub fn start(config: DiscoveryConfig) -> Result<Discovery, DiscoveryError> {
        if config.listen_port == 0 {
            return Err(DiscoveryError::ZeroListenPort);
        }
        if config.announce_interval.is_zero() {
            return Err(DiscoveryError::ZeroInterval);
        }
        if config.max_candidates == 0 || config.max_events == 0 {
            return Err(DiscoveryError::ZeroCapacity);
        }
        if config.lan.as_ref().is_some_and(|l| l.interval.is_zero()) {
            return Err(DiscoveryError::ZeroLanInterval);
        }
        let peer_id = crate::peer_id::generate_peer_id().map_err(DiscoveryError::Random)?;
        let mut seed_rng = crate::rng::SplitMix64::from_os().map_err(DiscoveryError::Random)?;

        let mut stats = DiscoveryStats {
            listen_port: config.listen_port,
            ..DiscoveryStats::default()
        };
        let mut parsed = Vec::new();
        let mut unsupported = Vec::new();
        for (index, url) in config.trackers.iter().enumerate() {
            match TrackerUrl::parse(url) {
                Ok(u) => {
                    stats.trackers.push(TrackerStats {
                        url: url.clone(),
                        kind: Some(u.kind),
                        supported: true,
                        ..TrackerStats::default()
                    });
                    parsed.push((index, url.clone(), u));
                }
                Err(e) => {
                    stats.trackers.push(TrackerStats {
                        url: url.clone(),
                        supported: false,
                        failures: 1,
                        consecutive_failures: 1,
                        last_error: Some(e.to_string()),
                        ..TrackerStats::default()
                    });
                    stats.drops.unsupported_trackers += 1;
                    unsupported.push((url.clone(), e.to_string()));
                }
            }
        }
        if config.dht.is_some() {
            stats.dht = Some(DhtStats::default());
        }
        if config.lan.is_some() {
            stats.lan = Some(LanStats::default());
        }

        let (cand_tx, cand_rx) = crossbeam_channel::bounded(config.max_candidates);
        let (ev_tx, ev_rx) = crossbeam_channel::bounded(config.max_events);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared::new(
            config.listen_port,
            stats,
            cand_tx,
            ev_tx,
            config.dedup_window,
        ));
        for (url, error) in unsupported {
            shared.emit_event(DiscoveryEvent::TrackerFailure {
                tracker: url,
                error,
            });
        }

        let mut discovery = Discovery {
            shared: Arc::clone(&shared),
            candidates: cand_rx,
            events: ev_rx,
            threads: Vec::new(),
            done: done_rx,
            stop_timeout: config.stop_timeout,
        };
        let spawn = |name: String, d: &mut Discovery, f: Box<dyn FnOnce() + Send>| {
            let guard = DoneGuard(done_tx.clone());
            std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    let _guard = guard;
                    f();
                })
                .map(|h| d.threads.push(h))
                .map_err(DiscoveryError::Spawn)
        };

        for (index, url_text, url) in parsed {
            let job = crate::workers::TrackerJob {
                shared: Arc::clone(&shared),
                index,
                url_text,
                url,
                infohash: config.infohash,
                peer_id,
                seed: seed_rng.next_u64(),
                config: config.clone(),
            };
            if let Err(e) = spawn(
                format!("moss-tracker-{index}"),
                &mut discovery,
                Box::new(move || job.run()),
            ) {
                discovery.stop();
                return Err(e);
            }
        }
        if let Some(dht) = config.dht.clone() {
            let shared = Arc::clone(&shared);
            let infohash = config.infohash;
            let interval = config.announce_interval;
            if let Err(e) = spawn(
                "moss-dht".into(),
                &mut discovery,
                Box::new(move || {
                    // The `mainline` crate panics on some internal failures;
                    // contain them and report the DHT as failed.
                    let run = std::panic::AssertUnwindSafe(|| {
                        crate::dht::run(&shared, &dht, infohash, interval)
                    });
                    if std::panic::catch_unwind(run).is_err() {
                        if let Some(d) = shared.stats().dht.as_mut() {
                            d.state = crate::stats::DhtState::Failed;
                            d.last_error = Some("dht worker panicked".into());
                        }
                    }
                }),
            ) {
                discovery.stop();
                return Err(e);
            }
        }
        if let Some(lan) = config.lan.clone() {
            let shared = Arc::clone(&shared);
            let mut instance_id = [0u8; 8];
            instance_id.copy_from_slice(&seed_rng.next_u64().to_le_bytes());
            if let Err(e) = spawn(
                "moss-lan".into(),
                &mut discovery,
                Box::new(move || crate::lan::run(&shared, &lan, instance_id)),
            ) {
                discovery.stop();
                return Err(e);
            }
        }
        Ok(discovery)
    }

    /// The candidate channel (bounded; deduplicated within the window).
    pub fn candidates(&self) -> Receiver<Candidate> {
        self.candidates.clone()
    }

    /// Tracker announce / failure events (bounded; overflow counted in `drops.events_full`).
    pub fn events(&self) -> Receiver<DiscoveryEvent> {
        self.events.clone()
    }

    /// A snapshot of health and counters.
    pub fn stats(&self) -> DiscoveryStats {
        self.shared.stats().clone()
    }

    /// Announces `port` from the next announce and beacon on.
    pub fn set_listen_port(&self, port: u16) {
        if port == 0 {
            return;
        }
        self.shared.listen_port.store(port, Ordering::Relaxed);
        self.shared.stats().listen_port = port;
    }

    /// Stops all threads and waits for them up to `stop_timeout`.
    pub fn stop(&mut self) -> StopReport {
        self.shared.stop.store(true, Ordering::Relaxed);
        let deadline = later(Instant::now(), self.stop_timeout);
        let mut remaining = self.threads.len();
        while remaining > 0 {
            let now = Instant::now();
            if now >= deadline || self.done.recv_timeout(deadline - now).is_err() {
                break;
            }
            remaining -= 1;
        }
        let all_done = remaining == 0;
        let mut report = StopReport::default();
        for handle in self.threads.drain(..) {
            if all_done || handle.is_finished() {
                let _ = handle.join();
                report.joined += 1;
            } else {
                report.detached += 1;
            }
        }
        if let Some(dht) = self.shared.stats().dht.as_mut() {
            if dht.state != crate::stats::DhtState::Failed {
                dht.state = crate::stats::DhtState::Stopped;
            }
        }
        report
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop();
        }
    }
}
