//! Serverless peer discovery for Moss: BitTorrent trackers, Mainline DHT and LAN beacons produce candidate peer addresses.
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
