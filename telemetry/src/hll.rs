//! HyperLogLog cardinality sketch for the node count.
//!
//! Precision is fixed by the protocol at p = 12: 4096 one-byte registers
//! (4 KiB), a relative standard error of 1.04/√4096 ≈ 1.6 %. Every node must
//! use the same precision for sketches to merge, so it is a constant rather
//! than a config knob. The sketch holds only per-register maxima, so the set
//! of counted ids can never be recovered from it.

use crate::eid::Eid;
use std::fmt;
use thiserror::Error;

/// Log2 of the register count.
pub const HLL_PRECISION: u8 = 12;
/// Number of registers (2^12).
pub const HLL_REGISTERS: usize = 1 << HLL_PRECISION;
/// Largest possible register value: 64 − p + 1.
pub const HLL_MAX_RANK: u8 = 64 - HLL_PRECISION + 1;

/// A register array that cannot be used as a sketch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HllError {
    /// The register array does not have 4096 entries.
    #[error("HyperLogLog needs {HLL_REGISTERS} registers, got {0}")]
    WrongLength(usize),
    /// A register index is 4096 or more.
    #[error("HyperLogLog register index {0} out of range")]
    IndexOutOfRange(usize),
    /// A register value is above 53.
    #[error("HyperLogLog register {index} has rank {rank}, above {HLL_MAX_RANK}")]
    RankOutOfRange {
        /// The register index.
        index: usize,
        /// The rejected value.
        rank: u8,
    },
}

/// A HyperLogLog sketch with 4096 registers. Merge is a register-wise max,
/// so it is commutative, associative and idempotent.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Hll {
    registers: Box<[u8; HLL_REGISTERS]>,
}

impl Default for Hll {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Hll {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hll")
            .field("nonzero_registers", &self.nonzero_count())
            .field("estimate", &self.estimate())
            .finish()
    }
}

impl Hll {
    /// An empty sketch.
    pub fn new() -> Self {
        Self {
            registers: Box::new([0u8; HLL_REGISTERS]),
        }
    }

    /// A sketch from a full register array; each value must be at most 53.
    pub fn from_registers(registers: &[u8]) -> Result<Self, HllError> {
        if registers.len() != HLL_REGISTERS {
            return Err(HllError::WrongLength(registers.len()));
        }
        let mut h = Self::new();
        for (index, &rank) in registers.iter().enumerate() {
            h.raise(index, rank)?;
        }
        Ok(h)
    }

    /// Raises register `index` to `rank` if that is higher (the merge of a
    /// single register). Rejects indices ≥ 4096 and ranks > 53.
    pub fn raise(&mut self, index: usize, rank: u8) -> Result<(), HllError> {
        if rank > HLL_MAX_RANK {
            return Err(HllError::RankOutOfRange { index, rank });
        }
        let slot = self
            .registers
            .get_mut(index)
            .ok_or(HllError::IndexOutOfRange(index))?;
        if rank > *slot {
            *slot = rank;
        }
        Ok(())
    }

    /// Adds a uniformly distributed 64-bit hash: the top 12 bits pick the
    /// register, the rank is the position of the first 1 bit in the rest.
    /// Returns whether the sketch changed.
    pub fn insert_hash(&mut self, hash: u64) -> bool {
        let index = (hash >> (64 - HLL_PRECISION)) as usize;
        let rest = hash << HLL_PRECISION;
        // rest == 0 gives leading_zeros 64, capped so the rank is at most 53.
        let rank = rest.leading_zeros().min(u32::from(HLL_MAX_RANK) - 1) as u8 + 1;
        match self.registers.get_mut(index) {
            Some(slot) if rank > *slot => {
                *slot = rank;
                true
            }
            _ => false,
        }
    }

    /// Adds an eid (its first 8 bytes are the hash; eids are BLAKE2s output).
    /// Returns whether the sketch changed.
    pub fn insert_eid(&mut self, eid: &Eid) -> bool {
        self.insert_hash(eid.hll_hash())
    }

    /// Folds `other` in (register-wise max). Returns whether anything changed.
    pub fn merge(&mut self, other: &Hll) -> bool {
        let mut changed = false;
        for (mine, theirs) in self.registers.iter_mut().zip(other.registers.iter()) {
            if *theirs > *mine {
                *mine = *theirs;
                changed = true;
            }
        }
        changed
    }

    /// The register array.
    pub fn registers(&self) -> &[u8; HLL_REGISTERS] {
        &self.registers
    }

    /// Number of non-zero registers.
    pub fn nonzero_count(&self) -> usize {
        self.registers.iter().filter(|&&r| r != 0).count()
    }

    /// Whether every register is zero.
    pub fn is_empty(&self) -> bool {
        self.registers.iter().all(|&r| r == 0)
    }

