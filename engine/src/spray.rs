//! The host side of the birthday spray (`moss_mesh::nat` spray module):
//! the sockets a node behind a symmetric NAT opens toward a port-filtering
//! cone. Each [`SprayOrder`] opens its sockets (each gets a fresh random
//! port from the NAT), sends the node's message 1 from each, and keeps
//! them one round; the first socket that hears from the peer's IP is kept
//! as the session's path, `Path::Channel(id)` with `id` from
//! [`SPRAY_CHANNEL_BASE`] up, and the round's other sockets close at once.
//! A kept socket closes after [`KEPT_IDLE`] without traffic either way
//! (the session ended or moved), and the node hears that its path closed.
//! Datagrams from any other IP are dropped and counted. The sockets are
//! worked on the engine thread; the TCP carrier's watcher thread (started
//! at the first order, so nodes that never spray have none) only wakes the
//! engine when one is readable.
//!
//! The same watcher serves the fresh probe sockets of the node's filtering
//! tests ([`FreshSocket`]): one socket per test, ids from
//! [`FRESH_SOCKET_BASE`], open for the order's hold; what they receive goes
//! to `Node::fresh_datagram`.

use crate::backend::Wakeup;
use crate::tcp::watch::{Ready, Watcher};
use moss_mesh::nat::{FreshSocket, SprayOrder, FRESH_SOCKET_BASE, SPRAY_CHANNEL_BASE};
use moss_mesh::{Input, Node as Core, Path, Transmit};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// A kept socket without traffic for this long is closed.
pub const KEPT_IDLE: Duration = Duration::from_secs(30);
/// Kept sockets at most (one per punched peer).
pub const MAX_KEPT: usize = 64;
/// Datagrams read from one socket per engine round.
const READS_PER_SOCKET: usize = 16;

/// What the spray sockets did, summed over the node's life (in
/// `/api/stats` as `spray`, and logged at `debug` as each round closes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SprayStats {
    /// Socket rounds run.
    pub rounds: u64,
    /// Sockets opened.
    pub sockets_opened: u64,
    /// Sockets that could not be opened or registered.
    pub socket_errors: u64,
    /// Message 1 copies sent from round sockets.
    pub sent: u64,
    /// Sends that failed.
    pub send_errors: u64,
    /// Rounds whose socket heard from the peer (kept as a channel).
    pub won: u64,
    /// Datagrams from an IP other than the order's peer (dropped).
    pub foreign: u64,
    /// Datagrams received on kept sockets.
    pub datagrams_in: u64,
    /// Datagrams sent on kept sockets.
    pub datagrams_out: u64,
    /// Transmits to a spray channel that is no longer open.
    pub unsent: u64,
    /// Kept sockets closed after 30 s without traffic either way.
    pub expired: u64,
    /// Longest a round waited between the node queueing it and the host
    /// running it, ms.
    pub order_late_ms_max: u64,
    /// Longest the host took to open a round's sockets and send from
    /// each, ms.
    pub open_ms_max: u64,
    /// Fresh probe sockets opened (filtering tests).
    pub probe_sockets: u64,
    /// Datagrams sent from fresh probe sockets.
    pub probe_sent: u64,
    /// Datagrams received on fresh probe sockets (handed to the node).
    pub probe_in: u64,
}

struct Sock {
    sock: mio::net::UdpSocket,
    id: u64,
}

/// One order's sockets, open until `until`.
struct Round {
    peer: IpAddr,
    until: Duration,
    socks: Vec<Sock>,
}

/// A socket that heard back: the session's path.
struct Kept {
    sock: mio::net::UdpSocket,
    remote: SocketAddr,
    last: Duration,
}

/// A fresh probe socket, open until `until`.
struct Fresh {
    sock: mio::net::UdpSocket,
    id: u64,
    until: Duration,
}

/// The watcher, started at the first order.
struct Watch {
    registry: mio::Registry,
    ready: Arc<Ready>,
    _watcher: Watcher,
}

