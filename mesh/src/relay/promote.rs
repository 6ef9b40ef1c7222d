//! Supernode promotion as one pure decision over what the node knows,
//! re-evaluated every [`RECHECK`].
//!
//! A node may serve as a supernode only when every condition holds:
//!
//! - a real inbound probe confirmed it reachable ([`crate::Reachability`]);
//! - it has been up for at least `supernode_min_uptime_sec`;
//! - its standing is good (see [`Standing`]);
//! - its NAT class is not `symmetric_nat` or `cgnat`.
//!
//! **`unknown` with a confirmed inbound probe is allowed.** The probe is a
//! handshake a stranger started from an IP this node never sent to, and
//! that completed: unsolicited traffic from unknown endpoints reached the
//! node's listening port. A CGNAT has no mapping a stranger can reach, so a
//! CGNAT node cannot pass that test; a node that passes is reachable the
//! way a relay must be. The residual case is a symmetric-*mapping* NAT with
//! endpoint-independent filtering, which would pass the probe but send
//! replies from other ports; as soon as the classifier reports
//! `symmetric_nat` (or `cgnat`) the next re-check revokes the status.

use moss_telemetry::NatType;
use std::time::Duration;

/// How often a node re-checks its eligibility.
pub const RECHECK: Duration = Duration::from_secs(60);

/// Whether the node's standing with the mesh is good. A node cannot see
/// the scores its peers give it, so standing is judged from what it can
/// see: it is connected to at least [`Standing::MIN_PEERS`] peers. The
/// other half of the rule is on the users' side: a node choosing a
/// supernode skips one whose score *it* holds below zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// Established peers.
    pub peers: usize,
}

impl Standing {
    /// Peers a supernode needs (someone must be able to use it).
    pub const MIN_PEERS: usize = 1;

    /// True if the standing is good.
    pub fn good(self) -> bool {
        self.peers >= Self::MIN_PEERS
    }
}

/// Everything the decision reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligibility {
    /// A real inbound probe confirmed reachability.
    pub inbound_confirmed: bool,
    /// Time since the node started.
    pub uptime: Duration,
    /// `supernode_min_uptime_sec`.
    pub min_uptime: Duration,
    /// The NAT class the node reports.
    pub nat: NatType,
    /// The node's standing.
    pub standing: Standing,
}

/// Why a node may not (or may no longer) be a supernode; the first failing
/// condition in the order of the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ineligible {
    /// No inbound probe has confirmed reachability.
    #[error("reachability not confirmed by an inbound probe")]
    NotConfirmed,
    /// Up for less than `supernode_min_uptime_sec`.
    #[error("uptime below supernode_min_uptime_sec")]
    TooYoung,
    /// Not connected enough to be useful or trusted.
    #[error("score standing not good")]
    Standing,
    /// Behind a NAT class that can never relay.
    #[error("NAT class {0} can never be a supernode")]
    Nat(NatType),
}

impl Eligibility {
    /// The decision: `Ok` when the node may be a supernode.
    pub fn decide(&self) -> Result<(), Ineligible> {
        if !self.inbound_confirmed {
            return Err(Ineligible::NotConfirmed);
        }
        if self.uptime < self.min_uptime {
            return Err(Ineligible::TooYoung);
        }
        if !self.standing.good() {
            return Err(Ineligible::Standing);
        }
        match self.nat {
            NatType::SymmetricNat | NatType::Cgnat => Err(Ineligible::Nat(self.nat)),
            NatType::Unknown
            | NatType::Public
            | NatType::FullCone
            | NatType::RestrictedCone
            | NatType::PortRestrictedCone => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination of the four inputs (NAT class × confirmed ×
    /// uptime below/at/above × peers 0/1/many): the verdict is `Ok` exactly
    /// when all four conditions hold, and a failure names the first.
    #[test]
    fn exhaustive_over_every_input_combination() {
        let min = Duration::from_secs(300);
        let mut ok = 0;
        for nat in NatType::ALL {
            for confirmed in [false, true] {
                for uptime in [0, 299, 300, 301, 100_000].map(Duration::from_secs) {
                    for peers in [0, 1, 8] {
                        let e = Eligibility {
                            inbound_confirmed: confirmed,
                            uptime,
                            min_uptime: min,
                            nat,
                            standing: Standing { peers },
                        };
                        let bad_nat = matches!(nat, NatType::SymmetricNat | NatType::Cgnat);
                        let expect = if !confirmed {
                            Err(Ineligible::NotConfirmed)
                        } else if uptime < min {
                            Err(Ineligible::TooYoung)
                        } else if peers == 0 {
                            Err(Ineligible::Standing)
                        } else if bad_nat {
                            Err(Ineligible::Nat(nat))
                        } else {
                            ok += 1;
                            Ok(())
                        };
                        assert_eq!(e.decide(), expect, "{e:?}");
                    }
                }
            }
        }
        // 5 promotable classes × 3 uptimes ≥ min × 2 peer counts ≥ 1.
        assert_eq!(ok, 5 * 3 * 2);
    }

    #[test]
    fn cgnat_and_symmetric_never_promote_whatever_else_holds() {
        for nat in [NatType::Cgnat, NatType::SymmetricNat] {
            let e = Eligibility {
                inbound_confirmed: true,
                uptime: Duration::from_secs(u64::MAX / 4),
                min_uptime: Duration::ZERO,
                nat,
                standing: Standing { peers: 1000 },
            };
            assert_eq!(e.decide(), Err(Ineligible::Nat(nat)));
        }
    }
}