    /// `(index, rank)` of every non-zero register, in index order.
    pub fn nonzero(&self) -> impl Iterator<Item = (usize, u8)> + '_ {
        self.registers
            .iter()
            .enumerate()
            .filter(|(_, &r)| r != 0)
            .map(|(i, &r)| (i, r))
    }

    /// The cardinality estimate: the raw HyperLogLog estimate
    /// `α·m²/Σ2^−M[j]` with `α = 0.7213/(1 + 1.079/m)`, replaced by linear
    /// counting `m·ln(m/V)` when the raw estimate is at most 2.5·m and V > 0
    /// registers are still zero. No large-range correction is needed with
    /// 64-bit hashes.
    pub fn estimate(&self) -> u64 {
        let m = HLL_REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let mut sum = 0.0f64;
        let mut zeros = 0usize;
        for &r in self.registers.iter() {
            sum += (-f64::from(r)).exp2();
            if r == 0 {
                zeros += 1;
            }
        }
        let mut est = alpha * m * m / sum;
        if est <= 2.5 * m && zeros > 0 {
            est = m * (m / zeros as f64).ln();
        }
        // `as` saturates and maps NaN to 0; est is finite and ≥ 0 here.
        est.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{RngCore, SeedableRng};

    fn random_eids(seed: u64, n: usize) -> Vec<Eid> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let mut pk = [0u8; 32];
                rng.fill_bytes(&mut pk);
                crate::eid::eid(42, &pk)
            })
            .collect()
    }

    #[test]
    fn empty_sketch_estimates_zero() {
        assert_eq!(Hll::new().estimate(), 0);
        assert!(Hll::new().is_empty());
    }

    #[test]
    fn small_counts_are_near_exact() {
        let mut h = Hll::new();
        for e in random_eids(1, 20) {
            h.insert_eid(&e);
        }
        assert_eq!(h.estimate(), 20);
    }

    #[test]
    fn ten_thousand_items_within_three_standard_errors() {
        let n = 10_000usize;
        let bound = 3.0 * 1.04 / (HLL_REGISTERS as f64).sqrt();
        for seed in [7u64, 8, 9] {
            let mut h = Hll::new();
            for e in random_eids(seed, n) {
                h.insert_eid(&e);
            }
            let est = h.estimate() as f64;
            let rel = (est - n as f64).abs() / n as f64;
            assert!(
                rel <= bound,
                "seed {seed}: estimate {est}, error {rel} > {bound}"
            );
        }
    }

    #[test]
    fn estimates_across_the_range_stay_within_three_standard_errors() {
        // Covers both sides of the linear-counting switch at 2.5·m ≈ 10 240.
        let bound = 3.0 * 1.04 / (HLL_REGISTERS as f64).sqrt();
        for (seed, n) in [
            (20u64, 1_000usize),
            (21, 5_000),
            (22, 12_000),
            (23, 15_000),
            (24, 20_000),
            (25, 40_000),
        ] {
            let mut h = Hll::new();
            for e in random_eids(seed, n) {
                h.insert_eid(&e);
            }
            let rel = (h.estimate() as f64 - n as f64).abs() / n as f64;
            assert!(rel <= bound, "n = {n}: error {rel} > {bound}");
        }
    }

    #[test]
    fn hundred_thousand_items_within_three_standard_errors() {
        let n = 100_000usize;
        let mut h = Hll::new();
        for e in random_eids(11, n) {
            h.insert_eid(&e);
        }
        let rel = (h.estimate() as f64 - n as f64).abs() / n as f64;
        assert!(rel <= 3.0 * 1.04 / 64.0, "error {rel}");
    }

    #[test]
    fn merge_is_union_and_duplicates_do_not_count() {
        let a_ids = random_eids(2, 1000);
        let b_ids = random_eids(3, 1000);
        let mut a = Hll::new();
        let mut b = Hll::new();
        for e in &a_ids {
            a.insert_eid(e);
        }
        for e in &b_ids {
            b.insert_eid(e);
        }
        let mut union = Hll::new();
        for e in a_ids.iter().chain(b_ids.iter()) {
            union.insert_eid(e);
        }
        let before = a.clone();
        assert!(a.merge(&b));
        assert_eq!(a, union);
        let est = a.estimate();
        assert!((1900..=2100).contains(&est), "{est}");
        // Re-adding everything changes nothing.
        assert!(a_ids.iter().all(|e| !a.insert_eid(e)));
        assert_eq!(a, union);
        assert!(!a.merge(&before));
    }

    #[test]
    fn rank_uses_leading_zeros_after_the_index() {
        let mut h = Hll::new();
        h.insert_hash(0x0010_0000_0000_0000 | (1 << 51)); // index 1, rank 1
        h.insert_hash(0x0020_0000_0000_0000 | 1); // index 2, rank 52
        h.insert_hash(0x0030_0000_0000_0000); // index 3, all zero: rank 53
        assert_eq!(h.registers()[1], 1);
        assert_eq!(h.registers()[2], 52);
        assert_eq!(h.registers()[3], HLL_MAX_RANK);
        assert_eq!(
            h.nonzero().collect::<Vec<_>>(),
            vec![(1, 1), (2, 52), (3, 53)]
        );
    }

    #[test]
    fn from_registers_validates() {
        assert_eq!(
            Hll::from_registers(&[0u8; 10]),
            Err(HllError::WrongLength(10))
        );
        let mut regs = [0u8; HLL_REGISTERS];
        regs[5] = 54;
        assert_eq!(
            Hll::from_registers(&regs),
            Err(HllError::RankOutOfRange { index: 5, rank: 54 })
        );
        regs[5] = 53;
        let h = Hll::from_registers(&regs).unwrap();
        assert_eq!(h.registers()[5], 53);
        let mut h2 = Hll::new();
        assert_eq!(h2.raise(4096, 1), Err(HllError::IndexOutOfRange(4096)));
    }
}
