//! Discovery wired to the engine: the mesh's infohash and beacon key go to
//! trackers, the DHT and LAN beacons; candidates come back as dials and
//! tracker results as host events.

use crate::driver::{Command, Shared};
use crate::event::Event;
use crossbeam_channel::{select, Receiver, Sender, TrySendError};
use moss_discovery::{Candidate, DhtConfig, Discovery, DiscoveryConfig, DiscoveryEvent, LanConfig};
use moss_mesh::Config;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Builds the discovery config for a node; `None` when every channel is off.
pub(crate) fn config(
    cfg: &Config,
    infohash: [u8; 20],
    beacon_key: [u8; 32],
    listen_port: u16,
) -> Option<DiscoveryConfig> {
    let trackers = cfg
        .trackers
        .clone()
        .unwrap_or_else(moss_discovery::default_trackers);
    if trackers.is_empty() && !cfg.dht_enabled && !cfg.lan_discovery_enabled {
        return None;
    }
    let mut d = DiscoveryConfig::new(infohash, listen_port);
    d.trackers = trackers;
    d.announce_interval = Duration::from_secs(u64::from(cfg.announce_interval_sec));
    if cfg.dht_enabled {
        d.dht = Some(DhtConfig {
            bootstrap: cfg.dht_bootstrap.clone(),
            port: cfg.dht_port,
            ..DhtConfig::default()
        });
    }
    if cfg.lan_discovery_enabled {
        let mut lan = LanConfig::new(beacon_key);
        lan.port = cfg.lan_discovery_port;
        lan.interval = Duration::from_millis(u64::from(cfg.lan_discovery_ms));
        // Validated by Config::validate.
        lan.interfaces = cfg
            .lan_interfaces
            .iter()
            .filter_map(|a| a.parse::<Ipv4Addr>().ok())
            .collect();
        d.lan = Some(lan);
    }
    Some(d)
}

/// Moves candidates to the engine as dials and tracker results to the host
/// as events, until discovery stops.
pub(crate) fn forward(
    candidates: Receiver<Candidate>,
    events: Receiver<DiscoveryEvent>,
    commands: Sender<Command>,
    host_events: Sender<Event>,
    shared: Arc<Shared>,
    local: SocketAddr,
) {
    loop {
        select! {
            recv(candidates) -> c => match c {
                Ok(c) => {
                    if is_self(c.addr, local) {
                        continue;
                    }
                    if commands.try_send(Command::Connect { addr: c.addr, reply: None }).is_ok() {
                        shared.nudge();
                    }
                }
                Err(_) => return,
            },
            recv(events) -> e => match e {
                Ok(e) => {
                    let ev = match e {
                        DiscoveryEvent::TrackerAnnounce { tracker, peers } => Event::TrackerAnnounce { tracker, peers },
                        DiscoveryEvent::TrackerFailure { tracker, error } => Event::TrackerFailure { tracker, error },
                    };
                    if let Err(TrySendError::Full(_)) = host_events.try_send(ev) {
                        shared.events_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) => return,
            },
        }
    }
}

/// Our own address as a discovery channel may echo it back.
fn is_self(addr: SocketAddr, local: SocketAddr) -> bool {
    addr.port() == local.port()
        && (addr.ip() == local.ip() || addr.ip().is_loopback() && local.ip().is_unspecified())
}

/// Starts discovery for a node, logging (not failing) when it cannot run:
/// a node with static peers works without it.
pub(crate) fn start(cfg: DiscoveryConfig) -> Option<Discovery> {
    match Discovery::start(cfg) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, "discovery not started");
            None
        }
    }
}

/// The Mainline DHT crate's error when no DHT node is known to store our
/// address at; its text ends in "at" with nothing after it.
const DHT_NO_NODES: &str = "Failed to find any nodes close to store value at";

/// A discovery error as logs show it: the DHT's truncated "no nodes" error
/// gets its meaning spelled out.
pub(crate) fn explain(error: &str) -> String {
    if error.trim_end().ends_with(DHT_NO_NODES) {
        format!("{error} (no DHT node known: the routing table is empty, so bootstrap failed; offline or UDP blocked?)")
    } else {
        error.to_string()
    }
}

/// True the first time `cond` holds (tracked in `seen`).
fn once(seen: &mut bool, cond: bool) -> bool {
    let first = cond && !*seen;
    *seen |= cond;
    first
}

/// What the discovery part of [`crate::Story`] has logged so far, so that
/// each line says something new: counts when they change, first errors.
#[derive(Debug, Default)]
pub(crate) struct DiscoveryLog {
    trackers: Option<(usize, usize)>,
    dht_state: Option<moss_discovery::stats::DhtState>,
    dht_announced: bool,
    dht_failed: bool,
    dht_peers: u64,
    lan_sending: bool,
    lan_accepted: bool,
    lan_error: bool,
    candidates: u64,
}

impl DiscoveryLog {
    /// A tracker result arrived as a host event: the summary comes from the
    /// stats, so the single result is only debug.
    pub(crate) fn tracker(&mut self, mesh: &str, tracker: &str, result: Result<usize, &String>) {
        match result {
            Ok(peers) => tracing::debug!(mesh, tracker, peers, "tracker announce"),
            Err(e) => tracing::debug!(mesh, tracker, error = %e, "tracker failure"),
        }
    }

