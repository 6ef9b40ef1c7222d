//! `StatDelta`: the binary wire form of telemetry gossip (see `PROTOCOL.md`).
//!
//! Layout (integers big-endian):
//!
//! ```text
//! version u8 (=1) ‖ epoch_sec u32 ‖ epoch u64 ‖ hll_form u8 ‖ hll ‖ count u16 ‖ entries
//! hll_form 0: no registers (empty sketch)
//! hll_form 1: n u16 (1..=1364) ‖ n × (index u16 ‖ rank u8), indices ascending
//! hll_form 2: 4096 register bytes (used when more than 1364 are non-zero)
//! entry:      eid [32] ‖ version u64 ‖ bandwidth_in u64 ‖ bandwidth_out u64 ‖ degree u16 ‖ nat u8
//! ```
//!
//! Entries are in strictly ascending eid order and at most 512; ranks are
//! 1..=53 (0..=53 in the dense form); the sparse/dense choice is fixed by the
//! register count. Every valid value has exactly one encoding, and `decode`
//! accepts only that encoding, so `encode(decode(b)) == b` whenever decode
//! succeeds. Decoding is total: no input panics and allocation is bounded by
//! the caps above (at most 34 320 bytes of input are meaningful).

use crate::contribution::{Contribution, ContributionError, CONTRIBUTION_LEN};
use crate::crdt::EpochState;
use crate::eid::Eid;
use crate::hll::{Hll, HLL_MAX_RANK, HLL_REGISTERS};
use std::collections::BTreeMap;
use thiserror::Error;

/// Wire format version carried in the first byte.
pub const DELTA_VERSION: u8 = 1;
/// Most entries one delta may carry; keeps the largest delta (34 320 bytes)
/// well under the mesh's 64 KiB message limit.
pub const MAX_DELTA_ENTRIES: usize = 512;
/// Most registers sent in the sparse form (3 bytes each); above this the
/// 4096-byte dense form is smaller.
pub const MAX_SPARSE_REGISTERS: usize = 1364;

const HLL_NONE: u8 = 0;
const HLL_SPARSE: u8 = 1;
const HLL_DENSE: u8 = 2;
const HEADER_LEN: usize = 1 + 4 + 8;
const ENTRY_LEN: usize = 32 + CONTRIBUTION_LEN;

/// A delta that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeltaError {
    /// `epoch_sec` is zero.
    #[error("epoch_sec must not be zero")]
    ZeroEpochSec,
    /// More distinct entries than one delta may carry.
    #[error("{count} entries exceed the limit of {max} per delta")]
    TooManyEntries {
        /// Distinct entries offered.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An entry's values are out of range.
    #[error("entry {eid}: {source}")]
    InvalidContribution {
        /// The entry's eid.
        eid: Eid,
        /// What is wrong with it.
        source: ContributionError,
    },
}

