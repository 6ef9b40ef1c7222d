//! What the explorer's verifier runs on what gateways serve: size-capped
//! parsing of `/api/chain` and `/api/stats`, a full audit of a chain that
//! reports every break precisely (epoch, expected vs got), the check of a
//! snapshot against its chain, and the agreement of several gateways.
//!
//! It is the same code the nodes run ([`epoch_digest`] builds every link);
//! the explorer calls it through the `moss-wasm` crate.

use crate::chain::{epoch_digest, ChainLink, Digest};
use crate::snapshot::EpochReport;
use serde::Serialize;
use std::collections::BTreeMap;
use thiserror::Error;

/// Largest `/api/chain` body parsed: 16 MiB (a 10,000-link chain is about
/// 2.3 MB; a gateway serves at most 1,024 links).
pub const MAX_CHAIN_JSON: usize = 16 << 20;
/// Most links audited in one chain.
pub const MAX_CHAIN_LINKS: usize = 65_536;
/// Largest `/api/stats` body parsed: 1 MiB.
pub const MAX_STATS_JSON: usize = 1 << 20;
/// Breaks listed in a [`ChainAudit`]; more are only counted.
pub const MAX_REPORTED_BREAKS: usize = 256;

/// Why a served document was rejected before any verification.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputError {
    /// The body is larger than the cap (checked before parsing).
    #[error("response is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Body length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The JSON ends early.
    #[error("truncated JSON (ends at line {line}, column {column})")]
    Truncated {
        /// Line of the end.
        line: usize,
        /// Column of the end.
        column: usize,
    },
    /// Not JSON at all.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// Valid JSON of the wrong shape (a string for a number, a short
    /// digest, a missing field, an object where an array belongs).
    #[error("unexpected JSON shape at line {line}, column {column}: {message}")]
    WrongType {
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// More links than [`MAX_CHAIN_LINKS`].
    #[error("chain has {count} links, more than the {max}-link limit")]
    TooManyLinks {
        /// Links in the body.
        count: usize,
        /// The cap.
        max: usize,
    },
}

impl From<serde_json::Error> for InputError {
    fn from(e: serde_json::Error) -> Self {
        let (line, column) = (e.line(), e.column());
        // serde_json appends " at line L column C"; keep the reason only.
        let full = e.to_string();
        let message = full
            .rsplit_once(" at line ")
            .map_or(full.as_str(), |(m, _)| m)
            .to_owned();
        match e.classify() {
            serde_json::error::Category::Eof => Self::Truncated { line, column },
            serde_json::error::Category::Data => Self::WrongType {
                line,
                column,
                message,
            },
            _ => Self::Syntax {
                line,
                column,
                message,
            },
        }
    }
}

fn cap(body: &[u8], max: usize) -> Result<(), InputError> {
    if body.len() > max {
        return Err(InputError::TooLarge {
            len: body.len(),
            max,
        });
    }
    Ok(())
}

/// Parses an `/api/chain` body (a JSON array of links, oldest first),
/// refusing more than [`MAX_CHAIN_JSON`] bytes before reading any of it.
pub fn parse_chain(body: &[u8]) -> Result<Vec<ChainLink>, InputError> {
    cap(body, MAX_CHAIN_JSON)?;
    let links: Vec<ChainLink> = serde_json::from_slice(body)?;
    if links.len() > MAX_CHAIN_LINKS {
        return Err(InputError::TooManyLinks {
            count: links.len(),
            max: MAX_CHAIN_LINKS,
        });
    }
    Ok(links)
}

/// The parts of an `/api/stats` body the explorer uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatsDoc {
    /// The epoch report; `None` when the gateway's telemetry is off.
    pub report: Option<EpochReport>,
    /// The mesh the gateway says it serves (`node.mesh_id`), if given.
    pub mesh_id: Option<String>,
}

