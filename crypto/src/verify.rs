//! The network's one Ed25519 verification rule, for one signature and for
//! a batch: cofactored (`[8][s]B = [8]R + [8][k]A`, `k = SHA-512(R ‖ A ‖
//! M) mod l`, `s < l`, `A` and `R` decoded as curve points), so that a
//! batch accepts exactly what one-by-one checks accept.
//!
//! The cofactorless check (`ed25519_dalek::VerifyingKey::verify`) and a
//! random-weight batch disagree on signatures whose `R` carries a
//! small-order component: the batch accepts some of them by chance. With
//! the cofactor in both equations the torsion drops out of each, so the
//! batch's answer is the single answer (up to the 2⁻¹²⁸ soundness of its
//! weights) and a node never forwards what its neighbours reject. Honest
//! signatures pass both rules.

use blake2::digest::{
    consts::{U16, U32},
    Mac,
};
use blake2::Blake2bMac;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};

/// The parts of one signature check that both rules need.
struct Parts {
    /// The signer's key as a point.
    a: EdwardsPoint,
    /// The signature's commitment as a point.
    r: EdwardsPoint,
    /// `s`, checked canonical.
    s: Scalar,
    /// `SHA-512(R ‖ A ‖ M) mod l`.
    k: Scalar,
}

/// Decodes key and signature and hashes the challenge; `None` if a point
/// does not decode or `s` is not below the group order.
fn parts(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> Option<Parts> {
    let mut r_bytes = [0u8; 32];
    let mut s_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig[..32]);
    s_bytes.copy_from_slice(&sig[32..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let a = CompressedEdwardsY(*key).decompress()?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let mut h = ring::digest::Context::new(&ring::digest::SHA512);
    h.update(&r_bytes);
    h.update(key);
    h.update(msg);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(h.finish().as_ref());
    let k = Scalar::from_bytes_mod_order_wide(&wide);
    Some(Parts { a, r, s, k })
}

/// Verifies one signature by `key` over `msg` under the network's rule.
pub fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let Some(p) = parts(key, msg, sig) else {
        return false;
    };
    // [s]B - [k]A - R, times the cofactor.
    let sb_minus_ka = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &(-p.a), &p.s);
    (sb_minus_ka - p.r).mul_by_cofactor().is_identity()
}

/// Most signatures one [`BatchVerifier::verify_all`] call checks in one
/// equation; longer inputs are checked in chunks of this size.
pub const MAX_BATCH: usize = 64;

/// Checks many signatures in one multi-scalar multiplication (about 2–3×
/// the throughput of one-by-one checks here, more when the signers
/// repeat). Keeps its own buffers between calls; the multiplication
/// allocates a few tables per batch (none for a batch of one, which is
/// checked alone).
pub struct BatchVerifier {
    /// Keys the weights with a secret, so a sender cannot predict them.
    weight_key: [u8; 32],
    /// Distinct signer keys of the batch (bytes) and their summed
    /// coefficient's index in `scalars`.
    signers: Vec<([u8; 32], usize)>,
    /// Coefficients: the basepoint's first, then one per point.
    scalars: Vec<Scalar>,
    /// Points matching `scalars[1..]`.
    points: Vec<EdwardsPoint>,
}

impl BatchVerifier {
    /// A verifier whose random weights are keyed by a key derived from
    /// `secret` (the node's random seed: weights a sender cannot predict,
    /// and no draw from the node's random stream).
    pub fn new(secret: [u8; 32]) -> Self {
        let mut weight_key = [0u8; 32];
        if let Ok(mut m) = Blake2bMac::<U32>::new_from_slice(&secret) {
            m.update(b"moss/batch-weights/v1");
            weight_key.copy_from_slice(&m.finalize().into_bytes());
        }
        Self {
            weight_key,
            signers: Vec::new(),
            scalars: Vec::new(),
            points: Vec::new(),
        }
    }

