//! The per-epoch CRDT: a last-writer-wins map keyed by eid plus the
//! HyperLogLog node-count sketch.

use crate::chain::Digest;
use crate::contribution::Contribution;
use crate::eid::Eid;
use crate::hll::{Hll, HLL_PRECISION};
use blake2::{Blake2s256, Digest as _};
use std::collections::BTreeMap;
use thiserror::Error;

/// Format byte at the start of [`EpochState::canonical_bytes`].
pub const STATE_FORMAT: u8 = 1;

/// Two states that cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MergeError {
    /// The states belong to different epochs.
    #[error("cannot merge epoch {theirs} into epoch {ours}")]
    EpochMismatch {
        /// This state's epoch.
        ours: u64,
        /// The other state's epoch.
        theirs: u64,
    },
}

/// Everything a node knows about one epoch. A join-semilattice: `merge` is
/// commutative, associative and idempotent, so nodes that have seen the same
/// contributions in any order and with any duplication hold equal states and
/// compute equal digests.
///
/// Invariant: every entry's eid is counted in the sketch (the sketch may
/// count more ids than there are entries, never fewer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochState {
    epoch: u64,
    entries: BTreeMap<Eid, Contribution>,
    hll: Hll,
}

impl EpochState {
    /// An empty state for `epoch`.
    pub fn new(epoch: u64) -> Self {
        Self {
            epoch,
            entries: BTreeMap::new(),
            hll: Hll::new(),
        }
    }

    /// The epoch this state describes.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Joins one entry in (LWW on the contribution, eid added to the
    /// sketch). Returns whether the state changed.
    pub fn insert(&mut self, eid: Eid, contribution: Contribution) -> bool {
        let mut changed = self.hll.insert_eid(&eid);
        match self.entries.get_mut(&eid) {
            Some(existing) => {
                let winner = existing.lww_max(contribution);
                if winner != *existing {
                    *existing = winner;
                    changed = true;
                }
            }
            None => {
                self.entries.insert(eid, contribution);
                changed = true;
            }
        }
        changed
    }

    /// Joins a sketch in (register-wise max). Returns whether it changed.
    pub fn merge_hll(&mut self, hll: &Hll) -> bool {
        self.hll.merge(hll)
    }

    /// Joins `other` into `self`. Returns whether `self` changed.
    pub fn merge(&mut self, other: &EpochState) -> Result<bool, MergeError> {
        if other.epoch != self.epoch {
            return Err(MergeError::EpochMismatch {
                ours: self.epoch,
                theirs: other.epoch,
            });
        }
        let mut changed = self.hll.merge(&other.hll);
        for (eid, c) in &other.entries {
            changed |= self.insert(*eid, *c);
        }
        Ok(changed)
    }

    /// The entry for `eid`, if any.
    pub fn get(&self, eid: &Eid) -> Option<&Contribution> {
        self.entries.get(eid)
    }

