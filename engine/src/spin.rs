//! Bounded adaptive busy-polling before a thread parks. Waking a parked
//! thread costs tens of microseconds on a busy VM; a thread that just did
//! work polls its inputs a little longer instead, the way Go's scheduler
//! spins before it parks and `SO_BUSY_POLL` polls a socket. The budget is
//! bounded (idle CPU stays at zero: a thread only spins right after work)
//! and adapts: it doubles, up to the configured bound, when work arrived
//! while spinning, and halves when a spin ran out without any. Subscribers
//! poll their channel the same way before they block.

use crossbeam_channel::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

/// One thread's spin state.
pub(crate) struct Spin {
    max: Duration,
    budget: Duration,
    /// When the thread last did work; `None` once a spin ran out.
    last_work: Option<Instant>,
    /// True while the thread is between work and parking.
    spinning: bool,
}

impl Spin {
    /// Spinning for at most `max_us` microseconds after work (0: never).
    pub fn new(max_us: u32) -> Self {
        let max = Duration::from_micros(u64::from(max_us));
        Self {
            max,
            budget: max,
            last_work: None,
            spinning: false,
        }
    }

    /// The round did work (input, a command, output).
    pub fn worked(&mut self) {
        if self.spinning {
            // The spin paid off: allow longer ones.
            self.budget = (self.budget * 2).min(self.max);
            self.spinning = false;
        }
        self.last_work = Some(Instant::now());
    }

    /// True if the thread should poll once more instead of parking: it did
    /// work less than the current budget ago.
    pub fn keep_polling(&mut self) -> bool {
        let Some(t) = self.last_work else {
            return false;
        };
        if self.budget > Duration::ZERO && t.elapsed() < self.budget {
            self.spinning = true;
            // Yield rather than spin on the CPU: on a machine with more
            // runnable threads than cores the thread we wait for may need
            // this core, and a yielding thread still wakes without a
            // futex or an IPI.
            std::thread::yield_now();
            return true;
        }
        if self.spinning {
            // Ran out without work: spin less next time (never below an
            // eighth of the bound, so it can grow back).
            self.budget = (self.budget / 2).max(self.max / 8);
            self.spinning = false;
        }
        self.last_work = None;
        false
    }
}

/// Takes the next message of `rx`, polling for up to `spin` before it
/// blocks for the rest of `timeout`; `None` on timeout or disconnection.
pub(crate) fn recv_timeout<T>(rx: &Receiver<T>, spin: Duration, timeout: Duration) -> Option<T> {
    let start = Instant::now();
    if let Some(m) = poll(rx, spin.min(timeout), start) {
        return m;
    }
    rx.recv_timeout(timeout.saturating_sub(start.elapsed()))
        .ok()
}

/// Takes the next message of `rx`, polling for up to `spin` before it
/// blocks; `None` once the channel is disconnected.
pub(crate) fn recv<T>(rx: &Receiver<T>, spin: Duration) -> Option<T> {
    if let Some(m) = poll(rx, spin, Instant::now()) {
        return m;
    }
    rx.recv().ok()
}

/// Polls `rx` until `spin` after `start`: `Some` with the outcome if the
/// channel had a message or disconnected, `None` if the time ran out.
fn poll<T>(rx: &Receiver<T>, spin: Duration, start: Instant) -> Option<Option<T>> {
    loop {
        match rx.try_recv() {
            Ok(m) => return Some(Some(m)),
            Err(TryRecvError::Disconnected) => return Some(None),
            Err(TryRecvError::Empty) => {}
        }
        if start.elapsed() >= spin {
            return None;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_spins_without_work_or_budget() {
        let mut s = Spin::new(1_000_000);
        assert!(!s.keep_polling(), "no work yet");
        let mut off = Spin::new(0);
        off.worked();
        assert!(!off.keep_polling(), "a zero budget never spins");
    }

    #[test]
    fn spins_after_work_then_parks_and_adapts() {
        let mut s = Spin::new(1_000_000);
        s.worked();
        assert!(s.keep_polling(), "work just happened");
        // Force expiry: pretend the work was long ago.
        s.last_work = Some(Instant::now() - Duration::from_secs(2));
        assert!(!s.keep_polling(), "the budget ran out");
        assert_eq!(s.budget, Duration::from_micros(500_000), "halved");
        assert!(!s.keep_polling(), "stays parked until new work");
        s.worked();
        assert!(s.keep_polling());
        s.worked();
        assert_eq!(s.budget, Duration::from_micros(1_000_000), "doubled back");
    }

    #[test]
    fn channel_polls_then_blocks_and_sees_disconnection() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        tx.send(1u8).unwrap();
        assert_eq!(recv(&rx, Duration::from_micros(10)), Some(1));
        let short = Duration::from_millis(1);
        assert_eq!(recv_timeout(&rx, Duration::from_micros(10), short), None);
        tx.send(2).unwrap();
        assert_eq!(recv_timeout(&rx, Duration::ZERO, short), Some(2));
        drop(tx);
        assert_eq!(recv(&rx, Duration::from_secs(3600)), None, "disconnected");
    }
}
