//! Dense per-session storage for a supernode: slots in fixed chunks
//! allocated as the highest slot in use grows, so a table of N sessions
//! costs N slots plus at most one spare chunk (a `Vec` that doubles would
//! waste up to half), and no session allocates on its own.

/// Slots per chunk.
pub const CHUNK: usize = 256;
/// Highest slot count a table holds (the relay session id's slot half is
/// checked against it before anything is allocated).
pub const MAX_SLOTS: u32 = 1 << 22;

/// Slots of `T` by index, created as `T::default()` chunk by chunk.
#[derive(Debug)]
pub struct Slab<T> {
    chunks: Vec<Box<[T]>>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self { chunks: Vec::new() }
    }
}

impl<T: Default + Clone> Slab<T> {
    /// The slot `i`, if its chunk exists.
    pub fn get(&self, i: u32) -> Option<&T> {
        let i = i as usize;
        self.chunks.get(i / CHUNK).map(|c| &c[i % CHUNK])
    }

    /// The slot `i` mutably, if its chunk exists.
    pub fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        let i = i as usize;
        self.chunks.get_mut(i / CHUNK).map(|c| &mut c[i % CHUNK])
    }

    /// The slot `i`, creating chunks up to it; `None` at or past
    /// [`MAX_SLOTS`].
    pub fn slot(&mut self, i: u32) -> Option<&mut T> {
        if i >= MAX_SLOTS {
            return None;
        }
        let c = i as usize / CHUNK;
        while self.chunks.len() <= c {
            self.chunks
                .push(vec![T::default(); CHUNK].into_boxed_slice());
        }
        self.get_mut(i)
    }

    /// Slots that exist (a multiple of [`CHUNK`]).
    pub fn capacity(&self) -> u32 {
        (self.chunks.len() * CHUNK) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_in_chunks_and_stop_at_the_limit() {
        let mut s: Slab<u32> = Slab::default();
        assert_eq!(s.get(0), None);
        *s.slot(300).unwrap() = 7;
        assert_eq!(s.capacity(), 2 * CHUNK as u32);
        assert_eq!(s.get(300), Some(&7));
        assert_eq!(s.get(0), Some(&0));
        assert_eq!(s.get(512), None);
        assert!(s.slot(MAX_SLOTS).is_none());
        assert_eq!(s.capacity(), 2 * CHUNK as u32);
    }
}