    /// All entries in eid order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&Eid, &Contribution)> {
        self.entries.iter()
    }

    /// Number of distinct contributors (entries).
    pub fn contributors(&self) -> usize {
        self.entries.len()
    }

    /// The node-count sketch.
    pub fn hll(&self) -> &Hll {
        &self.hll
    }

    /// The HyperLogLog node-count estimate.
    pub fn node_count_estimate(&self) -> u64 {
        self.hll.estimate()
    }

    /// Feeds the canonical encoding to `sink` piece by piece:
    /// format u8 (=1) ‖ precision u8 (=12) ‖ 4096 registers ‖ entry count
    /// u32 ‖ per entry in ascending eid order: eid (32) ‖ contribution (27).
    fn write_canonical(&self, mut sink: impl FnMut(&[u8])) {
        sink(&[STATE_FORMAT, HLL_PRECISION]);
        sink(&self.hll.registers()[..]);
        // A state cannot hold 2^32 entries in practice; saturate rather than wrap.
        let n = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        sink(&n.to_be_bytes());
        for (eid, c) in &self.entries {
            sink(eid.as_bytes());
            sink(&c.canonical_bytes());
        }
    }

    /// The canonical byte encoding of the state (see `PROTOCOL.md`): equal
    /// states, and only equal states, have equal encodings.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(2 + self.hll.registers().len() + 4 + self.entries.len() * 59);
        self.write_canonical(|b| out.extend_from_slice(b));
        out
    }

    /// `BLAKE2s-256(canonical_bytes)`: the commitment to the state that the
    /// epoch digest chains.
    pub fn state_digest(&self) -> Digest {
        let mut h = Blake2s256::new();
        self.write_canonical(|b| h.update(b));
        Digest(h.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::NatType;
    use proptest::prelude::*;

    fn arb_contribution() -> impl Strategy<Value = Contribution> {
        (0u64..4, 0u64..3, 0u64..3, 0u16..4, 0u8..7).prop_map(|(version, i, o, degree, nat)| {
            Contribution {
                version,
                bandwidth_in: i,
                bandwidth_out: o,
                degree,
                nat: NatType::from_code(nat).unwrap_or_default(),
            }
        })
    }

    /// Small eid pool so that conflicting writes to the same key are common.
    fn arb_eid() -> impl Strategy<Value = Eid> {
        (0u8..6).prop_map(|i| crate::eid::eid(1, &[i; 32]))
    }

    fn arb_hll_bits() -> impl Strategy<Value = Vec<(usize, u8)>> {
        prop::collection::vec((0usize..4096, 0u8..=53), 0..4)
    }

    fn arb_state() -> impl Strategy<Value = EpochState> {
        (
            prop::collection::vec((arb_eid(), arb_contribution()), 0..8),
            arb_hll_bits(),
        )
            .prop_map(|(entries, bits)| {
                let mut s = EpochState::new(1);
                for (e, c) in entries {
                    s.insert(e, c);
                }
                let mut h = Hll::new();
                for (i, r) in bits {
                    let _ = h.raise(i, r);
                }
                s.merge_hll(&h);
                s
            })
    }

    fn join(a: &EpochState, b: &EpochState) -> EpochState {
        let mut out = a.clone();
        out.merge(b).unwrap();
        out
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arb_state(), b in arb_state()) {
            let ab = join(&a, &b);
            let ba = join(&b, &a);
            prop_assert_eq!(ab.state_digest(), ba.state_digest());
            prop_assert_eq!(ab, ba);
        }

        #[test]
        fn merge_is_associative(a in arb_state(), b in arb_state(), c in arb_state()) {
            prop_assert_eq!(join(&join(&a, &b), &c), join(&a, &join(&b, &c)));
        }

        #[test]
        fn merge_is_idempotent(a in arb_state(), b in arb_state()) {
            prop_assert_eq!(join(&a, &a), a.clone());
            let ab = join(&a, &b);
            let mut again = ab.clone();
            prop_assert!(!again.merge(&b).unwrap());
            prop_assert_eq!(again, ab);
        }

        #[test]
        fn merge_is_an_upper_bound(a in arb_state(), b in arb_state()) {
            let ab = join(&a, &b);
            // Joining either input into the result changes nothing.
            prop_assert_eq!(join(&ab, &a), ab.clone());
            prop_assert_eq!(join(&ab, &b), ab);
        }

        #[test]
        fn any_order_with_duplicates_converges(
            states in prop::collection::vec(arb_state(), 1..8),
            order in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
            shuffle_seed in any::<u64>(),
        ) {
            // Reference: fold in the given order.
            let mut reference = EpochState::new(1);
            for s in &states {
                reference.merge(s).unwrap();
            }
            // Other replica: every state at least once, plus random
            // duplicates, in a shuffled order.
            let mut deliveries: Vec<&EpochState> = states.iter().collect();
            deliveries.extend(order.iter().map(|i| &states[i.index(states.len())]));
            let mut x = shuffle_seed | 1;
            for i in (1..deliveries.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                deliveries.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut replica = EpochState::new(1);
            for s in deliveries {
                replica.merge(s).unwrap();
            }
            prop_assert_eq!(replica.state_digest(), reference.state_digest());
            prop_assert_eq!(replica, reference);
        }

        #[test]
        fn sketch_counts_every_entry(a in arb_state()) {
            let mut h = Hll::new();
            for (e, _) in a.entries() {
                h.insert_eid(e);
            }
            let mut covered = a.hll().clone();
            prop_assert!(!covered.merge(&h));
        }
    }

    #[test]
    fn merge_rejects_other_epochs() {
        let mut a = EpochState::new(1);
        assert_eq!(
            a.merge(&EpochState::new(2)),
            Err(MergeError::EpochMismatch { ours: 1, theirs: 2 })
        );
    }

    #[test]
    fn canonical_bytes_layout_and_digest() {
        let mut s = EpochState::new(9);
        let e = crate::eid::eid(9, &[1u8; 32]);
        let c = Contribution {
            version: 1,
            bandwidth_in: 2,
            bandwidth_out: 3,
            degree: 4,
            nat: NatType::Public,
        };
        assert!(s.insert(e, c));
        assert!(!s.insert(e, c));
        let b = s.canonical_bytes();
        assert_eq!(b.len(), 2 + 4096 + 4 + 59);
        assert_eq!(&b[..2], &[1, 12]);
        assert_eq!(&b[4098..4102], &[0, 0, 0, 1]);
        assert_eq!(&b[4102..4134], e.as_bytes());
        assert_eq!(&b[4134..], &c.canonical_bytes());
        let direct: [u8; 32] = Blake2s256::digest(&b).into();
        assert_eq!(s.state_digest(), Digest(direct));
        assert_ne!(s.state_digest(), EpochState::new(9).state_digest());
    }
}
