//! State shared by the runner's threads: candidate deduplication, counters, channels.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};

use crate::runner::{Candidate, DiscoveryEvent, Source};
use crate::stats::DiscoveryStats;

/// Most addresses remembered for deduplication before expired ones are pruned.
const MAX_SEEN: usize = 8192;

pub(crate) struct Shared {
    pub(crate) stop: AtomicBool,
    pub(crate) listen_port: AtomicU16,
    stats: Mutex<DiscoveryStats>,
    seen: Mutex<HashMap<SocketAddr, Instant>>,
    candidates: Sender<Candidate>,
    events: Sender<DiscoveryEvent>,
    dedup_window: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking worker must not take the others down: use the data anyway.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Shared {
    pub(crate) fn new(
        listen_port: u16,
        stats: DiscoveryStats,
        candidates: Sender<Candidate>,
        events: Sender<DiscoveryEvent>,
        dedup_window: Duration,
    ) -> Self {
        Self {
            stop: AtomicBool::new(false),
            listen_port: AtomicU16::new(listen_port),
            stats: Mutex::new(stats),
            seen: Mutex::new(HashMap::new()),
            candidates,
            events,
            dedup_window,
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn port(&self) -> u16 {
        self.listen_port.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> MutexGuard<'_, DiscoveryStats> {
        lock(&self.stats)
    }

    /// Sleeps until `deadline` in short slices; returns false if the runner is stopping.
    pub(crate) fn sleep_until(&self, deadline: Instant) -> bool {
        loop {
            if self.stopping() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
    }

    pub(crate) fn emit_event(&self, event: DiscoveryEvent) {
        if self.events.try_send(event).is_err() {
            self.stats().drops.events_full += 1;
        }
    }

    /// Offers a candidate: filters invalid and self addresses, deduplicates
    /// within the window, and sends it on the bounded channel.
    pub(crate) fn offer(&self, addr: SocketAddr, source: Source) {
        let ip = addr.ip();
        let invalid = addr.port() == 0
            || ip.is_unspecified()
            || ip.is_multicast()
            || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if invalid {
            self.stats().drops.invalid_address += 1;
            return;
        }
        if ip.is_loopback() && addr.port() == self.port() {
            self.stats().drops.self_address += 1;
            return;
        }
        let now = Instant::now();
        {
            let mut seen = lock(&self.seen);
            if let Some(at) = seen.get(&addr) {
                if now.saturating_duration_since(*at) < self.dedup_window {
                    drop(seen);
                    self.stats().drops.duplicate += 1;
                    return;
                }
            }
            if seen.len() >= MAX_SEEN {
                let window = self.dedup_window;
                seen.retain(|_, at| now.saturating_duration_since(*at) < window);
                if seen.len() >= MAX_SEEN {
                    seen.clear();
                }
            }
            seen.insert(addr, now);
        }
        match self.candidates.try_send(Candidate { addr, source }) {
            Ok(()) => self.stats().candidates_emitted += 1,
            Err(e) => {
                // Not delivered: forget it so a later sighting can be delivered.
                lock(&self.seen).remove(&addr);
                let mut stats = self.stats();
                match e {
                    TrySendError::Full(_) => stats.drops.channel_full += 1,
                    TrySendError::Disconnected(_) => stats.drops.receiver_gone += 1,
                }
            }
        }
    }

    /// Records a successful tracker announce and emits the event.
    pub(crate) fn tracker_ok(
        &self,
        index: usize,
        url: &str,
        peers: usize,
        truncated: usize,
        interval: Duration,
    ) {
        {
            let mut stats = self.stats();
            stats.drops.oversized_peer_lists += truncated as u64;
            if let Some(t) = stats.trackers.get_mut(index) {
                t.announces_ok += 1;
                t.consecutive_failures = 0;
                t.peers_returned += peers as u64;
                t.last_ok_unix_ms = Some(unix_ms());
                t.interval_sec = Some(interval.as_secs());
            }
        }
        self.emit_event(DiscoveryEvent::TrackerAnnounce {
            tracker: url.to_string(),
            peers,
        });
    }

    /// Records a failed tracker announce cycle and emits the event.
    pub(crate) fn tracker_failed(&self, index: usize, url: &str, error: String) {
        {
            let mut stats = self.stats();
            if let Some(t) = stats.trackers.get_mut(index) {
                t.failures += 1;
                t.consecutive_failures += 1;
                t.last_error = Some(error.clone());
            }
        }
        self.emit_event(DiscoveryEvent::TrackerFailure {
            tracker: url.to_string(),
            error,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(cap: usize, window: Duration) -> (Shared, crossbeam_channel::Receiver<Candidate>) {
        let (tx, rx) = crossbeam_channel::bounded(cap);
        let (etx, _erx) = crossbeam_channel::bounded(1);
        (
            Shared::new(4000, DiscoveryStats::default(), tx, etx, window),
            rx,
        )
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn filters_invalid_self_and_duplicates() {
        let (s, rx) = shared(8, Duration::from_secs(60));
        for bad in [
            "0.0.0.0:1",
            "10.0.0.1:0",
            "224.0.0.1:5",
            "255.255.255.255:5",
            "[::]:5",
        ] {
            s.offer(addr(bad), Source::Dht);
        }
        s.offer(addr("127.0.0.1:4000"), Source::Lan);
        s.offer(addr("[::1]:4000"), Source::Lan);
        s.offer(addr("192.0.2.7:4000"), Source::Dht); // same port, not loopback: a peer
        s.offer(addr("192.0.2.7:4000"), Source::Lan);
        let st = s.stats().clone();
        assert_eq!(st.drops.invalid_address, 5);
        assert_eq!(st.drops.self_address, 2);
        assert_eq!(st.drops.duplicate, 1);
        assert_eq!(st.candidates_emitted, 1);
        assert_eq!(
            rx.try_iter().collect::<Vec<_>>(),
            vec![Candidate {
                addr: addr("192.0.2.7:4000"),
                source: Source::Dht
            }]
        );
    }

    #[test]
    fn redelivers_after_the_window_and_after_overflow() {
        let (s, rx) = shared(1, Duration::from_millis(30));
        s.offer(addr("192.0.2.1:1"), Source::Dht);
        s.offer(addr("192.0.2.2:1"), Source::Dht); // channel full: dropped, not remembered
        assert_eq!(s.stats().drops.channel_full, 1);
        assert_eq!(rx.recv().unwrap().addr, addr("192.0.2.1:1"));
        s.offer(addr("192.0.2.2:1"), Source::Dht);
        assert_eq!(rx.recv().unwrap().addr, addr("192.0.2.2:1"));
        std::thread::sleep(Duration::from_millis(60));
        s.offer(addr("192.0.2.2:1"), Source::Dht);
        assert_eq!(
            rx.recv().unwrap().addr,
            addr("192.0.2.2:1"),
            "window elapsed"
        );
        drop(rx);
        s.offer(addr("192.0.2.3:1"), Source::Dht);
        assert_eq!(s.stats().drops.receiver_gone, 1);
    }
}
