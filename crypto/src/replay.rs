//! Sliding replay window over 64-bit datagram counters.
//!
//! 2048 bits of history, the size boringtun and WireGuard use to tolerate
//! heavy reordering: counters older than the window, or seen inside it, are
//! rejected.

const WORDS: usize = 32;
const BITS: u64 = (WORDS * 64) as u64;

/// Counters at or beyond this are never accepted (the session must rekey).
pub const REJECT_AFTER: u64 = u64::MAX - BITS;

/// Tracks which counters have been accepted.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest counter accepted so far, plus one (0 = nothing yet).
    next: u64,
    bitmap: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// An empty window.
    pub fn new() -> Self {
        Self {
            next: 0,
            bitmap: [0; WORDS],
        }
    }

    /// True if `counter` would be accepted (call before decrypting).
    pub fn check(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER {
            return false;
        }
        if counter >= self.next {
            return true;
        }
        if self.next - counter > BITS - 64 {
            return false;
        }
        let (w, b) = Self::slot(counter);
        self.bitmap[w] & (1 << b) == 0
    }

    /// Records `counter` as seen (call after the AEAD tag verified).
    /// Returns false if it was a replay or too old.
    pub fn update(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter >= self.next {
            // Clear the words the window slides over.
            let cur_word = self.next / 64;
            let new_word = counter / 64;
            let advance = (new_word - cur_word).min(WORDS as u64);
            for i in 1..=advance {
                let w = ((cur_word + i) % WORDS as u64) as usize;
                self.bitmap[w] = 0;
            }
            if self.next == 0 && counter / 64 == 0 {
                // first word already zero
            }
            self.next = counter + 1;
        }
        let (w, b) = Self::slot(counter);
        self.bitmap[w] |= 1 << b;
        true
    }

    fn slot(counter: u64) -> (usize, u32) {
        (
            ((counter / 64) % WORDS as u64) as usize,
            (counter % 64) as u32,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_replays_and_old() {
        let mut w = ReplayWindow::new();
        assert!(w.update(0));
        assert!(!w.update(0));
        assert!(w.update(5));
        assert!(w.update(3));
        assert!(!w.update(3));
        assert!(w.update(10_000));
        assert!(!w.update(5));
        assert!(w.update(10_000 - 1000));
        assert!(!w.update(10_000 - 1000));
        assert!(!w.update(10_000 - 3000));
        assert!(!w.update(REJECT_AFTER));
    }

    #[test]
    fn big_jump_clears_history() {
        let mut w = ReplayWindow::new();
        for c in 0..3000 {
            assert!(w.update(c));
        }
        assert!(w.update(1_000_000));
        assert!(w.update(1_000_000 - 100));
        assert!(!w.update(2999));
    }

    proptest! {
        /// Every counter within the window is accepted exactly once, in any order.
        #[test]
        fn each_counter_once(mut counters in proptest::collection::vec(0u64..1500, 1..400)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::HashSet::new();
            counters.push(1500);
            for c in counters {
                let fresh = seen.insert(c);
                prop_assert_eq!(w.update(c), fresh);
            }
        }
    }
}