/// The node's spray sockets.
pub(crate) struct Spray {
    engine: Arc<dyn Wakeup>,
    /// The watcher's wake-ups, on a sharded engine.
    wake_rx: Option<crossbeam_channel::Receiver<()>>,
    bind: IpAddr,
    watch: Option<Watch>,
    rounds: Vec<Round>,
    kept: HashMap<u64, Kept>,
    fresh: Vec<Fresh>,
    next_id: u64,
    stats: SprayStats,
    tokens: Vec<mio::Token>,
    /// Sockets with input left after a bounded read.
    hot: Vec<u64>,
    buf: Vec<u8>,
}

/// Receive buffer size: the largest UDP datagram.
const RECV_BUF: usize = 65536;

fn token(id: u64) -> mio::Token {
    mio::Token((id - SPRAY_CHANNEL_BASE) as usize)
}

impl Spray {
    /// Spray sockets bound like the node's own socket (`bound`'s IP),
    /// waking the engine of `transport`.
    pub fn new(bound: SocketAddr, transport: &crate::io::Transport) -> Self {
        let (engine, wake_rx) = crate::tcp::core_waker(transport);
        Spray {
            engine,
            wake_rx,
            bind: bound.ip(),
            watch: None,
            rounds: Vec::new(),
            kept: HashMap::new(),
            fresh: Vec::new(),
            next_id: SPRAY_CHANNEL_BASE,
            stats: SprayStats::default(),
            tokens: Vec::new(),
            hot: Vec::new(),
            // Allocated on the first spray read: most nodes never spray.
            buf: Vec::new(),
        }
    }