/// Bytes that are not a valid [`StatDelta`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty input")]
    Empty,
    /// The version byte is not 1.
    #[error("unsupported delta version {0}")]
    UnsupportedVersion(u8),
    /// The input ends before a field does.
    #[error("truncated: need {needed} bytes at offset {offset}")]
    Truncated {
        /// Where the missing field starts.
        offset: usize,
        /// Its length.
        needed: usize,
    },
    /// `epoch_sec` is zero.
    #[error("epoch_sec is zero")]
    ZeroEpochSec,
    /// The HLL form byte is not 0, 1 or 2.
    #[error("unknown HLL form {0}")]
    UnknownHllForm(u8),
    /// The sparse register count is 0 or above 1364.
    #[error("sparse register count {0} outside 1..=1364")]
    SparseCount(usize),
    /// A sparse register index is not above the previous one.
    #[error("sparse register {position}: index {index} not ascending")]
    SparseNotAscending {
        /// Position in the sparse list.
        position: usize,
        /// The index found.
        index: usize,
    },
    /// A register index is 4096 or more.
    #[error("register index {0} out of range")]
    RegisterIndex(usize),
    /// A register value is out of range (0 in sparse form, or above 53).
    #[error("register {index}: rank {rank} out of range")]
    RegisterRank {
        /// The register index.
        index: usize,
        /// The rejected value.
        rank: u8,
    },
    /// A dense sketch with so few non-zero registers that it had to be sparse.
    #[error("dense HLL with only {0} non-zero registers must use the sparse form")]
    NonCanonicalDense(usize),
    /// More than 512 entries.
    #[error("{0} entries exceed the limit of {MAX_DELTA_ENTRIES}")]
    TooManyEntries(usize),
    /// An entry's eid is not above the previous one (unsorted or duplicate).
    #[error("entry {0}: eid not in ascending order")]
    EntriesNotAscending(usize),
    /// An entry's values are out of range.
    #[error("entry {index}: {source}")]
    InvalidContribution {
        /// Position of the entry.
        index: usize,
        /// What is wrong with it.
        source: ContributionError,
    },
    /// Bytes remain after the last entry.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

impl DecodeError {
    /// A stable snake_case name for drop counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::ZeroEpochSec => "zero_epoch_sec",
            DecodeError::UnknownHllForm(_) => "unknown_hll_form",
            DecodeError::SparseCount(_) => "sparse_count",
            DecodeError::SparseNotAscending { .. } => "sparse_not_ascending",
            DecodeError::RegisterIndex(_) => "register_index",
            DecodeError::RegisterRank { .. } => "register_rank",
            DecodeError::NonCanonicalDense(_) => "non_canonical_dense",
            DecodeError::TooManyEntries(_) => "too_many_entries",
            DecodeError::EntriesNotAscending(_) => "entries_not_ascending",
            DecodeError::InvalidContribution { .. } => "invalid_contribution",
            DecodeError::TrailingBytes(_) => "trailing_bytes",
        }
    }
}

/// A piece of an epoch's CRDT state as sent on the wire: the epoch, the
/// sender's epoch length, a HyperLogLog sketch (possibly empty) and up to
/// 512 entries in eid order. Applying it is a CRDT merge, so deltas may be
/// duplicated, reordered and re-gossiped freely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatDelta {
    epoch_sec: u32,
    epoch: u64,
    /// `None` exactly when the sketch is empty (kept normalized so equal
    /// deltas compare equal and empty ones cost no 4 KiB allocation).
    hll: Option<Hll>,
    entries: Vec<(Eid, Contribution)>,
}

impl StatDelta {
    /// Builds a delta carrying `hll` (if any) and `entries`. Duplicate eids
    /// are joined (LWW); entries are sorted.
    pub fn new(
        epoch_sec: u32,
        epoch: u64,
        hll: Option<Hll>,
        entries: impl IntoIterator<Item = (Eid, Contribution)>,
    ) -> Result<Self, DeltaError> {
        if epoch_sec == 0 {
            return Err(DeltaError::ZeroEpochSec);
        }
        let mut map: BTreeMap<Eid, Contribution> = BTreeMap::new();
        for (eid, c) in entries {
            c.validate()
                .map_err(|source| DeltaError::InvalidContribution { eid, source })?;
            map.entry(eid)
                .and_modify(|old| *old = old.lww_max(c))
                .or_insert(c);
            if map.len() > MAX_DELTA_ENTRIES {
                return Err(DeltaError::TooManyEntries {
                    count: map.len(),
                    max: MAX_DELTA_ENTRIES,
                });
            }
        }
        Ok(Self {
            epoch_sec,
            epoch,
            hll: hll.filter(|h| !h.is_empty()),
            entries: map.into_iter().collect(),
        })
    }

