//! NAT classes as contributed to the NAT histogram.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// The NAT class of a node, with the strings used everywhere in Moss.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum NatType {
    /// `unknown`: not (yet) classified.
    #[default]
    Unknown,
    /// `public`: reachable on its own address.
    Public,
    /// `full_cone`.
    FullCone,
    /// `restricted_cone`.
    RestrictedCone,
    /// `port_restricted_cone`.
    PortRestrictedCone,
    /// `symmetric_nat`.
    SymmetricNat,
    /// `cgnat`: carrier-grade NAT.
    Cgnat,
}

/// A NAT string that is not one of the seven known classes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown NAT type {0:?}")]
pub struct UnknownNatType(pub String);

impl NatType {
    /// All classes in wire-code order.
    pub const ALL: [NatType; 7] = [
        NatType::Unknown,
        NatType::Public,
        NatType::FullCone,
        NatType::RestrictedCone,
        NatType::PortRestrictedCone,
        NatType::SymmetricNat,
        NatType::Cgnat,
    ];

    /// The Moss string for this class.
    pub fn as_str(self) -> &'static str {
        match self {
            NatType::Unknown => "unknown",
            NatType::Public => "public",
            NatType::FullCone => "full_cone",
            NatType::RestrictedCone => "restricted_cone",
            NatType::PortRestrictedCone => "port_restricted_cone",
            NatType::SymmetricNat => "symmetric_nat",
            NatType::Cgnat => "cgnat",
        }
    }

    /// The one-byte wire code (0..=6, in [`NatType::ALL`] order).
    pub fn code(self) -> u8 {
        match self {
            NatType::Unknown => 0,
            NatType::Public => 1,
            NatType::FullCone => 2,
            NatType::RestrictedCone => 3,
            NatType::PortRestrictedCone => 4,
            NatType::SymmetricNat => 5,
            NatType::Cgnat => 6,
        }
    }

    /// The class for a wire code, `None` for codes above 6.
    pub fn from_code(code: u8) -> Option<NatType> {
        NatType::ALL.get(usize::from(code)).copied()
    }
}

impl FromStr for NatType {
    type Err = UnknownNatType;

    /// Parses a Moss NAT string; the empty string means `unknown`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(NatType::Unknown);
        }
        NatType::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| UnknownNatType(s.to_owned()))
    }
}

impl fmt::Display for NatType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_codes_and_serde_agree() {
        for (i, n) in NatType::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(n.code()), i);
            assert_eq!(NatType::from_code(n.code()), Some(n));
            assert_eq!(n.as_str().parse::<NatType>(), Ok(n));
            assert_eq!(
                serde_json::to_string(&n).unwrap(),
                format!("\"{}\"", n.as_str())
            );
        }
        assert_eq!(NatType::from_code(7), None);
        assert_eq!("".parse::<NatType>(), Ok(NatType::Unknown));
        assert!("open".parse::<NatType>().is_err());
    }
}
