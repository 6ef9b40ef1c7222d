//! The TCP carrier (config `transport.tcp_enabled`, default on): for
//! networks that drop UDP. The node's datagrams, unchanged, travel as
//! length-masked records ([`record`]) over TCP connections; in the node a
//! connection is one more path, [`Path::Tcp`]. The carrier listens on TCP
//! at the UDP port number, dials a peer over TCP when its UDP handshake
//! times out (or at once, for static peers with `transport.prefer_tcp`),
//! and runs every accept, read and write on the engine thread, nonblocking
//! (a watcher thread only waits for readiness). On a sharded engine it runs
//! on the core thread, and the node keeps the keys of TCP-path sessions
//! (the shards own UDP sockets only): TCP peers do not take the shards'
//! fast path, but they connect and exchange like any other.
//!
//! Limits: at most [`MAX_CONNECTIONS`] connections, at most [`OUT_CAP`]
//! bytes queued per connection (a record that does not fit is dropped and
//! counted, as a full UDP socket drops), a bad record length closes the
//! connection and is counted, and a connection that carries no established
//! session [`UNUSED_GRACE`] after it opened is closed.

pub mod record;
pub(crate) mod watch;

use crate::backend::Wakeup;
use moss_mesh::{Input, Node as Core, Path, Transmit};
use record::{Decoder, Mask, NONCE_LEN};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use watch::{Ready, Watcher};

/// Most TCP connections at once (inbound and outbound).
pub const MAX_CONNECTIONS: usize = 256;
/// Most bytes queued for one connection.
pub const OUT_CAP: usize = 256 * 1024;
/// A connection without an established session this long after it opened
/// (the handshake timeout is 5 s by default) is closed.
pub const UNUSED_GRACE: Duration = Duration::from_secs(10);
/// Bytes read from one connection per engine round, so one fast sender
/// cannot starve the others, the UDP socket or the timers.
const READ_PER_ROUND: usize = 64 * 1024;
/// How often the carrier checks connections' use and redials static peers.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// Longest back-off between dials of a lost static TCP peer.
const MAX_REDIAL: Duration = Duration::from_secs(30);
/// Token of the listener.
const LISTENER: mio::Token = mio::Token(0);

/// Counters of the TCP carrier (all since start).
#[derive(Debug, Default)]
pub struct TcpCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections dialled.
    pub dialed: AtomicU64,
    /// Connections refused or dropped at once: the cap was reached.
    pub refused: AtomicU64,
    /// Connections closed because a record length was out of range.
    pub bad_records: AtomicU64,
    /// Connections closed because no session used them.
    pub unused_closed: AtomicU64,
    /// Records received (datagrams handed to the node).
    pub records_in: AtomicU64,
    /// Records queued for sending.
    pub records_out: AtomicU64,
    /// Records dropped: the connection's queue was full or it is gone.
    pub send_dropped: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
}

/// A snapshot of [`TcpCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TcpStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections dialled.
    pub dialed: u64,
    /// Connections refused at the cap.
    pub refused: u64,
    /// Connections closed for a bad record length.
    pub bad_records: u64,
    /// Connections closed unused.
    pub unused_closed: u64,
    /// Records received.
    pub records_in: u64,
    /// Records queued.
    pub records_out: u64,
    /// Records dropped on send.
    pub send_dropped: u64,
    /// Connections open now.
    pub open: u64,
}

