//! WebRTC DataChannel peers (config block `webrtc`): browser pages, and
//! other native nodes, reach this node over DataChannels negotiated
//! through `moss-signal` servers. A WebRTC thread (`moss-webrtc`) owns the
//! ICE sockets, the signal clients and the sans-IO [`moss_webrtc::Endpoint`];
//! the engine thread only moves datagrams: a DataChannel message becomes
//! `Input::Datagram { from: Path::Channel(id) }`, a transmit on a channel
//! path goes to the WebRTC thread. Unsharded engines only (as the TCP
//! carrier): a sharded node keeps its keys in UDP-only shard threads.

mod signal;
mod worker;

use crate::backend::Wakeup;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use moss_mesh::{Input, Node as Core, Path, Transmit};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Items queued each way between the engine and the WebRTC thread; a full
/// queue drops and counts.
const QUEUE: usize = 16 * 1024;

/// Items from the WebRTC thread the engine works per round.
const PER_ROUND: usize = 256;

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
    #[error("webrtc: no IPv4 interface address for ICE candidates")]
    NoAddress,
    /// The poller or a thread could not be made.
    #[error("webrtc: {0}")]
    Io(#[from] std::io::Error),
}

/// What the WebRTC thread hands the engine.
pub(crate) enum FromRtc {
    /// A DataChannel opened; the offerer dials the session on it.
    Opened { channel: u64, offerer: bool },
    /// A datagram on a channel.
    Datagram { channel: u64, bytes: Vec<u8> },
    /// A channel is gone.
    Closed { channel: u64 },
}

/// Counters of the WebRTC side, shared with the node handle.
#[derive(Debug, Default)]
pub struct WebrtcCounters {
    pub(crate) links_opened: AtomicU64,
    pub(crate) links_failed: AtomicU64,
    pub(crate) links_open: AtomicU64,
    pub(crate) links_refused: AtomicU64,
    pub(crate) signal_junk: AtomicU64,
    pub(crate) signal_connected: AtomicU64,
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
    /// Signal envelopes not understood or not expected.
    pub signal_junk: u64,
    /// Signal servers connected now.
    pub signal_connected: u64,
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
            signal_junk: r(&self.signal_junk),
            signal_connected: r(&self.signal_connected),
            udp_unmatched: r(&self.udp_unmatched),
            text_dropped: r(&self.text_dropped),
            datagrams_in: r(&self.datagrams_in),
            datagrams_out: r(&self.datagrams_out),
            send_dropped: r(&self.send_dropped),
        }
    }
}

/// The engine thread's end of the WebRTC side.
pub(crate) struct Bridge {
    from_rtc: Receiver<FromRtc>,
    to_rtc: Sender<(u64, Vec<u8>)>,
    waker: Arc<mio::Waker>,
    counters: Arc<WebrtcCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The ICE socket addresses: each chosen IPv4 address on `port`.
fn ice_addrs(cfg: &moss_mesh::config::WebrtcConfig) -> Vec<SocketAddr> {
    let ips: Vec<IpAddr> = if cfg.ice_ips.is_empty() {
        crate::nat::interface_ips().into_iter().filter(IpAddr::is_ipv4).collect()
    } else {
        cfg.ice_ips.iter().filter_map(|s| s.parse().ok()).collect()
    };
    ips.into_iter().map(|ip| SocketAddr::new(ip, cfg.ice_port)).collect()
}

/// Starts the WebRTC side of a node whose signal id is `id` (its public
/// key in hex) in `room` (its mesh infohash in hex); `engine` wakes the
/// engine thread when channel input is queued.
pub(crate) fn start(
    cfg: &moss_mesh::config::WebrtcConfig,
    id: String,
    room: String,
    engine: Arc<dyn Wakeup>,
) -> Result<Bridge, WebrtcError> {
    let addrs = ice_addrs(cfg);
    if addrs.is_empty() {
        return Err(WebrtcError::NoAddress);
    }
    let poll = mio::Poll::new()?;
    let waker = Arc::new(mio::Waker::new(poll.registry(), worker::WAKE)?);
    let mut sockets = Vec::with_capacity(addrs.len());
    for (i, a) in addrs.iter().enumerate() {
        let mut s = mio::net::UdpSocket::bind(*a).map_err(|source| WebrtcError::Bind { addr: *a, source })?;
        let local = s.local_addr()?;
        poll.registry().register(&mut s, mio::Token(i), mio::Interest::READABLE)?;
        sockets.push((s, local));
    }
    let counters = Arc::new(WebrtcCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (to_engine, from_rtc) = bounded(QUEUE);
    let (to_rtc, from_engine) = bounded(QUEUE);
    let (signal_tx, signal_rx) = bounded(1024);
    let mut clients = Vec::new();
    for (server, url) in cfg.signal.iter().enumerate() {
        clients.push(signal::Client::start(
            server,
            url,
            &room,
            &id,
            signal_tx.clone(),
            waker.clone(),
            stop.clone(),
            counters.clone(),
        )?);
    }
    tracing::info!(
        ice = ?sockets.iter().map(|(_, a)| *a).collect::<Vec<_>>(),
        signal = ?cfg.signal,
        "webrtc: accepting DataChannel peers"
    );
    let candidates = sockets.iter().map(|(_, a)| *a).collect();
    let w = worker::Worker {
        poll,
        sockets,
        endpoint: moss_webrtc::Endpoint::new(id, candidates),
        clients,
        signal_rx,
        from_engine,
        to_engine,
        engine,
        counters: counters.clone(),
        stop: stop.clone(),
        waker: waker.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("moss-webrtc".into())
        .spawn(move || w.run())?;
    Ok(Bridge {
        from_rtc,
        to_rtc,
        waker,
        counters,
        stop,
        thread: Some(thread),
    })
}

impl Bridge {
    /// The counters (shared with the node handle).
    pub fn counters(&self) -> Arc<WebrtcCounters> {
        self.counters.clone()
    }

    /// Feeds the node what the WebRTC thread queued; true if more may wait.
    pub fn receive(&mut self, core: &mut Core, now: Duration) -> bool {
        for _ in 0..PER_ROUND {
            let Ok(m) = self.from_rtc.try_recv() else {
                return false;
            };
            match m {
                FromRtc::Opened { channel, offerer } => {
                    if offerer {
                        core.connect_path(Path::Channel(channel));
                    }
                }
                FromRtc::Datagram { channel, mut bytes } => core.handle(
                    now,
                    Input::Datagram {
                        from: Path::Channel(channel),
                        bytes: &mut bytes,
                    },
                ),
                FromRtc::Closed { channel } => core.close_path(Path::Channel(channel)),
            }
        }
        true
    }

    /// Takes the transmits on channel paths out of `out` and queues them
    /// for the WebRTC thread.
    pub fn send(&mut self, out: &mut Vec<Transmit>) {
        let mut any = false;
        out.retain_mut(|t| {
            let Path::Channel(channel) = t.to else {
                return true;
            };
            match self.to_rtc.try_send((channel, std::mem::take(&mut t.bytes))) {
                Ok(()) => any = true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.counters.send_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            false
        });
        if any {
            let _ = self.waker.wake();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
