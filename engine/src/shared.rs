//! One engine thread for many nodes: a [`SharedEngine`] runs every node
//! started on it ([`crate::NodeBuilder::shared_engine`]) from one thread
//! and one poll set, where a node of its own costs an engine thread and
//! a backend with a poll set and a waker beside its socket.
//!
//! Each node keeps its own UDP socket (a datagram names no mesh before it
//! is unmasked with that mesh's keys, so one socket cannot be shared
//! without trying every mesh's keys on it), registered in the engine's
//! poll set: its socket is the only file descriptor a node adds. The
//! thread runs a node's round ([`Driver::round`]) when its socket became
//! readable, when its last round left input waiting, when its host sent a
//! command, or when its timer is due; then it sleeps until the soonest of
//! those. A round is bounded (8 receive batches, 256 commands), so a node
//! under a datagram flood delays the others by at most a round.
//!
//! Nodes on a shared engine run unsharded, over the `portable` backend,
//! without the TCP carrier or WebRTC: they are for hosts that run many
//! quiet meshes (a gateway's `?meshid=` meshes), not for throughput.

use crate::backend::{BackendError, Wakeup};
use crate::driver::{Driver, Scratch};
use crate::io::Transport;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::{Events, Interest, Poll, Token, Waker};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The poll token of the engine's waker; node `i` has `Token(i + 1)`.
const WAKER: Token = Token(0);

/// Readiness events taken per wait.
const EVENTS: usize = 256;

/// A socket as the poll set names it.
#[cfg(unix)]
pub(crate) type Fd = std::os::fd::RawFd;
/// A socket as the poll set names it.
#[cfg(windows)]
pub(crate) type Fd = std::os::windows::io::RawSocket;

/// Binds a node's socket for `engine`: the `portable` backend without a
/// poll set or waker of its own (the engine's poll set watches `Fd`).
pub(crate) fn open(
    bind: SocketAddr,
    engine: &SharedEngine,
) -> Result<(Transport, SocketAddr, &'static str, Fd), BackendError> {
    let err = |source| BackendError::Io {
        backend: "portable",
        source,
    };
    let socket = std::net::UdpSocket::bind(bind)
        .map_err(|source| BackendError::Bind { addr: bind, source })?;
    let local = socket.local_addr().map_err(err)?;
    // As large as a node of its own asks (best effort, capped by the
    // kernel): a limit, not memory, until a burst or a flood fills it.
    let sock = socket2::SockRef::from(&socket);
    let _ = sock.set_recv_buffer_size(crate::backend::SOCKET_BUFFER);
    let _ = sock.set_send_buffer_size(crate::backend::SOCKET_BUFFER);
    #[cfg(unix)]
    let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
    #[cfg(windows)]
    let fd = std::os::windows::io::AsRawSocket::as_raw_socket(&socket);
    let backend =
        crate::backend::portable::PortableBackend::unpolled(socket, engine.waker()).map_err(err)?;
    Ok((Transport::Direct(Box::new(backend)), local, "portable", fd))
}

/// Adds socket `fd` to `poll` as `token`.
fn register(poll: &Poll, fd: Fd, token: Token) -> std::io::Result<()> {
    #[cfg(unix)]
    return poll
        .registry()
        .register(&mut mio::unix::SourceFd(&fd), token, Interest::READABLE);
    #[cfg(not(unix))]
    {
        let _ = (poll, fd, token, Interest::READABLE);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "shared engines poll sockets by file descriptor (Unix only)",
        ))
    }
}

/// Takes socket `fd` out of `poll`.
fn deregister(poll: &Poll, fd: Fd) {
    #[cfg(unix)]
    let _ = poll.registry().deregister(&mut mio::unix::SourceFd(&fd));
    #[cfg(not(unix))]
    let _ = (poll, fd);
}

/// An engine thread shared by many nodes. Cheap to clone (a handle); the
/// thread exits once every handle is gone and every node on it stopped
/// (each [`crate::Node`] on it holds a handle).
#[derive(Clone)]
pub struct SharedEngine {
    inner: Arc<Inner>,
}