impl TcpCounters {
    /// The current values.
    pub fn snapshot(&self) -> TcpStats {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TcpStats {
            accepted: g(&self.accepted),
            dialed: g(&self.dialed),
            refused: g(&self.refused),
            bad_records: g(&self.bad_records),
            unused_closed: g(&self.unused_closed),
            records_in: g(&self.records_in),
            records_out: g(&self.records_out),
            send_dropped: g(&self.send_dropped),
            open: g(&self.open),
        }
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// One connection.
struct Conn {
    stream: mio::net::TcpStream,
    path: Path,
    /// The address we dialled (outbound connections).
    dialed: Option<SocketAddr>,
    /// A dial whose connect has not completed.
    connecting: bool,
    /// A session was seen on this path.
    used: bool,
    decoder: Decoder,
    tx: Mask,
    out: Vec<u8>,
    /// When the connection opened, or last carried an established session.
    seen: Duration,
}

/// A static peer dialled over TCP (`transport.prefer_tcp`).
struct StaticTcp {
    addr: SocketAddr,
    next_dial: Duration,
    backoff: Duration,
}

/// Starts the carrier a node config asks for: `None` when
/// `transport.tcp_enabled` is off. An unsharded engine's watcher wakes the
/// backend's wait; a sharded core sleeps on channels, so its watcher wakes
/// it through [`Carrier::wake_channel`].
pub(crate) fn start(
    config: &moss_mesh::Config,
    transport: &crate::io::Transport,
    listen: SocketAddr,
    keys: &moss_crypto::MeshKeys,
) -> Result<Option<Carrier>, crate::StartError> {
    if !config.transport.tcp_enabled {
        return Ok(None);
    }
    let (wake, wake_rx) = core_waker(transport);
    let mut carrier = Carrier::start(listen, &keys.scramble_key, wake)
        // Only the poll or its watcher thread can fail to start.
        .map_err(|TcpError::Io(e)| crate::StartError::Thread(e))?;
    carrier.wake_rx = wake_rx;
    Ok(Some(carrier))
}

/// How a watcher thread wakes the engine thread of `transport`: the
/// backend's wait on an unsharded engine; on a sharded one, a one-slot
/// channel the core selects on while it sleeps (returned with it).
pub(crate) fn core_waker(
    transport: &crate::io::Transport,
) -> (Arc<dyn Wakeup>, Option<crossbeam_channel::Receiver<()>>) {
    match transport {
        crate::io::Transport::Direct(backend) => (backend.waker(), None),
        crate::io::Transport::Sharded { .. } => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            (Arc::new(ChannelWake(tx)), Some(rx))
        }
    }
}

/// Wakes a sharded core thread: one token in a one-slot channel it selects
/// on (a full channel means a wake-up is already pending).
struct ChannelWake(crossbeam_channel::Sender<()>);

impl Wakeup for ChannelWake {
    fn wake(&self) {
        let _ = self.0.try_send(());
    }
}

/// The carrier: listener, connections, dials.
pub struct Carrier {
    listener: Option<mio::net::TcpListener>,
    registry: mio::Registry,
    ready: Arc<Ready>,
    _watcher: Watcher,
    conns: HashMap<u64, Conn>,
    /// Dialled address → its connection.
    outbound: HashMap<SocketAddr, u64>,
    statics: Vec<StaticTcp>,
    /// Addresses whose UDP dial failed and are being tried over TCP (their
    /// connect waiters wait for the TCP outcome).
    fallback: HashSet<SocketAddr>,
    /// Fallback dials that failed (for the host's waiters).
    failed: Vec<SocketAddr>,
    next_id: u64,
    key: [u8; 32],
    counters: Arc<TcpCounters>,
    next_housekeeping: Duration,
    /// Paths of connections closed since the node last heard of it: their
    /// sessions end at the next [`Carrier::receive`] or [`Carrier::send`].
    closed: Vec<Path>,
    /// Connections with input left over from a bounded read.
    hot: Vec<mio::Token>,
    scratch: Vec<mio::Token>,
    /// The watcher's wake-ups, on a sharded engine.
    wake_rx: Option<crossbeam_channel::Receiver<()>>,
}

/// Why the carrier could not start.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    /// The poll or its watcher thread could not be set up.
    #[error("tcp carrier: {0}")]
    Io(#[from] io::Error),
}

impl Carrier {
    /// Starts the carrier for a node with this scramble key, listening on
    /// `listen` (the UDP socket's address) when the port is free for TCP.
    pub fn start(
        listen: SocketAddr,
        scramble_key: &[u8; 32],
        engine: Arc<dyn Wakeup>,
    ) -> Result<Self, TcpError> {
        let poll = mio::Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let listener = match mio::net::TcpListener::bind(listen) {
            Ok(mut l) => {
                registry.register(&mut l, LISTENER, mio::Interest::READABLE)?;
                Some(l)
            }
            Err(e) => {
                tracing::warn!(%listen, error = %e, "tcp carrier: cannot listen (dials only)");
                None
            }
        };
        let ready = Arc::new(Ready::default());
        let watcher = Watcher::start(poll, ready.clone(), engine)?;
        Ok(Self {
            listener,
            registry,
            ready,
            _watcher: watcher,
            conns: HashMap::new(),
            outbound: HashMap::new(),
            statics: Vec::new(),
            fallback: HashSet::new(),
            failed: Vec::new(),
            next_id: 1,
            key: record::mask_key(scramble_key),
            counters: Arc::new(TcpCounters::default()),
            next_housekeeping: Duration::ZERO,
            closed: Vec::new(),
            hot: Vec::new(),
            scratch: Vec::new(),
            wake_rx: None,
        })
    }

