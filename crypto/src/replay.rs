//! Sliding replay window over 64-bit datagram counters.
//!
//! 2048 bits of history, the size boringtun and WireGuard use to tolerate
//! heavy reordering: counters older than the window, or seen inside it, are
//! rejected. While counters arrive strictly in order (every idle or calm
//! session) the window needs no bitmap: everything below the next counter
//! was seen. The 256-byte bitmap is allocated at the first gap or
//! reordering.

const WORDS: usize = 32;
const BITS: u64 = (WORDS * 64) as u64;

/// Counters at or beyond this are never accepted (the session must rekey).
pub const REJECT_AFTER: u64 = u64::MAX - BITS;

/// Tracks which counters have been accepted.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest counter accepted so far, plus one (0 = nothing yet).
    next: u64,
    /// Which counters of the window were seen; `None` while every counter
    /// below `next` was (they came in order).
    bitmap: Option<Box<[u64; WORDS]>>,
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
            bitmap: None,
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
        match &self.bitmap {
            // In order so far: every counter below `next` was seen.
            None => false,
            Some(bits) => {
                let (w, b) = Self::slot(counter);
                bits[w] & (1 << b) == 0
            }
        }
    }

    /// Records `counter` as seen (call after the AEAD tag verified).
    /// Returns false if it was a replay or too old.
    pub fn update(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if self.bitmap.is_none() {
            if counter == self.next {
                self.next += 1;
                return true;
            }
            // The first gap: from now on the window needs its bitmap.
            self.bitmap = Some(Self::all_seen_below(self.next));
        }
        let Some(bits) = self.bitmap.as_mut() else {
            return false;
        };
        if counter >= self.next {
            // Counters from `next` on are unseen: clear their bits in
            // `next`'s own word (an earlier lap may have left some there)
            // and the words the window slides over.
            let (w, b) = Self::slot(self.next);
            bits[w] &= (1u64 << b) - 1;
            let cur_word = self.next / 64;
            let new_word = counter / 64;
            let advance = (new_word - cur_word).min(WORDS as u64);
            for i in 1..=advance {
                let w = ((cur_word + i) % WORDS as u64) as usize;
                bits[w] = 0;
            }
            self.next = counter + 1;
        }
        let (w, b) = Self::slot(counter);
        bits[w] |= 1 << b;
        true
    }

    /// A bitmap in which every counter below `next` is marked seen and the
    /// rest of `next`'s word is not (the words past it are cleared as the
    /// window slides onto them).
    fn all_seen_below(next: u64) -> Box<[u64; WORDS]> {
        let mut bits = Box::new([u64::MAX; WORDS]);
        let (w, b) = Self::slot(next);
        bits[w] = (1u64 << b) - 1;
        bits
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

    #[test]
    fn in_order_counters_need_no_bitmap_until_a_gap() {
        let mut w = ReplayWindow::new();
        for c in 0..200 {
            assert!(w.update(c));
        }
        assert!(w.bitmap.is_none());
        assert!(!w.update(199) && !w.update(0) && !w.update(150));
        assert!(w.update(203));
        assert!(w.bitmap.is_some());
        assert!(w.update(201) && w.update(200) && w.update(202));
        assert!(!w.update(201) && !w.update(150));
        assert!(w.update(204));
    }

    #[test]
    fn a_word_boundary_after_a_lap_leaves_no_stale_bits() {
        // Counter 197 was seen one lap (2048) earlier in the same slot.
        let mut w = ReplayWindow::new();
        assert!(w.update(197) && w.update(2047));
        assert!(w.update(2048 + 191));
        assert!(w.update(2048 + 198));
        assert!(w.update(2048 + 197), "a stale bit from the last lap");
        assert!(!w.update(2048 + 197));
    }

    proptest! {
        /// Counters over several laps of the window, in runs and jumps.
        #[test]
        fn each_counter_once_over_laps(steps in proptest::collection::vec((0u64..200, 0u64..3), 1..300)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::HashSet::new();
            let mut top = 0u64;
            for (jump, back) in steps {
                top += jump;
                // At most 14 behind the top: always inside the window.
                let c = top.saturating_sub(back * 7);
                let fresh = seen.insert(c);
                prop_assert_eq!(w.update(c), fresh);
            }
        }

        /// In-order runs and then any order: each counter once.
        #[test]
        fn in_order_then_shuffled(run in 0u64..300, mut counters in proptest::collection::vec(0u64..1500, 1..200)) {
            let mut w = ReplayWindow::new();
            let mut seen = std::collections::HashSet::new();
            for c in 0..run {
                prop_assert!(w.update(c));
                seen.insert(c);
            }
            counters.push(1500);
            for c in counters {
                let fresh = seen.insert(c);
                prop_assert_eq!(w.update(c), fresh);
            }
        }


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
