//! The real WebRTC side (feature `webrtc`): the engine thread's [`Bridge`]
//! to the `moss-webrtc` thread.

use super::watch::{Unused, Watch, SLACK};
use super::{gather, signal, worker, WebrtcCounters, WebrtcError};

use crate::backend::Wakeup;
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use moss_mesh::{Input, Node as Core, Path, Transmit};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// What the engine hands the WebRTC thread.
pub(crate) enum ToRtc {
    /// A node datagram for a channel.
    Datagram { channel: u64, bytes: Vec<u8> },
    /// Close the link of a channel the node has no session on.
    Close { channel: u64 },
}

/// The engine thread's end of the WebRTC side.
pub(crate) struct Bridge {
    from_rtc: Receiver<FromRtc>,
    to_rtc: Sender<ToRtc>,
    watch: Watch,
    waker: Arc<mio::Waker>,
    counters: Arc<WebrtcCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The ICE socket addresses on `port`: the configured ones (`explicit`),
/// or every interface address that is up, IPv6 link-local excluded (its
/// scope cannot travel in a candidate).
fn ice_addrs(cfg: &moss_mesh::config::WebrtcConfig) -> (Vec<SocketAddr>, bool) {
    let explicit = !cfg.ice_ips.is_empty();
    let ips: Vec<IpAddr> = if explicit {
        cfg.ice_ips.iter().filter_map(|s| s.parse().ok()).collect()
    } else {
        crate::nat::interface_ips()
            .into_iter()
            .filter(|ip| match ip {
                IpAddr::V4(_) => true,
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            })
            .collect()
    };
    let addrs = ips
        .into_iter()
        .map(|ip| SocketAddr::new(ip, cfg.ice_port))
        .collect();
    (addrs, explicit)
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
    let (addrs, explicit) = ice_addrs(cfg);
    let poll = mio::Poll::new()?;
    let waker = Arc::new(mio::Waker::new(poll.registry(), worker::WAKE)?);
    let mut sockets = Vec::with_capacity(addrs.len());
    for a in &addrs {
        let mut s = match mio::net::UdpSocket::bind(*a) {
            Ok(s) => s,
            // An address the host lists but will not bind (a tentative
            // IPv6 address) costs its candidate, unless it was asked for.
            Err(source) if !explicit => {
                tracing::debug!(addr = %a, error = %source, "webrtc: ICE address skipped");
                continue;
            }
            Err(source) => return Err(WebrtcError::Bind { addr: *a, source }),
        };
        let local = s.local_addr()?;
        poll.registry()
            .register(&mut s, mio::Token(sockets.len()), mio::Interest::READABLE)?;
        sockets.push((s, local));
    }
    if sockets.is_empty() {
        return Err(WebrtcError::NoAddress);
    }
    let locals: Vec<SocketAddr> = sockets.iter().map(|(_, a)| *a).collect();
    let gather = gather::Gather::start(Instant::now(), &locals, gather::resolve(&cfg.stun))?;
    let counters = Arc::new(WebrtcCounters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (to_engine, from_rtc) = bounded(QUEUE);
    let (to_rtc, from_engine) = bounded(QUEUE);
    let (signal_tx, signal_rx) = bounded(1024);
    let tls = signal::tls(&cfg.signal_ca)?;
    let mut clients = Vec::new();
    for (server, url) in cfg.signal.iter().enumerate() {
        clients.push(signal::Client::start(
            server,
            url,
            &room,
            &id,
            tls.clone(),
            signal_tx.clone(),
            waker.clone(),
            stop.clone(),
            counters.clone(),
        )?);
    }
    tracing::info!(
        ice = ?locals,
        signal = ?cfg.signal,
        stun = ?cfg.stun,
        "webrtc: accepting DataChannel peers"
    );
    let w = worker::Worker {
        poll,
        sockets,
        gather,
        endpoint: moss_webrtc::Endpoint::new(id, locals),
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
        watch: Watch::default(),
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

    /// Feeds the node what the WebRTC thread queued, and closes the links
    /// the node has no use for; true if more may wait.
    pub fn receive(&mut self, core: &mut Core, now: Duration) -> bool {
        let more = self.feed(core, now);
        self.close_unused(core, now);
        more
    }

    fn feed(&mut self, core: &mut Core, now: Duration) -> bool {
        for _ in 0..PER_ROUND {
            let Ok(m) = self.from_rtc.try_recv() else {
                return false;
            };
            match m {
                FromRtc::Opened { channel, offerer } => {
                    self.watch.opened(channel, now);
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
                FromRtc::Closed { channel } => {
                    self.watch.closed(channel);
                    core.close_path(Path::Channel(channel));
                }
            }
        }
        true
    }

    /// Tells the WebRTC thread to close every link on which no session
    /// formed within the node's handshake timeout (plus [`SLACK`]), and
    /// every link whose session ended: such a link holds one of the
    /// endpoint's link slots for nothing.
    fn close_unused(&mut self, core: &Core, now: Duration) {
        let secs = core.config().security.handshake_timeout_sec;
        let bound = Duration::from_secs(u64::from(secs)) + SLACK;
        let unused = self.watch.check(now, bound, || {
            core.peers()
                .into_iter()
                .filter_map(|p| match p.addr {
                    Path::Channel(c) => Some(c),
                    _ => None,
                })
                .collect()
        });
        if unused.is_empty() {
            return;
        }
        for (channel, why) in unused {
            // A full queue leaves the link open: it is watched again and
            // closed by a later check (counted then).
            if self.to_rtc.try_send(ToRtc::Close { channel }).is_err() {
                self.watch.opened(channel, Duration::ZERO);
                continue;
            }
            let counter = match why {
                Unused::NoSession => &self.counters.links_no_session,
                Unused::SessionEnded => &self.counters.links_session_ended,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                channel,
                ?why,
                "webrtc: closing a link the node has no use for"
            );
        }
        let _ = self.waker.wake();
    }

    /// Takes the transmits on channel paths out of `out` and queues them
    /// for the WebRTC thread.
    pub fn send(&mut self, out: &mut Vec<Transmit>) {
        let mut any = false;
        out.retain_mut(|t| {
            let Path::Channel(channel) = t.to else {
                return true;
            };
            match self.to_rtc.try_send(ToRtc::Datagram {
                channel,
                bytes: std::mem::take(&mut t.bytes),
            }) {
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
