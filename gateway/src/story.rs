//! The host side of every served mesh on one thread ([`Host`]): each
//! node's events go to its event log (`/api/events`) and its `info` log
//! lines ([`moss::Story`]), its messages to its inbox, and its discovery
//! stats and NAT class are read every [`POLL_EVERY`]. One thread for all
//! meshes, not two per mesh: on-demand meshes cost their engine thread only.

use crate::meshes::Served;
use crossbeam_channel::{Receiver, Select, Sender};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the discovery stats and NAT class are read.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// The gateway's host thread; it ends when the handle and every followed
/// node are gone.
pub struct Host {
    add: Sender<Follow>,
}

/// One followed mesh.
struct Follow {
    served: Weak<Served>,
    events: Receiver<moss::Event>,
    /// The node's messages, or a channel that never delivers when no topic
    /// is subscribed.
    messages: Receiver<moss::Message>,
    story: moss::Story,
}

/// What one wait of the host thread got.
enum Got {
    Added(Follow),
    Event(usize, moss::Event),
    Message(usize, moss::Message),
    /// A followed node stopped (its event channel closed, after every
    /// event it held).
    Ended(usize),
    /// A followed node's message channel closed (its events may still hold
    /// the last ones).
    MessagesDone(usize),
    /// The handle is gone.
    Closed,
    Timeout,
}

impl Host {
    /// Starts the thread (`None`, logged, if the system refuses one).
    pub fn start() -> Option<Self> {
        let (add, rx) = crossbeam_channel::unbounded();
        let spawned = std::thread::Builder::new()
            .name("moss-host".into())
            .spawn(move || run(rx));
        match spawned {
            Ok(_) => Some(Self { add }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the host thread");
                None
            }
        }
    }

    /// Follows `served`'s node from now on. The thread holds the node only
    /// for the moment of a stats read, so it never keeps a stopped mesh
    /// alive.
    pub fn follow(&self, mesh: &str, served: &Arc<Served>) {
        let messages = if served.inbox.collects() {
            served.node.messages().clone()
        } else {
            crossbeam_channel::never()
        };
        let f = Follow {
            served: Arc::downgrade(served),
            events: served.node.events().clone(),
            messages,
            story: moss::Story::new(mesh),
        };
        if self.add.send(f).is_err() {
            tracing::warn!(mesh, "the host thread is gone: mesh not followed");
        }
    }
}

fn run(add: Receiver<Follow>) {
    let mut follows: Vec<Follow> = Vec::new();
    let mut open = true;
    let mut next_poll = Instant::now() + POLL_EVERY;
    while open || !follows.is_empty() {
        match wait(&add, open, &follows, next_poll) {
            Got::Added(f) => follows.push(f),
            Got::Event(i, e) => {
                if let Some(s) = follows[i].served.upgrade() {
                    s.events.push(&e);
                }
                follows[i].story.event(&e);
            }
            Got::Message(i, m) => {
                if let Some(s) = follows[i].served.upgrade() {
                    s.inbox.record(&m);
                }
            }
            Got::Ended(i) => {
                let f = follows.swap_remove(i);
                f.story.shutdown();
            }
            Got::MessagesDone(i) => follows[i].messages = crossbeam_channel::never(),
            Got::Closed => open = false,
            Got::Timeout => {
                next_poll = Instant::now() + POLL_EVERY;
                for f in &mut follows {
                    let Some(s) = f.served.upgrade() else {
                        continue;
                    };
                    if let Some(d) = s.node.discovery_stats() {
                        f.story.discovery(&d);
                    }
                    if let Ok(info) = s.node.mesh_info() {
                        f.story.nat(&info.nat_type);
                    }
                }
            }
        }
    }
}

/// Waits until `next_poll` for a new mesh, an event or a message of any
/// followed mesh.
fn wait(add: &Receiver<Follow>, open: bool, follows: &[Follow], next_poll: Instant) -> Got {
    let mut sel = Select::new();
    // Operation index → (follow, is its message channel); the add channel
    // is the last operation when still open.
    let mut ops = Vec::with_capacity(follows.len() * 2);
    for (i, f) in follows.iter().enumerate() {
        sel.recv(&f.events);
        ops.push((i, false));
        sel.recv(&f.messages);
        ops.push((i, true));
    }
    if open {
        sel.recv(add);
    }
    let Ok(op) = sel.select_deadline(next_poll) else {
        return Got::Timeout;
    };
    let k = op.index();
    match ops.get(k).copied() {
        None => match op.recv(add) {
            Ok(f) => Got::Added(f),
            Err(_) => Got::Closed,
        },
        Some((i, false)) => match op.recv(&follows[i].events) {
            Ok(e) => Got::Event(i, e),
            Err(_) => Got::Ended(i),
        },
        Some((i, true)) => match op.recv(&follows[i].messages) {
            Ok(m) => Got::Message(i, m),
            // The node stopped; its event channel reports the end.
            Err(_) => Got::MessagesDone(i),
        },
    }
}