    /// Logs what is new in `s`.
    pub(crate) fn stats(&mut self, mesh: &str, s: &moss_discovery::DiscoveryStats) {
        self.trackers(mesh, &s.trackers);
        if let Some(d) = &s.dht {
            self.dht(mesh, d);
        }
        if let Some(l) = &s.lan {
            self.lan(mesh, l);
        }
        if s.candidates_emitted > self.candidates {
            self.candidates = s.candidates_emitted;
            tracing::info!(
                mesh,
                candidates = s.candidates_emitted,
                "discovery: peer addresses to dial so far"
            );
        }
    }

    fn trackers(&mut self, mesh: &str, t: &[moss_discovery::stats::TrackerStats]) {
        if t.is_empty() {
            return;
        }
        let answered = t
            .iter()
            .filter(|t| t.announces_ok > 0 && t.consecutive_failures == 0)
            .count();
        let failing: Vec<_> = t
            .iter()
            .filter(|t| t.consecutive_failures > 0 || !t.supported)
            .collect();
        if answered + failing.len() < t.len() && self.trackers.is_none() {
            // Wait until every tracker has a first result.
            return;
        }
        if self.trackers == Some((answered, failing.len())) {
            return;
        }
        self.trackers = Some((answered, failing.len()));
        let peers: u64 = t.iter().map(|t| t.peers_returned).sum();
        match failing.first() {
            Some(f) => tracing::info!(
                mesh,
                trackers = t.len(),
                answered,
                failing = failing.len(),
                peers,
                first_error = %format!("{}: {}", f.url, explain(f.last_error.as_deref().unwrap_or("unsupported URL"))),
                "trackers"
            ),
            None => tracing::info!(mesh, trackers = t.len(), answered, peers, "trackers"),
        }
    }

    fn dht(&mut self, mesh: &str, d: &moss_discovery::stats::DhtStats) {
        if self.dht_state != Some(d.state) {
            self.dht_state = Some(d.state);
            match d.state {
                moss_discovery::stats::DhtState::Failed => tracing::warn!(
                    mesh,
                    error = %explain(d.last_error.as_deref().unwrap_or("")),
                    "dht: could not start"
                ),
                moss_discovery::stats::DhtState::Running => {
                    tracing::info!(mesh, port = d.local_port.unwrap_or(0), "dht: running")
                }
                state => tracing::debug!(mesh, state = ?state, "dht"),
            }
        }
        if once(&mut self.dht_announced, d.announces_ok > 0) {
            tracing::info!(
                mesh,
                announces_ok = d.announces_ok,
                "dht: announced our address"
            );
        }
        let failed = d.announce_failures > 0 && !self.dht_announced;
        if once(&mut self.dht_failed, failed) {
            tracing::info!(
                mesh,
                announce_failures = d.announce_failures,
                first_error = %explain(d.last_error.as_deref().unwrap_or("")),
                "dht: announce failed"
            );
        }
        if d.peers_found > self.dht_peers {
            self.dht_peers = d.peers_found;
            tracing::info!(
                mesh,
                lookups = d.lookups,
                peers_found = d.peers_found,
                "dht: peers found"
            );
        }
    }

    fn lan(&mut self, mesh: &str, l: &moss_discovery::stats::LanStats) {
        if once(&mut self.lan_sending, l.beacons_sent > 0) {
            tracing::info!(mesh, beacons_sent = l.beacons_sent, "lan: sending beacons");
        }
        if once(&mut self.lan_accepted, l.beacons_accepted > 0) {
            tracing::info!(
                mesh,
                beacons_accepted = l.beacons_accepted,
                "lan: beacons from peers of this mesh"
            );
        }
        if once(
            &mut self.lan_error,
            l.last_error.is_some() || l.send_errors > 0,
        ) {
            tracing::warn!(
                mesh,
                send_errors = l.send_errors,
                first_error = l.last_error.as_deref().unwrap_or("send failed"),
                "lan: beacon problem"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_truncated_dht_error_is_explained() {
        let e = explain("announce_peer: Failed to find any nodes close to store value at");
        assert!(e.contains("bootstrap failed"), "{e}");
        assert_eq!(explain("cannot resolve"), "cannot resolve");
    }

    #[test]
    fn self_addresses_are_recognised() {
        let local: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        assert!(is_self("127.0.0.1:4000".parse().unwrap(), local));
        assert!(!is_self("127.0.0.1:4001".parse().unwrap(), local));
        let bound: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert!(is_self("127.0.0.1:4000".parse().unwrap(), bound));
    }

    #[test]
    fn all_channels_off_means_no_discovery() {
        let c = Config::from_json(
            r#"{"trackers":[],"dht_enabled":false,"lan_discovery_enabled":false}"#,
        )
        .unwrap();
        assert!(config(&c, [0; 20], [0; 32], 1).is_none());
        let c = Config::from_json(
            r#"{"trackers":[],"dht_enabled":false,"lan_interfaces":["127.0.0.1"]}"#,
        )
        .unwrap();
        let d = config(&c, [0; 20], [0; 32], 1).unwrap();
        assert_eq!(d.lan.unwrap().interfaces, vec![Ipv4Addr::LOCALHOST]);
        assert!(d.trackers.is_empty());
    }

    #[test]
    fn omitted_trackers_are_the_built_in_list() {
        let c =
            Config::from_json(r#"{"dht_enabled":false,"lan_discovery_enabled":false}"#).unwrap();
        let d = config(&c, [0; 20], [0; 32], 1).unwrap();
        assert_eq!(d.trackers, moss_discovery::default_trackers());
    }
}
