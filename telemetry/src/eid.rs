//! The unlinkable per-epoch contributor id.

use blake2::{Blake2s256, Digest as _};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A 32-byte per-epoch id: `BLAKE2s-256(epoch as u64 big-endian ‖ pubkey)`.
///
/// It rotates every epoch and is one-way, so it cannot be linked to the
/// node's public key nor to the same node's id in another epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Eid(#[serde(with = "hex_array")] pub [u8; 32]);

impl Eid {
    /// The eid's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes as a big-endian integer: the uniform hash fed to the
    /// HyperLogLog sketch.
    pub fn hll_hash(&self) -> u64 {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        u64::from_be_bytes([a, b, c, d, e, f, g, h])
    }
}

impl fmt::Debug for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Eid({})", hex::encode(self.0))
    }
}

impl fmt::Display for Eid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Derives the per-epoch id of the node with Ed25519 public key `pubkey`:
/// `BLAKE2s-256(epoch.to_be_bytes() ‖ pubkey)`.
pub fn eid(epoch: u64, pubkey: &[u8; 32]) -> Eid {
    let mut h = Blake2s256::new();
    h.update(epoch.to_be_bytes());
    h.update(pubkey);
    Eid(h.finalize().into())
}

/// Serde helper: a 32-byte array as a lowercase hex string.
pub(crate) mod hex_array {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    /// Serializes 32 bytes as 64 lowercase hex characters.
    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    /// Parses 64 hex characters into 32 bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.as_bytes(), &mut out).map_err(D::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eid_matches_independent_blake2s_vector() {
        // Computed with Python: hashlib.blake2s(bytes(8) + bytes(32)).hexdigest()
        assert_eq!(
            eid(0, &[0u8; 32]).to_string(),
            "94bb15542026f4f607416f019dffe21bb39bbb32cc92085ab615660a6b5fbef4"
        );
    }

    #[test]
    fn eid_rotates_per_epoch_and_is_stable_within_one() {
        let pk = [7u8; 32];
        assert_ne!(eid(1, &pk), eid(2, &pk));
        assert_eq!(eid(5, &pk), eid(5, &pk));
        assert_ne!(eid(5, &pk), eid(5, &[8u8; 32]));
    }

    #[test]
    fn eid_hex_serde_round_trips() {
        let e = eid(3, &[1u8; 32]);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, format!("\"{e}\""));
        assert_eq!(serde_json::from_str::<Eid>(&json).unwrap(), e);
        assert!(serde_json::from_str::<Eid>("\"abcd\"").is_err());
    }
}