    /// True if every `(key, message, signature)` of `items` verifies under
    /// [`verify`]'s rule (and for an empty input). False says only that at
    /// least one fails: check them one by one to learn which.
    pub fn verify_all<'a, I>(&mut self, items: I) -> bool
    where
        I: IntoIterator<Item = (&'a [u8; 32], &'a [u8], &'a [u8; 64])>,
    {
        let mut it = items.into_iter().peekable();
        while let Some(first) = it.next() {
            // One signature alone: the single check (same rule, and no
            // allocation: the multi-scalar multiplication allocates its
            // tables, a few per batch).
            if it.peek().is_none() {
                return verify(first.0, first.1, first.2);
            }
            if !self.chunk(std::iter::once(first).chain(it.by_ref().take(MAX_BATCH - 1))) {
                return false;
            }
        }
        true
    }

    /// One equation over at most [`MAX_BATCH`] items.
    fn chunk<'a>(
        &mut self,
        items: impl Iterator<Item = (&'a [u8; 32], &'a [u8], &'a [u8; 64])>,
    ) -> bool {
        self.signers.clear();
        self.scalars.clear();
        self.points.clear();
        self.scalars.push(Scalar::ZERO);
        let base = match Blake2bMac::<U16>::new_from_slice(&self.weight_key) {
            Ok(m) => m,
            Err(_) => return false,
        };
        let mut b = Scalar::ZERO;
        for (i, (key, msg, sig)) in items.enumerate() {
            let Some(p) = parts(key, msg, sig) else {
                return false;
            };
            // A 128-bit weight from the keyed hash of this item's
            // challenge, signature and position.
            let mut mac = base.clone();
            mac.update(&(i as u64).to_le_bytes());
            mac.update(sig);
            mac.update(p.k.as_bytes());
            let tag = mac.finalize().into_bytes();
            let mut w = [0u8; 32];
            w[..16].copy_from_slice(&tag);
            let z = Scalar::from_bytes_mod_order(w);
            // -[z s]B + [z]R + [z k]A = 0 for a valid signature.
            b -= z * p.s;
            self.scalars.push(z);
            self.points.push(p.r);
            let zk = z * p.k;
            match self.signers.iter().find(|(k, _)| k == key) {
                Some(&(_, at)) => self.scalars[at] += zk,
                None => {
                    self.signers.push((*key, self.scalars.len()));
                    self.scalars.push(zk);
                    self.points.push(p.a);
                }
            }
        }
        self.scalars[0] = b;
        let sum = EdwardsPoint::vartime_multiscalar_mul(
            self.scalars.iter(),
            std::iter::once(&ED25519_BASEPOINT_POINT).chain(self.points.iter()),
        );
        sum.mul_by_cofactor().is_identity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;
    use curve25519_dalek::constants::EIGHT_TORSION;

    /// A signature by seed `seed` over `msg` whose R carries the torsion
    /// point `t`: valid under the cofactored rule, rejected by the
    /// cofactorless one unless `t` is the identity.
    fn torsion_signed(seed: [u8; 32], msg: &[u8], t: EdwardsPoint) -> ([u8; 32], [u8; 64]) {
        let h = ring::digest::digest(&ring::digest::SHA512, &seed);
        let mut a_bytes = [0u8; 32];
        a_bytes.copy_from_slice(&h.as_ref()[..32]);
        a_bytes[0] &= 248;
        a_bytes[31] &= 127;
        a_bytes[31] |= 64;
        let a = Scalar::from_bytes_mod_order(a_bytes);
        let key = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        let r = Scalar::from_bytes_mod_order([0x42; 32]);
        let big_r = (ED25519_BASEPOINT_POINT * r + t).compress().to_bytes();
        let mut c = ring::digest::Context::new(&ring::digest::SHA512);
        c.update(&big_r);
        c.update(&key);
        c.update(msg);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(c.finish().as_ref());
        let k = Scalar::from_bytes_mod_order_wide(&wide);
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        (key, sig)
    }

    fn dalek_verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        use ed25519_dalek::Verifier;
        ed25519_dalek::VerifyingKey::from_bytes(key).is_ok_and(|k| {
            k.verify(msg, &ed25519_dalek::Signature::from_bytes(sig))
                .is_ok()
        })
    }

    #[test]
    fn honest_signatures_pass_both_rules_and_any_flip_fails() {
        let id = Identity::from_seed([5; 32]);
        let key = id.public_key().0;
        let sig = id.sign(b"message");
        assert!(verify(&key, b"message", &sig));
        assert!(dalek_verify(&key, b"message", &sig));
        assert!(!verify(&key, b"messagf", &sig));
        for byte in [0, 31, 32, 63] {
            let mut bad = sig;
            bad[byte] ^= 1;
            assert!(!verify(&key, b"message", &bad), "flip in byte {byte}");
        }
        let mut bad_key = key;
        bad_key[3] ^= 1;
        assert!(!verify(&bad_key, b"message", &sig));
    }

    #[test]
    fn non_canonical_s_is_rejected() {
        // The group order l, little-endian.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let id = Identity::from_seed([6; 32]);
        let key = id.public_key().0;
        let mut sig = id.sign(b"m");
        // s + l: the same residue, not below l.
        let mut carry = 0u16;
        for (i, l) in L.iter().enumerate() {
            let v = u16::from(sig[32 + i]) + u16::from(*l) + carry;
            sig[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert!(!verify(&key, b"m", &sig));
        assert!(!BatchVerifier::new([1; 32]).verify_all([(&key, &b"m"[..], &sig)]));
    }

    #[test]
    fn torsion_in_r_passes_the_cofactored_rule_in_single_and_batch_alike() {
        for (n, t) in EIGHT_TORSION.iter().enumerate() {
            let (key, sig) = torsion_signed([7; 32], b"crafted", *t);
            assert!(verify(&key, b"crafted", &sig), "torsion {n}");
            // The cofactorless rule rejects every one but the identity's.
            assert_eq!(dalek_verify(&key, b"crafted", &sig), n == 0, "torsion {n}");
            // The batch agrees with the single rule whatever its weights.
            for w in 0..16u8 {
                let mut bv = BatchVerifier::new([w; 32]);
                assert!(
                    bv.verify_all([(&key, &b"crafted"[..], &sig)]),
                    "torsion {n}, weights {w}"
                );
            }
        }
    }

    #[test]
    fn a_batch_agrees_with_one_by_one_checks() {
        let ids: Vec<Identity> = (0..5u8)
            .map(|i| Identity::from_seed([i + 10; 32]))
            .collect();
        let mut bv = BatchVerifier::new([9; 32]);
        // Items: honest (several per signer), torsion-crafted, forged.
        let mut items: Vec<([u8; 32], Vec<u8>, [u8; 64])> = Vec::new();
        for i in 0..40u8 {
            let id = &ids[usize::from(i) % ids.len()];
            let msg = vec![i; 1 + usize::from(i)];
            items.push((id.public_key().0, msg.clone(), id.sign(&msg)));
        }
        let (k, s) = torsion_signed([8; 32], b"t", EIGHT_TORSION[3]);
        items.push((k, b"t".to_vec(), s));
        let all = |bv: &mut BatchVerifier, v: &[([u8; 32], Vec<u8>, [u8; 64])]| {
            bv.verify_all(v.iter().map(|(k, m, s)| (k, &m[..], s)))
        };
        assert!(all(&mut bv, &items));
        assert!(all(&mut bv, &[]));
        // More than one chunk.
        let many: Vec<_> = items
            .iter()
            .cycle()
            .take(MAX_BATCH * 2 + 3)
            .cloned()
            .collect();
        assert!(all(&mut bv, &many));
        for bad in [0usize, 17, 40] {
            let mut v = items.clone();
            v[bad].2[40] ^= 4;
            assert!(!verify(&v[bad].0, &v[bad].1, &v[bad].2));
            assert!(!all(&mut bv, &v), "forgery at {bad}");
            let mut m = many.clone();
            let last = m.len() - 1;
            m[last].2[1] ^= 1;
            assert!(!all(&mut bv, &m));
        }
        // A key that does not decode.
        let mut v = items.clone();
        v[2].0 = [0xff; 32];
        v[2].0[31] = 0x7f;
        assert_eq!(all(&mut bv, &v), verify(&v[2].0, &v[2].1, &v[2].2));
    }
}