    /// The carrier's counters (shared with the node handle).
    pub fn counters(&self) -> Arc<TcpCounters> {
        self.counters.clone()
    }

    /// The channel the watcher signals readiness on, for a sharded core to
    /// select on while it sleeps (`None` on an unsharded engine: the
    /// watcher wakes the backend's wait instead).
    pub(crate) fn wake_channel(&self) -> Option<&crossbeam_channel::Receiver<()>> {
        self.wake_rx.as_ref()
    }

    /// The TCP listen address, when listening.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Adds a static peer dialled over TCP now and whenever lost.
    pub fn add_static(&mut self, addr: SocketAddr) {
        if !self.statics.iter().any(|s| s.addr == addr) {
            self.statics.push(StaticTcp {
                addr,
                next_dial: Duration::ZERO,
                backoff: Duration::from_secs(1),
            });
        }
    }

    /// The UDP dial to `addr` failed: try TCP. True if a TCP dial is (now)
    /// under way, so the dial's waiters wait for its outcome.
    pub fn fallback(&mut self, addr: SocketAddr, now: Duration) -> bool {
        if self.outbound.contains_key(&addr) {
            return self.fallback.contains(&addr);
        }
        if self.dial(addr, now) {
            self.fallback.insert(addr);
            return true;
        }
        false
    }

    /// Fallback dials that failed since the last call.
    pub fn take_failed(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.failed)
    }

    /// A handshake on `path` failed: a TCP connection carrying nothing
    /// else closes.
    pub fn handshake_failed(&mut self, path: Path) {
        if let Path::Tcp { id, .. } = path {
            if self.conns.get(&id).is_some_and(|c| !c.used) {
                self.close(id);
            }
        }
    }