struct Inner {
    attach: Option<Sender<Attach>>,
    wake: Arc<EngineWake>,
    nodes: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Wakes the engine thread when it sleeps in its poll set.
pub(crate) struct EngineWake {
    parked: AtomicBool,
    waker: Waker,
}

impl Wakeup for EngineWake {
    fn wake(&self) {
        // While the thread runs it checks every node's commands before it
        // sleeps (after setting `parked`), so only a sleeping thread needs
        // the eventfd write. A failed wake only delays the thread until
        // its next timer.
        if self.parked.load(Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }
}

/// A node handed to the engine thread.
pub(crate) struct Attach {
    /// The node's engine state.
    pub driver: Driver,
    /// Its UDP socket (owned by the driver's backend).
    pub fd: Fd,
    /// Dropped when the node has stopped.
    pub done: Sender<()>,
}

/// Why a node could not join a shared engine.
#[derive(Debug, thiserror::Error)]
pub enum SharedEngineError {
    /// The poll set, its waker or the thread could not be created.
    #[error("cannot start the shared engine: {0}")]
    Start(std::io::Error),
    /// The engine thread is gone (it panicked).
    #[error("the shared engine thread has exited")]
    Gone,
}

impl SharedEngine {
    /// Starts the engine thread (`moss-shared`) with no nodes.
    pub fn start() -> Result<Self, SharedEngineError> {
        let poll = Poll::new().map_err(SharedEngineError::Start)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(SharedEngineError::Start)?;
        let wake = Arc::new(EngineWake {
            parked: AtomicBool::new(false),
            waker,
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let nodes = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (wake, nodes) = (wake.clone(), nodes.clone());
            std::thread::Builder::new()
                .name("moss-shared".into())
                .spawn(move || Loop::new(poll, wake, nodes).run(rx))
                .map_err(SharedEngineError::Start)?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                attach: Some(tx),
                wake,
                nodes,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Nodes running on this engine now.
    pub fn node_count(&self) -> usize {
        self.inner.nodes.load(Ordering::SeqCst)
    }

    /// The waker every node on this engine hands its host side.
    pub(crate) fn waker(&self) -> Arc<dyn Wakeup> {
        self.inner.wake.clone()
    }

    /// Hands a node to the engine thread.
    pub(crate) fn attach(&self, a: Attach) -> Result<(), SharedEngineError> {
        let tx = self.inner.attach.as_ref().ok_or(SharedEngineError::Gone)?;
        // Counted before the thread can see the node (and uncount it), so
        // `node_count` is right as soon as the node's `start` returns.
        self.inner.nodes.fetch_add(1, Ordering::SeqCst);
        if tx.send(a).is_err() {
            self.inner.nodes.fetch_sub(1, Ordering::SeqCst);
            return Err(SharedEngineError::Gone);
        }
        let _ = self.inner.wake.waker.wake();
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Every node holds a handle, so none is left: the thread sees the
        // channel close and exits.
        self.attach = None;
        let _ = self.wake.waker.wake();
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            if self.nodes.load(Ordering::SeqCst) == 0 {
                let _ = t.join();
            }
        }
    }
}

/// One node on the engine thread.
struct Slot {
    driver: Driver,
    fd: Fd,
    done: Sender<()>,
    /// Its socket became readable since its last round.
    readable: bool,
    /// Its last round left input waiting.
    more: bool,
}

impl Slot {
    /// Whether the node has work now.
    fn due(&self) -> bool {
        self.readable
            || self.more
            || !self.driver.commands.is_empty()
            || self.driver.until_timer().is_zero()
    }
}

/// The engine thread's state.
struct Loop {
    poll: Poll,
    events: Events,
    wake: Arc<EngineWake>,
    nodes: Arc<AtomicUsize>,
    slots: Vec<Option<Slot>>,
    scratch: Scratch,
}

impl Loop {
    fn new(poll: Poll, wake: Arc<EngineWake>, nodes: Arc<AtomicUsize>) -> Self {
        Self {
            poll,
            events: Events::with_capacity(EVENTS),
            wake,
            nodes,
            slots: Vec::new(),
            // On-demand nodes do not busy-poll: one thread serves them all.
            scratch: Scratch::new(0),
        }
    }

    /// Runs until the last handle is gone and the last node stopped.
    fn run(mut self, attach: Receiver<Attach>) {
        let mut open = true;
        loop {
            while open {
                match attach.try_recv() {
                    Ok(a) => self.add(a),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            if !open && self.slots.iter().all(Option::is_none) {
                return;
            }
            let soonest = self.rounds();
            self.sleep(soonest, open.then_some(&attach));
        }
    }

    /// Registers a node's socket and takes the node.
    fn add(&mut self, a: Attach) {
        let i = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        if let Err(e) = register(&self.poll, a.fd, Token(i + 1)) {
            // Its socket would never be read: stop the node at once.
            tracing::warn!(error = %e, "shared engine: cannot poll a node's socket; stopping it");
            a.driver.finish(&mut self.scratch);
            self.nodes.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        self.slots[i] = Some(Slot {
            driver: a.driver,
            fd: a.fd,
            done: a.done,
            // A datagram may have come before the registration.
            readable: true,
            more: false,
        });
    }

    /// Runs a round for every node with work; returns how long until the
    /// soonest node has work again (zero: at once).
    fn rounds(&mut self) -> Duration {
        let mut soonest = Duration::MAX;
        for i in 0..self.slots.len() {
            let Some(slot) = self.slots[i].as_mut() else {
                continue;
            };
            if slot.due() {
                slot.readable = false;
                // A node that panics is dropped alone (its handle then
                // reports `Stopped`); the other nodes run on.
                let scratch = &mut self.scratch;
                let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    slot.driver.round(scratch)
                }));
                match round {
                    Ok(Some(more)) => slot.more = more,
                    Ok(None) => {
                        self.remove(i);
                        continue;
                    }
                    Err(_) => {
                        tracing::error!("shared engine: a node panicked; it is stopped");
                        self.discard(i);
                        continue;
                    }
                }
            }
            let wait = if slot.more {
                Duration::ZERO
            } else {
                slot.driver.until_timer()
            };
            soonest = soonest.min(wait);
        }
        soonest
    }

    /// Stops node `i` (its stop command came or its handle is gone): the
    /// socket leaves the poll set, peers are told, the handle is released.
    fn remove(&mut self, i: usize) {
        let Some(slot) = self.slots[i].take() else {
            return;
        };
        deregister(&self.poll, slot.fd);
        slot.driver.finish(&mut self.scratch);
        self.nodes.fetch_sub(1, Ordering::SeqCst);
        drop(slot.done);
    }

    /// Drops node `i` without finishing it (its round panicked, so its
    /// state cannot be trusted): its socket closes, its handle's calls
    /// fail with `Stopped`.
    fn discard(&mut self, i: usize) {
        let Some(slot) = self.slots[i].take() else {
            return;
        };
        deregister(&self.poll, slot.fd);
        slot.driver.host.shared.mark_stopped();
        self.nodes.fetch_sub(1, Ordering::SeqCst);
        // The scratch batches may hold the panicked round's datagrams.
        self.scratch = Scratch::new(0);
    }

    /// Sleeps up to `soonest` (forever for `MAX`), or not at all when a
    /// node got a command or a node arrives, and marks the nodes whose
    /// sockets became readable.
    fn sleep(&mut self, soonest: Duration, attach: Option<&Receiver<Attach>>) {
        self.wake.parked.store(true, Ordering::SeqCst);
        // A command sent before `parked` was set did not wake us: look.
        let pending = attach.is_some_and(|a| !a.is_empty())
            || self
                .slots
                .iter()
                .flatten()
                .any(|s| !s.driver.commands.is_empty());
        let timeout = if pending { Duration::ZERO } else { soonest };
        let timeout = (timeout != Duration::MAX).then_some(timeout);
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "shared engine: poll failed");
                // Do not spin on a failing poll set.
                std::thread::sleep(timeout.unwrap_or(Duration::from_millis(100)));
            }
        }
        self.wake.parked.store(false, Ordering::SeqCst);
        for e in self.events.iter() {
            if let Some(Some(slot)) = e
                .token()
                .0
                .checked_sub(1)
                .and_then(|i| self.slots.get_mut(i))
            {
                slot.readable = true;
            }
        }
    }
}