/// Parses an `/api/stats` body, refusing more than [`MAX_STATS_JSON`]
/// bytes. A body without `epoch` is a gateway with telemetry off.
pub fn parse_stats(body: &[u8]) -> Result<StatsDoc, InputError> {
    cap(body, MAX_STATS_JSON)?;
    let value: serde_json::Value = serde_json::from_slice(body)?;
    let Some(obj) = value.as_object() else {
        return Err(InputError::WrongType {
            line: 1,
            column: 1,
            message: "expected a JSON object".into(),
        });
    };
    let mesh_id = obj
        .get("node")
        .and_then(|n| n.get("mesh_id"))
        .and_then(|m| m.as_str())
        .map(str::to_owned);
    let report = if obj.contains_key("epoch") {
        // Re-read as text so errors carry a position.
        Some(serde_json::from_slice::<EpochReport>(body)?)
    } else {
        None
    };
    Ok(StatsDoc { report, mesh_id })
}

/// The digest a link's contents hash to, when it carries its state
/// commitment.
pub fn recompute(link: &ChainLink) -> Option<Digest> {
    link.state_digest
        .map(|s| epoch_digest(link.epoch, &s, &link.prev_digest))
}

/// Whether a link's own digest recomputes (links without a state
/// commitment cannot be checked and count as consistent).
pub fn link_consistent(link: &ChainLink) -> bool {
    recompute(link).is_none_or(|d| d == link.epoch_digest)
}

/// What is wrong at one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakKind {
    /// The epoch is not after the preceding link's (a loop or a reorder).
    EpochNotIncreasing {
        /// The preceding link's epoch.
        previous: u64,
    },
    /// `prev_digest` is neither the preceding link's stated digest nor the
    /// digest its contents hash to.
    BrokenLink {
        /// The preceding link's stated `epoch_digest`.
        expected: Digest,
        /// This link's `prev_digest`.
        got: Digest,
    },
    /// The stated `epoch_digest` is not `BLAKE2s(epoch ‖ state ‖ prev)`.
    DigestMismatch {
        /// The recomputed digest.
        expected: Digest,
        /// The stated digest.
        got: Digest,
    },
}

/// One break, located.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Break {
    /// Position in the served array.
    pub index: usize,
    /// The link's epoch.
    pub epoch: u64,
    /// What is wrong.
    #[serde(flatten)]
    pub kind: BreakKind,
}

/// Epochs missing between two links that still chain (the node finalized
/// nothing for them, e.g. it was offline). Not a break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The last epoch before the gap.
    pub after: u64,
    /// The first epoch after the gap.
    pub before: u64,
}

/// The full verdict on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ChainAudit {
    /// Links audited.
    pub links: usize,
    /// Oldest epoch.
    pub first_epoch: Option<u64>,
    /// Newest epoch.
    pub head_epoch: Option<u64>,
    /// The newest epoch up to which the chain verifies without a break
    /// (`None` when the first link is already broken or there is none).
    pub verified_through: Option<u64>,
    /// The first [`MAX_REPORTED_BREAKS`] breaks, in chain order.
    pub breaks: Vec<Break>,
    /// All breaks, listed or not.
    pub break_count: usize,
    /// Gaps in the epoch numbers of links that chain.
    pub gaps: Vec<Gap>,
    /// Links without a `state_digest`, checked for continuity only.
    pub unrecomputed: usize,
}

impl ChainAudit {
    /// Whether no break was found.
    pub fn ok(&self) -> bool {
        self.break_count == 0
    }
}