    /// Opens a connection to `addr`; false if the cap is reached or the
    /// connect cannot start.
    fn dial(&mut self, addr: SocketAddr, now: Duration) -> bool {
        if self.conns.len() >= MAX_CONNECTIONS {
            bump(&self.counters.refused);
            return false;
        }
        let stream = match mio::net::TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%addr, error = %e, "tcp carrier: connect failed");
                return false;
            }
        };
        bump(&self.counters.dialed);
        let id = self.add(stream, addr, Some(addr), now);
        id.is_some()
    }

    /// Registers a connection and queues its nonce; `None` if it could not
    /// be registered.
    fn add(
        &mut self,
        mut stream: mio::net::TcpStream,
        addr: SocketAddr,
        dialed: Option<SocketAddr>,
        now: Duration,
    ) -> Option<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let token = mio::Token(usize::try_from(id).ok()?);
        let interest = mio::Interest::READABLE | mio::Interest::WRITABLE;
        if let Err(e) = self.registry.register(&mut stream, token, interest) {
            tracing::debug!(%addr, error = %e, "tcp carrier: register failed");
            return None;
        }
        let _ = stream.set_nodelay(true);
        let mut nonce = [0u8; NONCE_LEN];
        if getrandom::getrandom(&mut nonce).is_err() {
            return None;
        }
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&nonce);
        self.conns.insert(
            id,
            Conn {
                stream,
                path: Path::Tcp { id, addr },
                dialed,
                connecting: dialed.is_some(),
                used: false,
                decoder: Decoder::new(self.key),
                tx: Mask::new(&self.key, &nonce),
                out,
                seen: now,
            },
        );
        if let Some(a) = dialed {
            self.outbound.insert(a, id);
        }
        self.counters
            .open
            .store(self.conns.len() as u64, Ordering::Relaxed);
        Some(id)
    }

    /// Closes connection `id`; a fallback dial that never connected counts
    /// as failed. The session on its path ends with it (queued for the
    /// node: [`Carrier::end_sessions`]).
    fn close(&mut self, id: u64) {
        let Some(mut c) = self.conns.remove(&id) else {
            return;
        };
        let _ = self.registry.deregister(&mut c.stream);
        self.closed.push(c.path);
        if let Some(a) = c.dialed {
            if self.outbound.get(&a) == Some(&id) {
                self.outbound.remove(&a);
            }
            if self.fallback.remove(&a) && !c.used {
                self.failed.push(a);
            }
        }
        self.counters
            .open
            .store(self.conns.len() as u64, Ordering::Relaxed);
    }

    /// Runs the carrier's I/O that is ready: accepts, completed connects
    /// (the node dials over them), reads (records go to the node), writes;
    /// and, once a second, closes unused connections and redials static
    /// peers. True if input is left over for the next round.
    pub fn receive(&mut self, core: &mut Core, now: Duration) -> bool {
        if let Some(rx) = &self.wake_rx {
            while rx.try_recv().is_ok() {}
        }
        let mut tokens = std::mem::take(&mut self.scratch);
        tokens.append(&mut self.hot);
        self.ready.take(&mut tokens);
        for &t in &tokens {
            if t == LISTENER {
                self.accept(now);
            } else if let Ok(id) = u64::try_from(t.0) {
                self.work(id, core, now);
            }
        }
        tokens.clear();
        self.scratch = tokens;
        if now >= self.next_housekeeping {
            self.next_housekeeping = now + HOUSEKEEPING;
            self.housekeeping(core, now);
        }
        self.end_sessions(core);
        !self.hot.is_empty()
    }

    /// Ends the sessions of connections that closed (the peer closed, reset,
    /// sent a bad record, or we closed it): a session whose connection is
    /// gone cannot carry anything, so it ends now (reason `closed`) rather
    /// than when the peer's silence is noticed.
    fn end_sessions(&mut self, core: &mut Core) {
        for path in self.closed.drain(..) {
            core.close_path(path);
        }
    }

    fn accept(&mut self, now: Duration) {
        let Some(l) = self.listener.take() else {
            return;
        };
        loop {
            match l.accept() {
                Ok((stream, addr)) => {
                    if self.conns.len() >= MAX_CONNECTIONS {
                        bump(&self.counters.refused);
                        drop(stream);
                        continue;
                    }
                    bump(&self.counters.accepted);
                    self.add(stream, addr, None, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: try again on the next readiness.
                    tracing::debug!(error = %e, "tcp carrier: accept failed");
                    break;
                }
            }
        }
        self.listener = Some(l);
    }

    /// Connect completion, reads and writes of connection `id`.
    fn work(&mut self, id: u64, core: &mut Core, now: Duration) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.connecting {
            match (c.stream.take_error(), c.stream.peer_addr()) {
                (Ok(None), Ok(_)) => {
                    c.connecting = false;
                    let path = c.path;
                    core.connect_path(path);
                }
                (Ok(None), Err(e))
                    if e.kind() == io::ErrorKind::NotConnected
                        || e.raw_os_error() == Some(libc::EINPROGRESS) =>
                {
                    return
                }
                _ => return self.close(id),
            }
        }
        if Self::flush(c).is_err() {
            return self.close(id);
        }
        let counters = &self.counters;
        let mut buf = [0u8; 16 * 1024];
        let mut read = 0;
        let path = c.path;
        let result = loop {
            if read >= READ_PER_ROUND {
                self.hot.push(mio::Token(id as usize));
                break Ok(());
            }
            match c.stream.read(&mut buf) {
                Ok(0) => break Err(()),
                Ok(n) => {
                    read += n;
                    let fed = c.decoder.feed(&buf[..n], &mut |d| {
                        bump(&counters.records_in);
                        core.handle(
                            now,
                            Input::Datagram {
                                from: path,
                                bytes: d,
                            },
                        );
                    });
                    if let Err(e) = fed {
                        tracing::debug!(%path, error = %e, "tcp carrier: closing");
                        bump(&counters.bad_records);
                        break Err(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break Err(()),
            }
        };
        if result.is_err() {
            self.close(id);
        }
    }

    /// Writes what connection `c` has queued, until the kernel stops
    /// taking it; `Err` when the connection is broken.
    fn flush(c: &mut Conn) -> Result<(), ()> {
        if c.connecting {
            return Ok(());
        }
        let mut done = 0;
        let r = loop {
            if done == c.out.len() {
                break Ok(());
            }
            match c.stream.write(&c.out[done..]) {
                Ok(0) => break Err(()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break Err(()),
            }
        };
        c.out.drain(..done);
        r
    }

    /// Takes the node's transmits on TCP paths out of `out`, queues them as
    /// records and writes what the kernel takes; their buffers go back to
    /// the node.
    pub fn send(&mut self, out: &mut Vec<Transmit>, core: &mut Core) {
        let mut broken = Vec::new();
        out.retain_mut(|t| {
            let Path::Tcp { id, .. } = t.to else {
                return true;
            };
            match self.conns.get_mut(&id) {
                Some(c) if c.out.len() + record::LEN_LEN + t.bytes.len() <= OUT_CAP => {
                    record::encode(&mut c.tx, &t.bytes, &mut c.out);
                    bump(&self.counters.records_out);
                    if Self::flush(c).is_err() {
                        broken.push(id);
                    }
                }
                _ => bump(&self.counters.send_dropped),
            }
            core.recycle(std::mem::take(&mut t.bytes));
            false
        });
        for id in broken {
            self.close(id);
        }
        self.end_sessions(core);
    }

    /// Closes connections no session uses, and redials static peers.
    fn housekeeping(&mut self, core: &mut Core, now: Duration) {
        let live: HashSet<Path> = core.peers().into_iter().map(|p| p.addr).collect();
        let mut unused = Vec::new();
        for (&id, c) in &mut self.conns {
            if live.contains(&c.path) {
                c.used = true;
                c.seen = now;
            } else if now.saturating_sub(c.seen) >= UNUSED_GRACE {
                unused.push(id);
            }
        }
        for id in unused {
            bump(&self.counters.unused_closed);
            self.close(id);
        }
        let mut due = Vec::new();
        for s in &mut self.statics {
            match self.outbound.get(&s.addr).and_then(|id| self.conns.get(id)) {
                Some(c) if c.used => s.backoff = Duration::from_secs(1),
                Some(_) => {}
                None if now >= s.next_dial => {
                    due.push(s.addr);
                    s.next_dial = now + s.backoff;
                    s.backoff = (s.backoff * 2).min(MAX_REDIAL);
                }
                None => {}
            }
        }
        for a in due {
            self.dial(a, now);
        }
    }
}