    /// Splits a whole epoch state into deltas of at most 512 entries (the
    /// sketch rides in the first), for anti-entropy with a new or lagging
    /// peer. An empty state with an empty sketch gives no delta.
    pub fn from_state(epoch_sec: u32, state: &EpochState) -> Result<Vec<StatDelta>, DeltaError> {
        if epoch_sec == 0 {
            return Err(DeltaError::ZeroEpochSec);
        }
        let all: Vec<(Eid, Contribution)> = state.entries().map(|(e, c)| (*e, *c)).collect();
        let mut out = Vec::with_capacity(all.len() / MAX_DELTA_ENTRIES + 1);
        let mut hll = Some(state.hll().clone()).filter(|h| !h.is_empty());
        for chunk in all.chunks(MAX_DELTA_ENTRIES) {
            out.push(StatDelta {
                epoch_sec,
                epoch: state.epoch(),
                hll: hll.take(),
                entries: chunk.to_vec(),
            });
        }
        if let Some(h) = hll {
            out.push(StatDelta {
                epoch_sec,
                epoch: state.epoch(),
                hll: Some(h),
                entries: Vec::new(),
            });
        }
        Ok(out)
    }

    /// The sender's epoch length in seconds.
    pub fn epoch_sec(&self) -> u32 {
        self.epoch_sec
    }

    /// The epoch the delta belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The sketch carried, `None` when empty (entries count on their own).
    pub fn hll(&self) -> Option<&Hll> {
        self.hll.as_ref()
    }

    /// The entries, in ascending eid order.
    pub fn entries(&self) -> &[(Eid, Contribution)] {
        &self.entries
    }

    /// The delta as an [`EpochState`] (entries plus sketch) ready to merge.
    pub fn to_state(&self) -> EpochState {
        let mut s = EpochState::new(self.epoch);
        if let Some(h) = &self.hll {
            s.merge_hll(h);
        }
        for (eid, c) in &self.entries {
            s.insert(*eid, *c);
        }
        s
    }

    /// The encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        let n = self.hll.as_ref().map_or(0, Hll::nonzero_count);
        let hll_len = match hll_form(n) {
            HLL_NONE => 0,
            HLL_SPARSE => 2 + 3 * n,
            _ => HLL_REGISTERS,
        };
        HEADER_LEN + 1 + hll_len + 2 + self.entries.len() * ENTRY_LEN
    }

    /// The canonical wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(DELTA_VERSION);
        out.extend_from_slice(&self.epoch_sec.to_be_bytes());
        out.extend_from_slice(&self.epoch.to_be_bytes());
        match &self.hll {
            None => out.push(HLL_NONE),
            Some(hll) => {
                let n = hll.nonzero_count();
                let form = hll_form(n);
                out.push(form);
                match form {
                    HLL_NONE => {}
                    HLL_SPARSE => {
                        // n ≤ 1364 here, so both conversions are exact.
                        out.extend_from_slice(&(n as u16).to_be_bytes());
                        for (index, rank) in hll.nonzero() {
                            out.extend_from_slice(&(index as u16).to_be_bytes());
                            out.push(rank);
                        }
                    }
                    _ => out.extend_from_slice(&hll.registers()[..]),
                }
            }
        }
        // Construction caps entries at 512.
        out.extend_from_slice(&(self.entries.len() as u16).to_be_bytes());
        for (eid, c) in &self.entries {
            out.extend_from_slice(eid.as_bytes());
            out.extend_from_slice(&c.canonical_bytes());
        }
        out
    }

    /// Parses the wire encoding. Total: every input gives a value or an
    /// error, never a panic, and nothing larger than the caps is allocated.
    pub fn decode(bytes: &[u8]) -> Result<StatDelta, DecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        let version = match bytes.first() {
            None => return Err(DecodeError::Empty),
            Some(&v) => v,
        };
        if version != DELTA_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        r.pos = 1;
        let epoch_sec = u32::from_be_bytes(r.array()?);
        if epoch_sec == 0 {
            return Err(DecodeError::ZeroEpochSec);
        }
        let epoch = u64::from_be_bytes(r.array()?);
        let [form] = r.array()?;
        let hll = match form {
            HLL_NONE => None,
            HLL_SPARSE => Some(decode_sparse(&mut r)?),
            HLL_DENSE => Some(decode_dense(&mut r)?),
            other => return Err(DecodeError::UnknownHllForm(other)),
        };
        let count = usize::from(u16::from_be_bytes(r.array()?));
        if count > MAX_DELTA_ENTRIES {
            return Err(DecodeError::TooManyEntries(count));
        }
        // Check the whole entry block is present before allocating for it.
        r.peek(count * ENTRY_LEN)?;
        let mut entries: Vec<(Eid, Contribution)> = Vec::with_capacity(count);
        for index in 0..count {
            let eid = Eid(r.array()?);
            let raw: [u8; CONTRIBUTION_LEN] = r.array()?;
            let c = Contribution::from_canonical_bytes(&raw)
                .map_err(|source| DecodeError::InvalidContribution { index, source })?;
            if let Some((prev, _)) = entries.last() {
                if *prev >= eid {
                    return Err(DecodeError::EntriesNotAscending(index));
                }
            }
            entries.push((eid, c));
        }
        let rest = bytes.len().saturating_sub(r.pos);
        if rest != 0 {
            return Err(DecodeError::TrailingBytes(rest));
        }
        Ok(StatDelta {
            epoch_sec,
            epoch,
            hll,
            entries,
        })
    }
}

