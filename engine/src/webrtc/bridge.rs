//! The real WebRTC side (feature `webrtc`): the engine thread's [`Bridge`]
//! to the `moss-webrtc` thread.

use super::{signal, worker, WebrtcCounters, WebrtcError};

use crate::backend::Wakeup;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use moss_mesh::{Input, Node as Core, Path, Transmit};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Items queued each way between the engine and the WebRTC thread; a full
/// queue drops and counts.
const QUEUE: usize = 16 * 1024;

/// Items from the WebRTC thread the engine works per round.
const PER_ROUND: usize = 256;

/// What the WebRTC thread hands the engine.
pub(crate) enum FromRtc {
    /// A DataChannel opened; the offerer dials the session on it.
    Opened { channel: u64, offerer: bool },
    /// A datagram on a channel.
    Datagram { channel: u64, bytes: Vec<u8> },
    /// A channel is gone.
    Closed { channel: u64 },
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
        crate::nat::interface_ips()
            .into_iter()
            .filter(IpAddr::is_ipv4)
            .collect()
    } else {
        cfg.ice_ips.iter().filter_map(|s| s.parse().ok()).collect()
    };
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, cfg.ice_port))
        .collect()
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
        let mut s = mio::net::UdpSocket::bind(*a)
            .map_err(|source| WebrtcError::Bind { addr: *a, source })?;
        let local = s.local_addr()?;
        poll.registry()
            .register(&mut s, mio::Token(i), mio::Interest::READABLE)?;
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
            match self
                .to_rtc
                .try_send((channel, std::mem::take(&mut t.bytes)))
            {
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