/// Audits a chain (oldest first) and reports every break, in the order
/// [`crate::verify`] checks them. Continuity holds when a link's
/// `prev_digest` is the preceding link's stated digest or the digest its
/// contents hash to, so a single altered field is reported at its own link
/// only. The first link's `prev_digest` is not checked (its predecessor may
/// have been pruned).
pub fn audit(links: &[ChainLink]) -> ChainAudit {
    let mut a = ChainAudit {
        links: links.len(),
        first_epoch: links.first().map(|l| l.epoch),
        head_epoch: links.last().map(|l| l.epoch),
        ..ChainAudit::default()
    };
    let note = |a: &mut ChainAudit, b: Break| {
        if a.break_count == 0 {
            a.verified_through = index_before(links, b.index);
        }
        a.break_count += 1;
        if a.breaks.len() < MAX_REPORTED_BREAKS {
            a.breaks.push(b);
        }
    };
    let mut previous: Option<(&ChainLink, Option<Digest>)> = None;
    for (index, link) in links.iter().enumerate() {
        let recomputed = recompute(link);
        if recomputed.is_none() {
            a.unrecomputed += 1;
        }
        // At most two faults per link: its place in the chain, its digest.
        let mut continuity = None;
        if let Some((p, p_recomputed)) = previous {
            if link.epoch <= p.epoch {
                continuity = Some(BreakKind::EpochNotIncreasing { previous: p.epoch });
            } else if link.prev_digest != p.epoch_digest && Some(link.prev_digest) != p_recomputed {
                continuity = Some(BreakKind::BrokenLink {
                    expected: p.epoch_digest,
                    got: link.prev_digest,
                });
            } else if link.epoch > p.epoch.saturating_add(1) {
                a.gaps.push(Gap {
                    after: p.epoch,
                    before: link.epoch,
                });
            }
        }
        let digest = recomputed
            .filter(|d| *d != link.epoch_digest)
            .map(|expected| BreakKind::DigestMismatch {
                expected,
                got: link.epoch_digest,
            });
        for kind in [continuity, digest].into_iter().flatten() {
            let epoch = link.epoch;
            note(&mut a, Break { index, epoch, kind });
        }
        previous = Some((link, recomputed));
    }
    if a.break_count == 0 {
        a.verified_through = a.head_epoch;
    }
    a
}

fn index_before(links: &[ChainLink], index: usize) -> Option<u64> {
    index
        .checked_sub(1)
        .and_then(|i| links.get(i))
        .map(|l| l.epoch)
}

/// Something in a snapshot that contradicts its own chain or itself.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SnapshotIssue {
    /// `prev_digest` is not the chain's digest of epoch `chain_head`.
    #[error("snapshot prev_digest {got} is not the chain's digest {expected} of epoch {epoch}")]
    PrevMismatch {
        /// The snapshot's `chain_head`.
        epoch: u64,
        /// The chain's digest of that epoch.
        expected: Digest,
        /// The snapshot's `prev_digest`.
        got: Digest,
    },
    /// A histogram does not count each contributor once.
    #[error("{histogram} counts {sum} contributors, the snapshot says {contributors}")]
    HistogramSum {
        /// `nat_histogram` or `degree_histogram`.
        histogram: &'static str,
        /// Sum of its buckets.
        sum: u64,
        /// The snapshot's `contributors`.
        contributors: u64,
    },
    /// Detailed metrics are present although `k_anon_ok` is false.
    #[error("detailed metrics present below the k-anonymity threshold")]
    DetailsBelowKAnon,
}

/// Checks a snapshot against itself and against the chain served by the
/// same gateway. A snapshot whose `chain_head` is not in `chain` (fetched a
/// moment apart) is not contradicted.
pub fn check_snapshot(report: &EpochReport, chain: &[ChainLink]) -> Vec<SnapshotIssue> {
    let mut issues = Vec::new();
    if let Some(link) = chain.iter().find(|l| l.epoch == report.chain_head) {
        if link.epoch_digest != report.prev_digest {
            issues.push(SnapshotIssue::PrevMismatch {
                epoch: report.chain_head,
                expected: link.epoch_digest,
                got: report.prev_digest,
            });
        }
    }
    let details = [
        report.bandwidth_in_total.is_some(),
        report.bandwidth_out_total.is_some(),
        report.nat_histogram.is_some(),
        report.degree_histogram.is_some(),
    ];
    if !report.k_anon_ok && details.iter().any(|d| *d) {
        issues.push(SnapshotIssue::DetailsBelowKAnon);
    }
    for (histogram, h) in [
        ("nat_histogram", &report.nat_histogram),
        ("degree_histogram", &report.degree_histogram),
    ] {
        if let Some(h) = h {
            let sum = h.values().fold(0u64, |s, v| s.saturating_add(*v));
            if sum != report.contributors {
                issues.push(SnapshotIssue::HistogramSum {
                    histogram,
                    sum,
                    contributors: report.contributors,
                });
            }
        }
    }
    issues
}

