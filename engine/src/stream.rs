//! The async API beside the blocking one: a subscription as a
//! [`futures_core::Stream`], and futures for publishing under
//! back-pressure, connecting and waiting for a subscriber. They run on any
//! executor: a waker thread inside `moss` (one per process) wakes them when
//! the engine's channels have something, so no runtime is required.
//!
//! Cost: a stream that has messages queued takes them without any hop; one
//! that waits is woken through the waker thread, one thread switch more
//! than a blocking `recv`. Measured one message at a time (publish, wait
//! for it, 2000 times, six alternating rounds, loopback, 2 shared cores at
//! load 10): stream/blocking time ratio 0.63 to 2.6, median about 1.5. An
//! engine that woke the task itself would save that hop, at the price of
//! an async-aware sink in the engine thread.
//!
//! ```
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     struct W(std::thread::Thread);
//! #     impl std::task::Wake for W { fn wake(self: std::sync::Arc<Self>) { self.0.unpark() } }
//! #     let waker = std::task::Waker::from(std::sync::Arc::new(W(std::thread::current())));
//! #     let mut cx = std::task::Context::from_waker(&waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop {
//! #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
//! #         std::thread::park();
//! #     }
//! # }
//! use std::time::Duration;
//! let offline = r#"{"trackers": [], "dht_enabled": false, "lan_discovery_enabled": false}"#;
//! let alice = moss::Node::builder("demo").config_json(offline)?.start()?;
//! let bob = moss::Node::builder("demo").config_json(offline)?.start()?;
//! let mut chat = alice.subscribe("chat")?.into_stream();
//! let addr = format!("127.0.0.1:{}", alice.local_addr().port());
//! // `block_on` stands for any executor (tokio, async-std, smol, ...).
//! let msg = block_on(async {
//!     bob.connect_async(&addr, Duration::from_secs(5)).await?;
//!     bob.wait_for_subscriber_async("chat", Duration::from_secs(5)).await?;
//!     bob.publish_async("chat", b"hello").await?;
//!     Ok::<_, moss::NodeError>(std::future::poll_fn(|cx| {
//!         futures_core::Stream::poll_next(std::pin::Pin::new(&mut chat), cx)
//!     }).await)
//! })?;
//! assert_eq!(msg.map(|m| m.into_data()), Some(b"hello".to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::driver::{Command, Snapshot};
use crate::error::NodeError;
use crate::event::Message;
use crate::node::{Node, Subscription};
use crate::reactor::{self, Until};
use crossbeam_channel::{bounded, Receiver, TryRecvError};
use futures_core::Stream;
use moss_mesh::PeerId;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// First pause before a publish retries a full engine queue.
const BACKOFF_MIN: Duration = Duration::from_micros(200);
/// Longest pause between retries.
const BACKOFF_MAX: Duration = Duration::from_millis(20);
/// How often a subscriber wait asks the engine again.
const SUBSCRIBER_POLL: Duration = Duration::from_millis(20);

/// A [`Subscription`] as a [`Stream`] of messages (from
/// [`Subscription::into_stream`]). It ends when the node stops; dropping it
/// unsubscribes, as dropping the subscription does.
#[must_use = "a stream does nothing unless polled"]
pub struct SubscriptionStream {
    sub: Subscription,
    id: u64,
    registered: bool,
}

impl Subscription {
    /// This subscription as an async [`Stream`].
    pub fn into_stream(self) -> SubscriptionStream {
        SubscriptionStream {
            sub: self,
            id: reactor::next_id(),
            registered: false,
        }
    }
}

impl SubscriptionStream {
    /// The topic.
    pub fn topic(&self) -> &str {
        self.sub.topic()
    }
}

impl Stream for SubscriptionStream {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let this = self.get_mut();
        match this.sub.rx.try_recv() {
            Ok(m) => {
                this.registered = false;
                Poll::Ready(Some(m))
            }
            Err(TryRecvError::Disconnected) => {
                this.registered = false;
                Poll::Ready(None)
            }
            Err(TryRecvError::Empty) => {
                this.registered = true;
                reactor::register(
                    this.id,
                    Until::Ready(Box::new(this.sub.rx.clone())),
                    cx.waker(),
                );
                Poll::Pending
            }
        }
    }
}

impl Drop for SubscriptionStream {
    fn drop(&mut self) {
        // The waker thread holds a clone of the channel while it waits: let
        // it go so the engine sees the subscription end.
        if self.registered {
            reactor::cancel(self.id);
        }
    }
}

/// Cancels a future's registration when the future is dropped unfinished.
struct Registration {
    id: u64,
    active: bool,
}

impl Registration {
    fn new() -> Self {
        Self {
            id: reactor::next_id(),
            active: false,
        }
    }

    fn wait(&mut self, until: Until, cx: &Context<'_>) {
        self.active = true;
        reactor::register(self.id, until, cx.waker());
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.active {
            reactor::cancel(self.id);
        }
    }
}

/// The future of [`Node::publish_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct Publish<'a> {
    node: &'a Node,
    topic: &'a str,
    data: &'a [u8],
    backoff: Duration,
    reg: Registration,
}

impl Future for Publish<'_> {
    type Output = Result<(), NodeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.node.publish(this.topic, this.data) {
            Err(NodeError::Busy) => {
                this.reg
                    .wait(Until::Deadline(Instant::now() + this.backoff), cx);
                this.backoff = (this.backoff * 2).min(BACKOFF_MAX);
                Poll::Pending
            }
            r => Poll::Ready(r),
        }
    }
}

