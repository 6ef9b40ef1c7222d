//! A small set of peers kept inline (no heap allocation until it spills),
//! for per-message bookkeeping on the per-packet path.
//!
//! Peers are stored as the first 8 bytes of their id. Two peers sharing a
//! prefix (a 2⁻⁶⁴ accident, or an attacker grinding 64 bits of key) are
//! confused, which only costs an optimisation: a delivery not credited
//! twice, an IHAVE not sent.

use moss_crypto::PeerId;

/// The 8-byte key a peer is stored under.
pub(crate) fn key(p: &PeerId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p.0[..8]);
    u64::from_le_bytes(b)
}

/// Up to `N` peers inline, then up to `max` in total on the heap.
#[derive(Debug, Clone)]
pub(crate) struct PeerSet<const N: usize> {
    inline: [u64; N],
    len: u8,
    spill: Vec<u64>,
}

impl<const N: usize> Default for PeerSet<N> {
    fn default() -> Self {
        Self {
            inline: [0; N],
            len: 0,
            spill: Vec::new(),
        }
    }
}

impl<const N: usize> PeerSet<N> {
    /// A set holding `p` alone.
    pub fn one(p: &PeerId) -> Self {
        let mut s = Self::default();
        s.inline[0] = key(p);
        s.len = 1;
        s
    }

    /// True when `p` is in the set.
    pub fn contains(&self, p: &PeerId) -> bool {
        let k = key(p);
        self.inline[..usize::from(self.len)].contains(&k) || self.spill.contains(&k)
    }

    /// Peers held.
    pub fn len(&self) -> usize {
        usize::from(self.len) + self.spill.len()
    }

    /// Adds `p` unless present or `max` peers are held; true when added.
    pub fn insert(&mut self, p: &PeerId, max: usize) -> bool {
        if self.len() >= max || self.contains(p) {
            return false;
        }
        let k = key(p);
        if usize::from(self.len) < N {
            self.inline[usize::from(self.len)] = k;
            self.len += 1;
        } else {
            self.spill.push(k);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_then_spill_then_full() {
        let mut s = PeerSet::<2>::one(&PeerId([1; 32]));
        assert!(s.contains(&PeerId([1; 32])));
        assert!(!s.insert(&PeerId([1; 32]), 3));
        assert!(s.insert(&PeerId([2; 32]), 3));
        assert!(s.insert(&PeerId([3; 32]), 3));
        assert!(!s.insert(&PeerId([4; 32]), 3), "full");
        assert_eq!(s.len(), 3);
        assert!(s.contains(&PeerId([3; 32])) && !s.contains(&PeerId([4; 32])));
    }
}
