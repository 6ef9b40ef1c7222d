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

#[cfg(test)]
mod tests {
    use super::*;

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
