//! The waker thread behind the async API: one thread per process that
//! watches the engine's channels for readiness and wakes the futures
//! waiting on them, so `moss` needs no async runtime of its own.
//!
//! A registration is a channel to watch (woken when it holds a message or
//! disconnects; the message stays in the channel for its owner to take) or
//! a deadline. Each has an id; registering an id again replaces its waker
//! (a task polled from another thread), cancelling drops it. Readiness is
//! level-triggered, so a message that lands between a future's empty
//! `try_recv` and its registration wakes it at once.

use crossbeam_channel::{unbounded, Receiver, Select, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::Waker;
use std::time::Instant;

/// A channel the reactor can wait on without taking its messages.
pub(crate) trait Watch: Send {
    /// Adds a receive operation on the channel to `sel`.
    fn add<'a>(&'a self, sel: &mut Select<'a>) -> usize;
}

impl<T: Send> Watch for Receiver<T> {
    fn add<'a>(&'a self, sel: &mut Select<'a>) -> usize {
        sel.recv(self)
    }
}

/// What wakes a registration.
pub(crate) enum Until {
    /// The channel is ready (a message or disconnection).
    Ready(Box<dyn Watch>),
    /// The deadline passed.
    Deadline(Instant),
}

enum Op {
    Register(u64, Until, Waker),
    Cancel(u64),
    #[cfg(test)]
    Count(Sender<usize>),
}

struct Reactor {
    ops: Sender<Op>,
    next_id: AtomicU64,
}

fn reactor() -> Option<&'static Reactor> {
    static R: OnceLock<Option<Reactor>> = OnceLock::new();
    R.get_or_init(|| {
        let (tx, rx) = unbounded();
        let spawned = std::thread::Builder::new()
            .name("moss-async".into())
            .spawn(move || run(rx));
        match spawned {
            Ok(_) => Some(Reactor {
                ops: tx,
                next_id: AtomicU64::new(1),
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the async waker thread");
                None
            }
        }
    })
    .as_ref()
}

/// A fresh registration id.
pub(crate) fn next_id() -> u64 {
    reactor().map_or(0, |r| r.next_id.fetch_add(1, Ordering::Relaxed))
}

/// Wakes `waker` once `until` holds. If the reactor thread could not be
/// started, wakes at once: the future polls again (busy, but not stuck).
pub(crate) fn register(id: u64, until: Until, waker: &Waker) {
    let sent =
        reactor().is_some_and(|r| r.ops.send(Op::Register(id, until, waker.clone())).is_ok());
    if !sent {
        waker.wake_by_ref();
    }
}

/// Drops registration `id` if it is still waiting.
pub(crate) fn cancel(id: u64) {
    if let Some(r) = reactor() {
        let _ = r.ops.send(Op::Cancel(id));
    }
}

/// Registrations waiting right now (tests only).
#[cfg(test)]
pub(crate) fn watched() -> usize {
    let (tx, rx) = crossbeam_channel::bounded(1);
    match reactor() {
        Some(r) if r.ops.send(Op::Count(tx)).is_ok() => rx.recv().unwrap_or(usize::MAX),
        _ => usize::MAX,
    }
}

fn run(ops: Receiver<Op>) {
    let mut waiting: HashMap<u64, (Until, Waker)> = HashMap::new();
    loop {
        // Wake everything whose deadline passed.
        let now = Instant::now();
        waiting.retain(|_, (until, waker)| match until {
            Until::Deadline(at) if *at <= now => {
                waker.wake_by_ref();
                false
            }
            _ => true,
        });
        let next_deadline = waiting
            .values()
            .filter_map(|(u, _)| match u {
                Until::Deadline(at) => Some(*at),
                Until::Ready(_) => None,
            })
            .min();
        let ready = {
            let mut sel = Select::new();
            let ops_index = sel.recv(&ops);
            let mut ids = HashMap::new();
            for (id, (until, _)) in &waiting {
                if let Until::Ready(w) = until {
                    ids.insert(w.add(&mut sel), *id);
                }
            }
            let index = match next_deadline {
                Some(at) => sel.ready_deadline(at).ok(),
                None => Some(sel.ready()),
            };
            match index {
                Some(i) if i == ops_index => None,
                Some(i) => ids.get(&i).copied(),
                None => None,
            }
        };
        if let Some(id) = ready {
            if let Some((_, waker)) = waiting.remove(&id) {
                waker.wake();
            }
        }
        loop {
            match ops.try_recv() {
                Ok(Op::Register(id, until, waker)) => {
                    waiting.insert(id, (until, waker));
                }
                Ok(Op::Cancel(id)) => {
                    waiting.remove(&id);
                }
                #[cfg(test)]
                Ok(Op::Count(reply)) => {
                    let _ = reply.send(waiting.len());
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn wait_for(c: &Count, n: usize) -> bool {
        for _ in 0..500 {
            if c.0.load(Ordering::SeqCst) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn channels_deadlines_and_cancels() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let (tx, rx) = crossbeam_channel::bounded::<u8>(1);
        let id = next_id();
        register(id, Until::Ready(Box::new(rx.clone())), &waker);
        tx.send(1).unwrap();
        assert!(wait_for(&count, 1), "a message wakes the waiter");
        assert_eq!(rx.try_recv(), Ok(1), "the message stays for its owner");

        register(next_id(), Until::Deadline(Instant::now()), &waker);
        assert!(wait_for(&count, 2), "a passed deadline wakes the waiter");

        let id = next_id();
        let far = Instant::now() + Duration::from_secs(3600);
        register(id, Until::Deadline(far), &waker);
        register(id, Until::Ready(Box::new(rx.clone())), &waker);
        let before = watched();
        cancel(id);
        assert_eq!(watched(), before - 1, "a cancelled id is gone");
        drop(tx);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "a cancelled waiter is not woken"
        );
    }
}
