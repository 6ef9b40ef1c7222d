//! Moss NAT traversal, sans-IO: the STUN codec and client, the NAT
//! classifier, the hole-punch planner, NAT-PMP, PCP and UPnP IGD codecs with
//! a shared port-mapping client and the gateways' announcements, and the
//! relay table. No sockets, no clock, no threads: the caller passes time and
//! randomness in and moves the datagrams.

pub mod announce;
pub mod classify;
pub mod natpmp;
pub mod pcp;
pub mod portmap;
pub mod punch;
pub mod relay;
pub mod stun;
pub mod upnp;

/// The RNG traits the clients take (re-exported so drivers need no extra dependency).
pub use rand_core;
