//! Listening for the gateway's announcements (NAT-PMP public-address
//! notices, PCP ANNOUNCE) on 224.0.0.1:5350, and the [`Signal`] that wakes
//! the port-mapping thread: the node stopping, or an announcement to react
//! to (at most one per [`MIN_GAP`]; those heard in between are merged into
//! one, so none is lost).

use super::PortmapStatus;
use moss_nat::announce::{Announcement, Reactions, CLIENT_PORT, GROUP, MIN_GAP};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a blocked receive lasts before the listener looks at the stop
/// flag (a safety net: `stop` shuts the socket down, which on Linux ends a
/// blocked receive at once).
const RECV_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause after a receive error other than a timeout (no busy loop).
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// What [`Signal::wait`] woke up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Woke {
    /// The node is stopping.
    Stop,
    /// The gateway announced something; react now.
    Heard(Announcement),
    /// The wait ran out.
    Timeout,
}

struct State {
    stop: bool,
    heard: Option<Announcement>,
    reactions: Reactions,
}

/// The stop flag and the pending announcement, shared by the port-mapping
/// thread, its listener and [`super::Portmap::stop`].
pub(super) struct Signal {
    state: Mutex<State>,
    cv: Condvar,
}

impl Signal {
    /// Not stopping, nothing heard.
    pub(super) fn new() -> Self {
        Signal {
            state: Mutex::new(State {
                stop: false,
                heard: None,
                reactions: Reactions::new(MIN_GAP),
            }),
            cv: Condvar::new(),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// Tells every waiter that the node stops.
    pub(super) fn stop(&self) {
        self.with(|s| s.stop = true);
        self.cv.notify_all();
    }

    /// True once [`Signal::stop`] ran.
    pub(super) fn stopping(&self) -> bool {
        self.with(|s| s.stop)
    }

    /// Records an announcement: it replaces a pending one, except that a
    /// pending external address is kept when the new one names none.
    fn heard(&self, a: Announcement) {
        self.with(|s| {
            s.heard = match (s.heard, a) {
                (
                    Some(old @ Announcement::PublicAddress { .. }),
                    Announcement::Restarted { .. },
                ) => Some(old),
                _ => Some(a),
            }
        });
        self.cv.notify_all();
    }

    /// The pending announcement, if the rate limit lets the thread react now.
    pub(super) fn take(&self, now: Instant) -> Option<Announcement> {
        self.with(|s| {
            if s.heard.is_some() && s.reactions.try_react(now) {
                s.heard.take()
            } else {
                None
            }
        })
    }

    /// Waits `d` at most: returns early when the node stops or when an
    /// announcement may be reacted to (taking it).
    pub(super) fn wait(&self, d: Duration) -> Woke {
        let end = Instant::now() + d;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let now = Instant::now();
            if s.stop {
                return Woke::Stop;
            }
            if s.heard.is_some() && s.reactions.try_react(now) {
                if let Some(a) = s.heard.take() {
                    return Woke::Heard(a);
                }
            }
            if now >= end {
                return Woke::Timeout;
            }
            let until = match s.heard.and(s.reactions.next_allowed()) {
                Some(t) => t.min(end),
                None => end,
            };
            s = match self
                .cv
                .wait_timeout(s, until.saturating_duration_since(now))
            {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

/// The running listener: a thread blocked on the announcement socket.
pub(super) struct Listener {
    signal: Arc<Signal>,
    socket: Arc<UdpSocket>,
    thread: Option<JoinHandle<()>>,
}

/// Opens 0.0.0.0:5350 (shared with the other nodes of this host) joined to
/// 224.0.0.1 on the interface of `local_ip`, and starts the thread that
/// hands `gateway`'s announcements to `signal`. Datagrams from anyone else,
/// or that announce nothing, are counted and dropped.
pub(super) fn listen(
    gateway: Ipv4Addr,
    local_ip: Ipv4Addr,
    signal: Arc<Signal>,
    status: Arc<Mutex<PortmapStatus>>,
) -> std::io::Result<Listener> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, CLIENT_PORT)).into())?;
    s.join_multicast_v4(&GROUP, &local_ip)?;
    s.set_read_timeout(Some(RECV_TIMEOUT))?;
    let socket = Arc::new(UdpSocket::from(s));
    let sock = socket.clone();
    let stop = signal.clone();
    let thread = std::thread::Builder::new()
        .name("moss-announce".into())
        .spawn(move || {
            let mut buf = [0u8; moss_nat::pcp::MAX_MESSAGE + 1];
            while !signal.stopping() {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let a = Announcement::accept(from, gateway, &buf[..n]);
                        if let Ok(mut st) = status.lock() {
                            match a {
                                Ok(_) => st.announcements += 1,
                                Err(_) => st.announcements_ignored += 1,
                            }
                        }
                        match a {
                            Ok(a) => {
                                tracing::info!(?a, "port mapping: the gateway announced");
                                signal.heard(a);
                            }
                            Err(e) => tracing::debug!(%from, error = %e, "announcement dropped"),
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => std::thread::sleep(ERROR_PAUSE),
                }
            }
        })?;
    Ok(Listener {
        signal: stop,
        socket,
        thread: Some(thread),
    })
}

impl Listener {
    /// Ends the thread: sets the stop flag, shuts the socket down to end a
    /// blocked receive, then joins.
    pub(super) fn stop(&mut self) {
        self.signal.stop();
        let _ = SockRef::from(&*self.socket).shutdown(Shutdown::Read);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}