/// The HLL form the encoder uses for `nonzero` non-zero registers.
fn hll_form(nonzero: usize) -> u8 {
    match nonzero {
        0 => HLL_NONE,
        n if n <= MAX_SPARSE_REGISTERS => HLL_SPARSE,
        _ => HLL_DENSE,
    }
}

fn decode_sparse(r: &mut Reader<'_>) -> Result<Hll, DecodeError> {
    let n = usize::from(u16::from_be_bytes(r.array()?));
    if n == 0 || n > MAX_SPARSE_REGISTERS {
        return Err(DecodeError::SparseCount(n));
    }
    let mut hll = Hll::new();
    let mut last: Option<usize> = None;
    for position in 0..n {
        let [i0, i1, rank] = r.array()?;
        let index = usize::from(u16::from_be_bytes([i0, i1]));
        if index >= HLL_REGISTERS {
            return Err(DecodeError::RegisterIndex(index));
        }
        if rank == 0 || rank > HLL_MAX_RANK {
            return Err(DecodeError::RegisterRank { index, rank });
        }
        if last.is_some_and(|l| l >= index) {
            return Err(DecodeError::SparseNotAscending { position, index });
        }
        last = Some(index);
        hll.raise(index, rank)
            .map_err(|_| DecodeError::RegisterRank { index, rank })?;
    }
    Ok(hll)
}

fn decode_dense(r: &mut Reader<'_>) -> Result<Hll, DecodeError> {
    let regs = r.take(HLL_REGISTERS)?;
    let mut hll = Hll::new();
    for (index, &rank) in regs.iter().enumerate() {
        hll.raise(index, rank)
            .map_err(|_| DecodeError::RegisterRank { index, rank })?;
    }
    let n = hll.nonzero_count();
    if n <= MAX_SPARSE_REGISTERS {
        return Err(DecodeError::NonCanonicalDense(n));
    }
    Ok(hll)
}

