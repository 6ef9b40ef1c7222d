//! Serverless peer discovery for Moss: BitTorrent trackers, Mainline DHT and LAN beacons produce candidate peer addresses.
//!
//! The crate has two layers:
//!
//! * sans-IO codecs and state machines ([`bencode`], [`udp_tracker`],
//!   [`http_tracker`], [`beacon`], [`tracker_url`], [`peer_id`]): pure, total
//!   decoders (any byte string gives a value or an error, never a panic, never
//!   an allocation larger than the input justifies);
//! * a runner ([`Discovery`]) that drives them on its own threads and sockets
//!   and hands the engine a bounded channel of [`Candidate`] addresses.
//!
//! The wire format of the LAN beacon is documented in `PROTOCOL.md` next to
//! this crate's `Cargo.toml`.

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
