//! Serverless peer discovery for Moss: BitTorrent trackers, Mainline DHT and LAN beacons produce candidate peer addresses.
//!
//! A [`DiscoveryConfig`] names the mesh's infohash and listen port and the
//! channels to run ([`Discovery::start`] runs them on worker threads and
//! reports [`DiscoveryEvent`]s). LAN beacons are authenticated with the
//! mesh's beacon key, so a beacon of another mesh is refused:
//!
//! ```
//! use moss_discovery::beacon::{self, Beacon, BeaconError};
//! use moss_discovery::{default_trackers, DiscoveryConfig};
//!
//! let config = DiscoveryConfig::new([0x11; 20], 41000);
//! assert_eq!(config.trackers, default_trackers());
//! assert!(config.dht.is_none() && config.lan.is_none(), "opt-in channels");
//!
//! let ours = Beacon { listen_port: 41000, instance_id: [7; 8] };
//! let bytes = beacon::encode(&[1; 32], &ours);
//! assert_eq!(beacon::decode(&[1; 32], &bytes), Ok(ours));
//! assert_eq!(beacon::decode(&[2; 32], &bytes), Err(BeaconError::ForeignMesh));
//! ```
#![warn(missing_docs)]

pub mod beacon;
pub mod bencode;
mod clock;
pub mod compact;
pub mod dht;
pub mod http_tracker;
mod lan;
pub mod peer_id;
mod rng;
mod runner;
mod sink;
pub mod stats;
pub mod tracker_url;
pub mod udp_tracker;
mod workers;

pub use runner::{
    default_trackers, Candidate, DhtConfig, Discovery, DiscoveryConfig, DiscoveryError,
    DiscoveryEvent, LanConfig, Source, StopReport,
};
pub use stats::DiscoveryStats;