/// How the gateways holding one epoch relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every holder states the same commitment and every link recomputes.
    Agreed,
    /// Holders differ, or a holder's link does not recompute.
    Diverged,
    /// Only one gateway holds the epoch.
    Single,
}

/// The gateways' view of one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochAgreement {
    /// The epoch.
    pub epoch: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// Gateways (indices into the input) holding the epoch, grouped by the
    /// commitment they state; the largest group first.
    pub groups: Vec<Vec<usize>>,
    /// Holders whose link's own digest does not recompute.
    pub invalid: Vec<usize>,
    /// Whether the holders also agree on the full `epoch_digest` (the same
    /// history, not only the same state).
    pub same_history: bool,
}

/// The agreement of several gateways' chains.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Agreement {
    /// Every epoch any gateway holds, oldest first.
    pub epochs: Vec<EpochAgreement>,
    /// Per gateway: the epochs at which it is invalid or outside the single
    /// largest group (with a tie, every holder is listed).
    pub dissent: Vec<Vec<u64>>,
}

/// Compares the chains of several gateways epoch by epoch. Holders agree on
/// an epoch when they state the same `state_digest` (or, if any lacks one,
/// the same `epoch_digest`) and each link's digest recomputes. Chains that
/// started at different times agree on states while their histories
/// (`same_history`) differ. Run [`audit`] for each chain's continuity.
pub fn agreement(chains: &[&[ChainLink]]) -> Agreement {
    let mut by_epoch: BTreeMap<u64, Vec<(usize, &ChainLink)>> = BTreeMap::new();
    for (g, links) in chains.iter().enumerate() {
        for link in links.iter() {
            by_epoch.entry(link.epoch).or_default().push((g, link));
        }
    }
    let mut out = Agreement {
        epochs: Vec::with_capacity(by_epoch.len()),
        dissent: vec![Vec::new(); chains.len()],
    };
    for (epoch, holders) in by_epoch {
        let by_state = holders.iter().all(|(_, l)| l.state_digest.is_some());
        let mut keyed: BTreeMap<Digest, Vec<usize>> = BTreeMap::new();
        let mut invalid = Vec::new();
        for (g, l) in &holders {
            if !link_consistent(l) {
                invalid.push(*g);
                continue;
            }
            let key = match l.state_digest {
                Some(s) if by_state => s,
                _ => l.epoch_digest,
            };
            keyed.entry(key).or_default().push(*g);
        }
        let mut groups: Vec<Vec<usize>> = keyed.into_values().collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
        let verdict = if holders.len() == 1 && invalid.is_empty() {
            Verdict::Single
        } else if groups.len() == 1 && invalid.is_empty() {
            Verdict::Agreed
        } else {
            Verdict::Diverged
        };
        let tie = groups.len() > 1 && groups.first().map(Vec::len) == groups.get(1).map(Vec::len);
        let outside = groups.iter().skip(usize::from(!tie)).flatten();
        for g in invalid.iter().chain(outside) {
            if let Some(d) = out.dissent.get_mut(*g) {
                d.push(epoch);
            }
        }
        let first = holders.first().map(|(_, l)| l.epoch_digest);
        let same_history = holders.iter().all(|(_, l)| Some(l.epoch_digest) == first);
        out.epochs.push(EpochAgreement {
            epoch,
            verdict,
            groups,
            invalid,
            same_history,
        });
    }
    out
}