/// A bounds-checked cursor over the input.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self, n: usize) -> Result<&'a [u8], DecodeError> {
        let truncated = DecodeError::Truncated {
            offset: self.pos,
            needed: n,
        };
        let end = self.pos.checked_add(n).ok_or(truncated.clone())?;
        self.bytes.get(self.pos..end).ok_or(truncated)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let s = self.peek(n)?;
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::NatType;
    use proptest::prelude::*;

    fn contribution(seed: u8) -> Contribution {
        Contribution {
            version: u64::from(seed),
            bandwidth_in: 1000 + u64::from(seed),
            bandwidth_out: 2000,
            degree: u16::from(seed % 30),
            nat: NatType::from_code(seed % 7).unwrap_or_default(),
        }
    }

    fn sample(entries: usize, registers: usize) -> StatDelta {
        let mut hll = Hll::new();
        for i in 0..registers {
            hll.raise(i * 3 % HLL_REGISTERS, (i % 53) as u8 + 1)
                .unwrap();
        }
        let es = (0..entries).map(|i| {
            let mut pk = [0u8; 32];
            pk[..8].copy_from_slice(&(i as u64).to_be_bytes());
            (crate::eid::eid(77, &pk), contribution(i as u8))
        });
        StatDelta::new(300, 77, Some(hll), es).unwrap()
    }

    /// Extracts the hex test vector between the markers in PROTOCOL.md.
    fn protocol_vector() -> Vec<u8> {
        let doc = include_str!("../PROTOCOL.md");
        let start = doc.find("<!-- vector:begin -->").expect("begin marker");
        let end = doc.find("<!-- vector:end -->").expect("end marker");
        let hex_text: String = doc[start..end]
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with("```"))
            .flat_map(|l| l.split_whitespace())
            .collect();
        hex::decode(hex_text).expect("vector is hex")
    }

    /// The delta described in PROTOCOL.md's test vector section.
    fn protocol_delta() -> StatDelta {
        let pk: [u8; 32] = std::array::from_fn(|i| i as u8);
        let eid = crate::eid::eid(5_905_020, &pk);
        let mut hll = Hll::new();
        hll.insert_eid(&eid);
        StatDelta::new(
            300,
            5_905_020,
            Some(hll),
            [(
                eid,
                Contribution {
                    version: 1,
                    bandwidth_in: 1_048_576,
                    bandwidth_out: 524_288,
                    degree: 6,
                    nat: NatType::PortRestrictedCone,
                },
            )],
        )
        .unwrap()
    }

    #[test]
    fn protocol_md_test_vector() {
        let d = protocol_delta();
        let bytes = protocol_vector();
        assert_eq!(hex::encode(d.encode()), hex::encode(&bytes));
        assert_eq!(StatDelta::decode(&bytes), Ok(d));
    }

    #[test]
    fn round_trips_each_hll_form() {
        for (entries, regs) in [(0, 0), (3, 0), (1, 5), (512, 1364), (2, 1365), (0, 4096)] {
            let d = sample(entries, regs);
            let b = d.encode();
            assert_eq!(b.len(), d.encoded_len());
            assert_eq!(
                StatDelta::decode(&b),
                Ok(d),
                "{entries} entries, {regs} registers"
            );
        }
        let biggest = sample(512, 4096).encode();
        assert_eq!(biggest.len(), 34_320);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let b = sample(3, 40).encode();
        for cut in 0..b.len() {
            let err = StatDelta::decode(&b[..cut]).unwrap_err();
            if cut == 0 {
                assert_eq!(err, DecodeError::Empty);
            } else {
                assert!(
                    matches!(err, DecodeError::Truncated { .. }),
                    "cut {cut}: {err}"
                );
            }
        }
        let dense = sample(1, 2000).encode();
        assert!(matches!(
            StatDelta::decode(&dense[..dense.len() - 60]),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn oversized_and_malformed_inputs_are_rejected() {
        let good = sample(2, 3).encode();
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            StatDelta::decode(&trailing),
            Err(DecodeError::TrailingBytes(1))
        );

        // Entry count above the cap: 0xffff entries announced.
        let mut many = sample(0, 0).encode();
        let n = many.len();
        many[n - 2..].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(
            StatDelta::decode(&many),
            Err(DecodeError::TooManyEntries(65535))
        );
        // 513 announced with no bodies.
        many[n - 2..].copy_from_slice(&513u16.to_be_bytes());
        assert_eq!(
            StatDelta::decode(&many),
            Err(DecodeError::TooManyEntries(513))
        );
        // 2 announced, none present: rejected before allocation.
        many[n - 2..].copy_from_slice(&2u16.to_be_bytes());
        assert!(matches!(
            StatDelta::decode(&many),
            Err(DecodeError::Truncated { .. })
        ));

        let mut version = good.clone();
        version[0] = 2;
        assert_eq!(
            StatDelta::decode(&version),
            Err(DecodeError::UnsupportedVersion(2))
        );

        let mut zero = good.clone();
        zero[1..5].copy_from_slice(&[0; 4]);
        assert_eq!(StatDelta::decode(&zero), Err(DecodeError::ZeroEpochSec));

        let mut form = good.clone();
        form[13] = 3;
        assert_eq!(
            StatDelta::decode(&form),
            Err(DecodeError::UnknownHllForm(3))
        );

        // Sparse: layout is [13]=1, [14..16]=count, then (idx, rank) triples.
        let mut rank = good.clone();
        rank[18] = 54;
        assert!(matches!(
            StatDelta::decode(&rank),
            Err(DecodeError::RegisterRank { rank: 54, .. })
        ));
        let mut idx = good.clone();
        idx[16..18].copy_from_slice(&4096u16.to_be_bytes());
        assert_eq!(
            StatDelta::decode(&idx),
            Err(DecodeError::RegisterIndex(4096))
        );
        let mut order = good.clone();
        order[19..21].copy_from_slice(&0u16.to_be_bytes());
        assert!(matches!(
            StatDelta::decode(&order),
            Err(DecodeError::SparseNotAscending { position: 1, .. })
        ));

        // Dense form with too few registers is non-canonical.
        let mut dense = vec![1u8, 0, 0, 1, 44, 0, 0, 0, 0, 0, 0, 0, 1, 2];
        dense.extend(std::iter::repeat_n(0u8, HLL_REGISTERS));
        dense.extend_from_slice(&[0, 0]);
        assert_eq!(
            StatDelta::decode(&dense),
            Err(DecodeError::NonCanonicalDense(0))
        );

        // Entries out of order / duplicated.
        let two = sample(2, 0).encode();
        let first = 16..16 + ENTRY_LEN;
        let second = 16 + ENTRY_LEN..16 + 2 * ENTRY_LEN;
        let mut swapped = two.clone();
        swapped[first.clone()].copy_from_slice(&two[second.clone()]);
        swapped[second].copy_from_slice(&two[first.clone()]);
        assert_eq!(
            StatDelta::decode(&swapped),
            Err(DecodeError::EntriesNotAscending(1))
        );

        // Unknown NAT code in the first entry.
        let mut nat = two.clone();
        nat[first.end - 1] = 9;
        assert_eq!(
            StatDelta::decode(&nat),
            Err(DecodeError::InvalidContribution {
                index: 0,
                source: ContributionError::NatCode(9)
            })
        );
    }

    #[test]
    fn constructor_caps_merges_and_validates() {
        let e = crate::eid::eid(1, &[1; 32]);
        let d = StatDelta::new(300, 1, None, [(e, contribution(1)), (e, contribution(3))]).unwrap();
        assert_eq!(d.entries(), &[(e, contribution(3))]);
        // An empty sketch is the same as none.
        assert_eq!(
            StatDelta::new(300, 1, Some(Hll::new()), []),
            StatDelta::new(300, 1, None, [])
        );
        assert!(StatDelta::new(300, 1, Some(Hll::new()), [])
            .unwrap()
            .hll()
            .is_none());
        assert_eq!(
            StatDelta::new(0, 1, None, []),
            Err(DeltaError::ZeroEpochSec)
        );
        let too_many = (0..=MAX_DELTA_ENTRIES as u32).map(|i| {
            let mut pk = [0u8; 32];
            pk[..4].copy_from_slice(&i.to_be_bytes());
            (crate::eid::eid(1, &pk), contribution(0))
        });
        assert!(matches!(
            StatDelta::new(300, 1, None, too_many),
            Err(DeltaError::TooManyEntries { .. })
        ));
        let mut bad = contribution(0);
        bad.bandwidth_in = u64::MAX;
        assert!(matches!(
            StatDelta::new(300, 1, None, [(e, bad)]),
            Err(DeltaError::InvalidContribution { .. })
        ));
    }

    #[test]
    fn from_state_chunks_and_reassembles() {
        let mut s = EpochState::new(4);
        for i in 0..1200u32 {
            let mut pk = [0u8; 32];
            pk[..4].copy_from_slice(&i.to_be_bytes());
            s.insert(crate::eid::eid(4, &pk), contribution(i as u8));
        }
        let deltas = StatDelta::from_state(300, &s).unwrap();
        assert_eq!(deltas.len(), 3);
        assert!(deltas
            .iter()
            .all(|d| d.entries().len() <= MAX_DELTA_ENTRIES));
        let mut back = EpochState::new(4);
        for d in deltas.iter().rev() {
            let wire = StatDelta::decode(&d.encode()).unwrap();
            back.merge(&wire.to_state()).unwrap();
        }
        assert_eq!(back, s);
        assert!(StatDelta::from_state(300, &EpochState::new(4))
            .unwrap()
            .is_empty());
        let mut only_hll = EpochState::new(4);
        only_hll.merge_hll(s.hll());
        assert_eq!(StatDelta::from_state(300, &only_hll).unwrap().len(), 1);
    }

    fn arb_delta() -> impl Strategy<Value = StatDelta> {
        (
            1u32..=u32::MAX,
            any::<u64>(),
            prop::collection::vec((0usize..4096, 0u8..=53), 0..40),
            any::<bool>(),
            prop::collection::vec(
                (
                    any::<[u8; 32]>(),
                    any::<u64>(),
                    0u64..=(1 << 53),
                    0u64..=(1 << 53),
                    any::<u16>(),
                    0u8..7,
                ),
                0..20,
            ),
        )
            .prop_map(|(epoch_sec, epoch, regs, dense, entries)| {
                let mut hll = Hll::new();
                for (i, r) in regs {
                    let _ = hll.raise(i, r);
                }
                if dense {
                    for i in 0..1500 {
                        let _ = hll.raise(i * 2, 1);
                    }
                }
                let es = entries.into_iter().map(|(e, v, bi, bo, deg, nat)| {
                    (
                        Eid(e),
                        Contribution {
                            version: v,
                            bandwidth_in: bi,
                            bandwidth_out: bo,
                            degree: deg,
                            nat: NatType::from_code(nat).unwrap_or_default(),
                        },
                    )
                });
                StatDelta::new(epoch_sec, epoch, Some(hll), es).unwrap()
            })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(d in arb_delta()) {
            let b = d.encode();
            prop_assert_eq!(b.len(), d.encoded_len());
            prop_assert_eq!(StatDelta::decode(&b), Ok(d));
        }

        #[test]
        fn random_bytes_never_panic_and_decoded_values_are_canonical(
            bytes in prop::collection::vec(any::<u8>(), 0..400)
        ) {
            if let Ok(d) = StatDelta::decode(&bytes) {
                prop_assert_eq!(d.encode(), bytes);
            }
        }

        #[test]
        fn mutated_valid_deltas_never_panic(
            d in arb_delta(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut b = d.encode();
            for (i, v) in flips {
                let at = i.index(b.len());
                b[at] = v;
            }
            let keep = cut.index(b.len() + 1);
            b.truncate(keep);
            if let Ok(x) = StatDelta::decode(&b) {
                prop_assert_eq!(x.encode(), b);
            }
        }
    }
}