/// The future of [`Node::connect_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct Connect {
    state: Result<Receiver<Result<PeerId, String>>, Option<NodeError>>,
    deadline: Instant,
    reg: Registration,
    timer: Registration,
}

impl Future for Connect {
    type Output = Result<PeerId, NodeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let rx = match &mut this.state {
            Err(e) => return Poll::Ready(Err(e.take().unwrap_or(NodeError::Stopped))),
            Ok(rx) => rx,
        };
        match rx.try_recv() {
            Ok(Ok(peer)) => Poll::Ready(Ok(peer)),
            Ok(Err(reason)) => Poll::Ready(Err(NodeError::ConnectFailed(reason))),
            Err(TryRecvError::Disconnected) => Poll::Ready(Err(NodeError::Stopped)),
            Err(TryRecvError::Empty) if Instant::now() >= this.deadline => {
                Poll::Ready(Err(NodeError::Timeout))
            }
            Err(TryRecvError::Empty) => {
                this.reg.wait(Until::Ready(Box::new(rx.clone())), cx);
                this.timer.wait(Until::Deadline(this.deadline), cx);
                Poll::Pending
            }
        }
    }
}

/// The future of [`Node::wait_for_subscriber_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct WaitForSubscriber<'a> {
    node: &'a Node,
    topic: &'a str,
    deadline: Instant,
    asked: Option<Receiver<Snapshot>>,
    reg: Registration,
}

/// The first peer of `s` subscribed to `topic`.
fn subscriber(s: &Snapshot, topic: &str) -> Option<PeerId> {
    s.peers
        .iter()
        .find(|p| p.topics.iter().any(|t| t == topic))
        .map(|p| p.peer)
}

impl Future for WaitForSubscriber<'_> {
    type Output = Result<PeerId, NodeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if let Some(rx) = &this.asked {
                match rx.try_recv() {
                    Ok(s) => {
                        this.asked = None;
                        if let Some(p) = subscriber(&s, this.topic) {
                            return Poll::Ready(Ok(p));
                        }
                        if Instant::now() >= this.deadline {
                            return Poll::Ready(Err(NodeError::Timeout));
                        }
                        let at = (Instant::now() + SUBSCRIBER_POLL).min(this.deadline);
                        this.reg.wait(Until::Deadline(at), cx);
                        return Poll::Pending;
                    }
                    Err(TryRecvError::Empty) => {
                        this.reg.wait(Until::Ready(Box::new(rx.clone())), cx);
                        return Poll::Pending;
                    }
                    Err(TryRecvError::Disconnected) => return Poll::Ready(Err(NodeError::Stopped)),
                }
            }
            let (tx, rx) = bounded(1);
            match this.node.send(Command::Snapshot(tx)) {
                Ok(()) => this.asked = Some(rx),
                Err(NodeError::Busy) => {
                    this.reg
                        .wait(Until::Deadline(Instant::now() + SUBSCRIBER_POLL), cx);
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl Node {
    /// Publishes `data` on `topic`, waiting (without blocking a thread)
    /// while the engine's command queue is full, where [`Node::publish`]
    /// returns [`NodeError::Busy`]. Other errors are returned at once.
    pub fn publish_async<'a>(&'a self, topic: &'a str, data: &'a [u8]) -> Publish<'a> {
        Publish {
            node: self,
            topic,
            data,
            backoff: BACKOFF_MIN,
            reg: Registration::new(),
        }
    }

    /// Dials `host:port` and resolves once the session is up (the peer's
    /// id), the dial fails, or `timeout` passes ([`NodeError::Timeout`]).
    pub fn connect_async(&self, addr: &str, timeout: Duration) -> Connect {
        let deadline = Instant::now() + timeout;
        let state = self
            .resolve(addr)
            .and_then(|addr| {
                let (tx, rx) = bounded(1);
                self.send(Command::Connect {
                    addr,
                    reply: Some(tx),
                })
                .map(|()| rx)
            })
            .map_err(Some);
        Connect {
            state,
            deadline,
            reg: Registration::new(),
            timer: Registration::new(),
        }
    }

    /// Resolves with the first connected peer subscribed to `topic`, or
    /// [`NodeError::Timeout`] after `timeout`. A publish right after it
    /// reaches at least that peer.
    pub fn wait_for_subscriber_async<'a>(
        &'a self,
        topic: &'a str,
        timeout: Duration,
    ) -> WaitForSubscriber<'a> {
        WaitForSubscriber {
            node: self,
            topic,
            deadline: Instant::now() + timeout,
            asked: None,
            reg: Registration::new(),
        }
    }

    /// Blocks until a connected peer is subscribed to `topic` and returns
    /// it, or [`NodeError::Timeout`] after `timeout`: what a publisher
    /// waits for so that its first message has somewhere to go.
    pub fn wait_for_subscriber(&self, topic: &str, timeout: Duration) -> Result<PeerId, NodeError> {
        let deadline = Instant::now() + timeout;
        loop {
            let (tx, rx) = bounded(1);
            self.send(Command::Snapshot(tx))?;
            let s = rx
                .recv_deadline(deadline.max(Instant::now() + SUBSCRIBER_POLL))
                .map_err(|_| NodeError::Timeout)?;
            if let Some(p) = subscriber(&s, topic) {
                return Ok(p);
            }
            if Instant::now() >= deadline {
                return Err(NodeError::Timeout);
            }
            std::thread::sleep(SUBSCRIBER_POLL);
        }
    }
}
