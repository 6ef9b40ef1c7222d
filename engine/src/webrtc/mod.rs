//! WebRTC DataChannel peers (config block `webrtc`): browser pages, and
//! other native nodes, reach this node over DataChannels negotiated
//! through `moss-signal` servers. A WebRTC thread (`moss-webrtc`) owns the
//! ICE sockets, the signal clients and the sans-IO `moss_webrtc::Endpoint` (feature `webrtc`);
//! the engine thread only moves datagrams: a DataChannel message becomes
//! `Input::Datagram { from: Path::Channel(id) }`, a transmit on a channel
//! path goes to the WebRTC thread. Unsharded engines only (as the TCP
//! carrier): a sharded node keeps its keys in UDP-only shard threads.

#[cfg(feature = "webrtc")]
mod bridge;
#[cfg(not(feature = "webrtc"))]
#[path = "off.rs"]
mod bridge;
#[cfg(feature = "webrtc")]
mod gather;
#[cfg(feature = "webrtc")]
mod signal;
#[cfg(feature = "webrtc")]
mod watch;
#[cfg(feature = "webrtc")]
mod worker;

pub(crate) use bridge::{start, Bridge};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the WebRTC side did not start.
#[derive(Debug, thiserror::Error)]
pub enum WebrtcError {
    /// An ICE socket could not be bound.
    #[error("webrtc: cannot bind ICE socket {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No address to gather ICE candidates on.
    #[error("webrtc: no interface address for ICE candidates")]
    NoAddress,
    /// The CA file of `wss://` signal servers (`webrtc.signal_ca`) is
    /// unreadable or holds no certificate.
    #[error("webrtc.signal_ca: {path}: {reason}")]
    SignalCa {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The STUN client refused its settings (`webrtc.stun`).
    #[cfg(feature = "webrtc")]
    #[error("webrtc.stun: {0}")]
    Stun(#[from] moss_nat::stun::ClientError),
    /// This build has no WebRTC support (the `moss` crate's `webrtc`
    /// feature, which links OpenSSL, is off).
    #[error("webrtc: this build has no WebRTC support; build with the `webrtc` feature (e.g. `cargo build -p moss-gateway --features webrtc`, needs libssl-dev)")]
    NotBuilt,
    /// The poller or a thread could not be made.
    #[error("webrtc: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters of the WebRTC side, shared with the node handle.
#[derive(Debug, Default)]
pub struct WebrtcCounters {
    pub(crate) links_opened: AtomicU64,
    pub(crate) links_failed: AtomicU64,
    pub(crate) links_open: AtomicU64,
    pub(crate) links_refused: AtomicU64,
    pub(crate) links_retried: AtomicU64,
    pub(crate) links_no_session: AtomicU64,
    pub(crate) links_session_ended: AtomicU64,
    pub(crate) stun_mapped: AtomicU64,
    pub(crate) stun_failed: AtomicU64,
    pub(crate) signal_junk: AtomicU64,
    pub(crate) signal_connected: AtomicU64,
    pub(crate) signal_failed: AtomicU64,
    pub(crate) udp_unmatched: AtomicU64,
    pub(crate) text_dropped: AtomicU64,
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) send_dropped: AtomicU64,
}

/// A snapshot of [`WebrtcCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WebrtcStats {
    /// DataChannel links that opened.
    pub links_opened: u64,
    /// Links given up (bad SDP, ICE or DTLS failure, setup timeout).
    pub links_failed: u64,
    /// Links open now.
    pub links_open: u64,
    /// Offers refused at the link limit.
    pub links_refused: u64,
    /// Offers made again to a peer still in the signal room after its link
    /// failed or closed (with backoff, a bounded number of times).
    pub links_retried: u64,
    /// Links the engine closed because no Noise session formed on them
    /// within the handshake timeout (a wrong PSK, a peer that never dials).
    pub links_no_session: u64,
    /// Links the engine closed because their session ended.
    pub links_session_ended: u64,
    /// Server-reflexive addresses learned from STUN servers (`webrtc.stun`).
    pub stun_mapped: u64,
    /// STUN bindings that got no usable answer.
    pub stun_failed: u64,
    /// Signal envelopes not understood or not expected.
    pub signal_junk: u64,
    /// Signal servers connected now.
    pub signal_connected: u64,
    /// Signal connection attempts that failed (refused, TLS, handshake).
    pub signal_failed: u64,
    /// ICE-socket datagrams no link took.
    pub udp_unmatched: u64,
    /// Text (non-Moss) DataChannel messages dropped.
    pub text_dropped: u64,
    /// Datagrams received on DataChannels.
    pub datagrams_in: u64,
    /// Datagrams sent on DataChannels.
    pub datagrams_out: u64,
    /// Datagrams not sent (no open channel, a full queue or channel).
    pub send_dropped: u64,
}

impl WebrtcCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> WebrtcStats {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WebrtcStats {
            links_opened: r(&self.links_opened),
            links_failed: r(&self.links_failed),
            links_open: r(&self.links_open),
            links_refused: r(&self.links_refused),
            links_retried: r(&self.links_retried),
            links_no_session: r(&self.links_no_session),
            links_session_ended: r(&self.links_session_ended),
            stun_mapped: r(&self.stun_mapped),
            stun_failed: r(&self.stun_failed),
            signal_junk: r(&self.signal_junk),
            signal_connected: r(&self.signal_connected),
            signal_failed: r(&self.signal_failed),
            udp_unmatched: r(&self.udp_unmatched),
            text_dropped: r(&self.text_dropped),
            datagrams_in: r(&self.datagrams_in),
            datagrams_out: r(&self.datagrams_out),
            send_dropped: r(&self.send_dropped),
        }
    }
}