    /// The registry of the watcher (started on first use).
    fn registry(&mut self) -> Option<mio::Registry> {
        let r = match self.watch() {
            Ok(w) => w.registry.try_clone(),
            Err(e) => Err(e),
        };
        match r {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "spray: no watcher");
                self.stats.socket_errors += 1;
                None
            }
        }
    }

    /// A new socket bound to `bind`, registered with the watcher as `id`
    /// (`None`, counted, when either fails).
    fn open_socket(
        &mut self,
        bind: SocketAddr,
        registry: &mio::Registry,
        id: u64,
    ) -> Option<mio::net::UdpSocket> {
        let opened = mio::net::UdpSocket::bind(bind).and_then(|mut s| {
            registry.register(&mut s, token(id), mio::Interest::READABLE)?;
            Ok(s)
        });
        match opened {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(error = %e, "spray: socket not opened");
                self.stats.socket_errors += 1;
                None
            }
        }
    }

    /// Opens one fresh probe socket and sends its datagrams.
    pub fn open_fresh(&mut self, o: FreshSocket, now: Duration) {
        let Some(&(first, _)) = o.sends.first() else {
            return;
        };
        if o.id < FRESH_SOCKET_BASE {
            return;
        }
        let Some(registry) = self.registry() else {
            return;
        };
        let Some(sock) = self.open_socket(self.bind_for(first), &registry, o.id) else {
            return;
        };
        self.stats.probe_sockets += 1;
        for (to, d) in &o.sends {
            match sock.send_to(d, *to) {
                Ok(_) => self.stats.probe_sent += 1,
                Err(_) => self.stats.send_errors += 1,
            }
        }
        self.fresh.push(Fresh {
            sock,
            id: o.id,
            until: now + o.hold,
        });
    }

    /// Reads fresh probe socket `id` into the node (bounded).
    fn read_fresh(&mut self, id: u64, core: &mut Core, now: Duration) {
        if self.buf.is_empty() {
            self.buf = vec![0; RECV_BUF];
        }
        let Some(i) = self.fresh.iter().position(|f| f.id == id) else {
            return;
        };
        for n in 0..READS_PER_SOCKET {
            let (len, from) = match self.fresh[i].sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(_) => return,
            };
            self.stats.probe_in += 1;
            core.fresh_datagram(now, id, from, &mut self.buf[..len]);
            if n + 1 == READS_PER_SOCKET {
                self.hot.push(id);
            }
        }
    }

    fn watch(&mut self) -> io::Result<&Watch> {
        if self.watch.is_none() {
            let poll = mio::Poll::new()?;
            let registry = poll.registry().try_clone()?;
            let ready = Arc::new(Ready::default());
            let watcher = Watcher::start(poll, ready.clone(), self.engine.clone())?;
            self.watch = Some(Watch {
                registry,
                ready,
                _watcher: watcher,
            });
        }
        self.watch
            .as_ref()
            .ok_or_else(|| io::Error::other("spray watcher missing"))
    }

    fn bind_for(&self, to: SocketAddr) -> SocketAddr {
        let ip = match (self.bind, to.ip()) {
            (ip, t) if ip.is_ipv4() == t.is_ipv4() => ip,
            (_, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            (_, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        SocketAddr::new(ip, 0)
    }

    /// Runs one order: opens its sockets and sends its datagram from each.
    pub fn order(&mut self, o: SprayOrder, now: Duration) {
        let bind = self.bind_for(o.to);
        let Some(registry) = self.registry() else {
            return;
        };
        self.stats.rounds += 1;
        let late = now.saturating_sub(o.queued).as_millis() as u64;
        self.stats.order_late_ms_max = self.stats.order_late_ms_max.max(late);
        let started = std::time::Instant::now();
        let mut socks = Vec::with_capacity(usize::from(o.sockets));
        for _ in 0..o.sockets {
            let id = self.next_id;
            // Out of descriptors or ports: the round runs with fewer.
            let Some(sock) = self.open_socket(bind, &registry, id) else {
                break;
            };
            self.next_id += 1;
            self.stats.sockets_opened += 1;
            match sock.send_to(&o.datagram, o.to) {
                Ok(_) => self.stats.sent += 1,
                Err(_) => self.stats.send_errors += 1,
            }
            socks.push(Sock { sock, id });
        }
        let took = started.elapsed().as_millis() as u64;
        self.stats.open_ms_max = self.stats.open_ms_max.max(took);
        tracing::debug!(to = %o.to, sockets = socks.len(), "spray: round");
        self.rounds.push(Round {
            peer: o.to.ip(),
            until: now + o.hold,
            socks,
        });
    }

    fn close(&self, mut s: mio::net::UdpSocket) {
        if let Some(w) = &self.watch {
            let _ = w.registry.deregister(&mut s);
        }
    }

    /// Runs the node's new orders and closes what is due.
    pub fn run(&mut self, core: &mut Core, now: Duration) {
        while let Some(o) = core.poll_spray() {
            self.order(o, now);
        }
        while let Some(o) = core.poll_fresh_socket() {
            self.open_fresh(o, now);
        }
        if self.active() {
            self.tick(core, now);
        }
    }

    /// Reads what the sockets received into the node; true if more waits.
    pub fn receive(&mut self, core: &mut Core, now: Duration) -> bool {
        if let Some(rx) = &self.wake_rx {
            while rx.try_recv().is_ok() {}
        }
        let Some(w) = &self.watch else {
            return false;
        };
        let mut ids: Vec<u64> = std::mem::take(&mut self.hot);
        w.ready.take(&mut self.tokens);
        ids.extend(
            self.tokens
                .drain(..)
                .map(|t| t.0 as u64 + SPRAY_CHANNEL_BASE),
        );
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if id >= FRESH_SOCKET_BASE {
                self.read_fresh(id, core, now);
            } else {
                self.read(id, core, now);
            }
        }
        !self.hot.is_empty()
    }

    /// Reads socket `id` (a round's or a kept one), at most
    /// [`READS_PER_SOCKET`] datagrams.
    fn read(&mut self, id: u64, core: &mut Core, now: Duration) {
        if !self.kept.contains_key(&id) && !self.win(id, now) {
            return;
        }
        if self.buf.is_empty() {
            self.buf = vec![0; RECV_BUF];
        }
        for n in 0..READS_PER_SOCKET {
            let Some(k) = self.kept.get_mut(&id) else {
                return;
            };
            let (len, from) = match k.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(_) => return,
            };
            if from.ip() != k.remote.ip() {
                self.stats.foreign += 1;
                continue;
            }
            k.remote = from;
            k.last = now;
            self.stats.datagrams_in += 1;
            core.handle(
                now,
                Input::Datagram {
                    from: Path::Channel(id),
                    bytes: &mut self.buf[..len],
                },
            );
            if n + 1 == READS_PER_SOCKET {
                self.hot.push(id);
            }
        }
    }

    /// Socket `id` of a round became readable: if a datagram from the
    /// round's peer waits, it is kept and the round's others close. False
    /// when the socket is no round's or heard only strangers.
    fn win(&mut self, id: u64, now: Duration) -> bool {
        let Some(ri) = self
            .rounds
            .iter()
            .position(|r| r.socks.iter().any(|s| s.id == id))
        else {
            return false;
        };
        let peer = self.rounds[ri].peer;
        let Some(si) = self.rounds[ri].socks.iter().position(|s| s.id == id) else {
            return false;
        };
        let from = loop {
            match self.rounds[ri].socks[si].sock.peek_from(&mut self.buf) {
                Ok((_, from)) if from.ip() == peer => break from,
                Ok(_) => {
                    // A stranger's datagram: dropped, counted.
                    let _ = self.rounds[ri].socks[si].sock.recv_from(&mut self.buf);
                    self.stats.foreign += 1;
                }
                Err(_) => return false,
            }
        };
        if self.kept.len() >= MAX_KEPT {
            return false;
        }
        let round = self.rounds.swap_remove(ri);
        for s in round.socks {
            if s.id == id {
                self.kept.insert(
                    id,
                    Kept {
                        sock: s.sock,
                        remote: from,
                        last: now,
                    },
                );
            } else {
                self.close(s.sock);
            }
        }
        self.stats.won += 1;
        tracing::debug!(%from, channel = id, "spray: a socket heard back");
        true
    }

    /// Takes the transmits on spray channels out of `out` and sends them
    /// on their kept sockets.
    pub fn send(&mut self, out: &mut Vec<Transmit>, now: Duration) {
        if self.kept.is_empty() && self.rounds.is_empty() {
            return;
        }
        let stats = &mut self.stats;
        let kept = &mut self.kept;
        out.retain(|t| {
            let Path::Channel(id) = t.to else {
                return true;
            };
            if id < SPRAY_CHANNEL_BASE {
                return true;
            }
            match kept.get_mut(&id) {
                Some(k) => match k.sock.send_to(&t.bytes, k.remote) {
                    Ok(_) => {
                        k.last = now;
                        stats.datagrams_out += 1;
                    }
                    Err(_) => stats.send_errors += 1,
                },
                None => stats.unsent += 1,
            }
            false
        });
    }

    /// Closes rounds past their hold and kept sockets gone idle (their
    /// paths close in the node).
    pub fn tick(&mut self, core: &mut Core, now: Duration) {
        let (done, open): (Vec<Fresh>, Vec<Fresh>) = std::mem::take(&mut self.fresh)
            .into_iter()
            .partition(|f| now >= f.until);
        self.fresh = open;
        for f in done {
            self.close(f.sock);
        }
        let (done, open): (Vec<Round>, Vec<Round>) = std::mem::take(&mut self.rounds)
            .into_iter()
            .partition(|r| now >= r.until);
        self.rounds = open;
        for r in done {
            for s in r.socks {
                self.close(s.sock);
            }
            tracing::debug!(stats = ?self.stats, "spray: round closed");
        }
        let idle: Vec<u64> = self
            .kept
            .iter()
            .filter(|(_, k)| now.saturating_sub(k.last) >= KEPT_IDLE)
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            if let Some(k) = self.kept.remove(&id) {
                self.close(k.sock);
                self.stats.expired += 1;
                core.close_path(Path::Channel(id));
            }
        }
    }

    /// The channel the watcher signals readiness on, for a sharded core to
    /// select on while it sleeps.
    pub fn wake_channel(&self) -> Option<&crossbeam_channel::Receiver<()>> {
        self.wake_rx.as_ref()
    }

    /// The counters so far.
    pub fn stats(&self) -> SprayStats {
        self.stats
    }

    /// Whether any socket is open (the engine then ticks the spray).
    pub fn active(&self) -> bool {
        !self.rounds.is_empty() || !self.kept.is_empty() || !self.fresh.is_empty()
    }
}
