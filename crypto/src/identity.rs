//! Ed25519 node identities; the 32-byte public key is the peer id.

use ed25519_dalek::{Signer, SigningKey};
use std::fmt;

/// A peer id: the 32-byte Ed25519 public key of a node.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 32]);

impl PeerId {
    /// Lower-case hex of the key (as the C ABI and HTTP API show it).
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
            s.push(char::from_digit((b & 15) as u32, 16).unwrap_or('0'));
        }
        s
    }

    /// Verifies an Ed25519 signature by this peer under the network's
    /// cofactored rule ([`crate::verify`]).
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        crate::verify::verify(&self.0, msg, sig)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why stored identity bytes were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The buffer is neither a 32-byte seed nor a 64-byte seed‖public key.
    #[error("identity must be 32 or 64 bytes, got {0}")]
    BadLength(usize),
    /// The 64-byte form's public half does not match its seed.
    #[error("stored public key does not match the private key")]
    Mismatch,
}

/// A node's Ed25519 key pair.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// Builds an identity from a 32-byte secret seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// Generates a fresh identity from the given random source.
    pub fn generate(rng: &mut impl rand_core::RngCore) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        Self::from_seed(seed)
    }

    /// Parses stored key bytes: a 32-byte seed, or 64 bytes seed‖public key
    /// (the layout Go's `ed25519.PrivateKey` uses).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let seed: [u8; 32] = match bytes.len() {
            32 | 64 => bytes[..32]
                .try_into()
                .map_err(|_| IdentityError::BadLength(bytes.len()))?,
            n => return Err(IdentityError::BadLength(n)),
        };
        let id = Self::from_seed(seed);
        if bytes.len() == 64 && bytes[32..] != id.public_key().0 {
            return Err(IdentityError::Mismatch);
        }
        Ok(id)
    }

    /// The 64-byte storage form: seed‖public key.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.key.to_keypair_bytes()
    }

    /// The 32-byte secret seed.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// This node's peer id.
    pub fn public_key(&self) -> PeerId {
        PeerId(self.key.verifying_key().to_bytes())
    }

    /// Signs `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?})", self.public_key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_storage_round_trip() {
        let id = Identity::from_seed([7; 32]);
        let sig = id.sign(b"hello");
        assert!(id.public_key().verify(b"hello", &sig));
        assert!(!id.public_key().verify(b"hellO", &sig));
        let back = Identity::from_bytes(&id.to_bytes()).unwrap();
        assert_eq!(back.public_key(), id.public_key());
        assert_eq!(
            Identity::from_bytes(&[1; 31]).unwrap_err(),
            IdentityError::BadLength(31)
        );
        let mut bad = id.to_bytes();
        bad[40] ^= 1;
        assert_eq!(
            Identity::from_bytes(&bad).unwrap_err(),
            IdentityError::Mismatch
        );
    }

    #[test]
    fn hex_is_lowercase_64_chars() {
        let p = PeerId([0xab; 32]);
        assert_eq!(p.to_hex(), "ab".repeat(32));
    }
}
