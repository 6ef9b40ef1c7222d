//! The scramble codec: makes every datagram look like uniform random bytes
//! to a DPI box. It is obfuscation keyed by the mesh, not the security
//! boundary (Noise is).
//!
//! Every datagram is `head (16) ‖ body (≥ 16)`. The head is masked with a
//! ChaCha20 keystream block selected by the first 16 bytes of the body (the
//! "sample", as QUIC header protection does), so data datagrams pay one
//! keystream block and no second AEAD. Handshake bodies, which carry
//! recognisable Noise structure, are additionally XORed whole with a
//! keystream selected by a random nonce that travels inside the masked head.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;

/// Bytes of the masked head.
pub const HEAD_LEN: usize = 16;
/// Bytes of body sampled to select the head mask.
pub const SAMPLE_LEN: usize = 16;
/// Smallest datagram the codec accepts.
pub const MIN_DATAGRAM: usize = HEAD_LEN + SAMPLE_LEN;

/// Keyed scramble codec of one mesh.
#[derive(Clone)]
pub struct Scrambler {
    key: [u8; 32],
}

impl Scrambler {
    /// A codec for the given 32-byte scramble key (see [`crate::MeshKeys`]).
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn head_mask(&self, sample: &[u8; SAMPLE_LEN]) -> [u8; HEAD_LEN] {
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&sample[4..16]);
        // ChaCha20's block counter is 32 bits; keeping the top bit clear
        // leaves room for the block, so the keystream never wraps.
        let block = u32::from_le_bytes([sample[0], sample[1], sample[2], sample[3]]) & 0x7fff_ffff;
        let mut c = ChaCha20::new(&self.key.into(), &nonce.into());
        c.seek(u64::from(block) * 64);
        let mut mask = [0u8; HEAD_LEN];
        c.apply_keystream(&mut mask);
        mask
    }

    /// XORs the head of `datagram` with the mask selected by its body sample.
    /// Applying it twice restores the original, so it both masks and unmasks.
    /// Returns false (and leaves the bytes alone) for datagrams shorter than
    /// [`MIN_DATAGRAM`].
    pub fn toggle_head(&self, datagram: &mut [u8]) -> bool {
        if datagram.len() < MIN_DATAGRAM {
            return false;
        }
        let mut sample = [0u8; SAMPLE_LEN];
        sample.copy_from_slice(&datagram[HEAD_LEN..MIN_DATAGRAM]);
        let mask = self.head_mask(&sample);
        for (b, m) in datagram[..HEAD_LEN].iter_mut().zip(mask) {
            *b ^= m;
        }
        true
    }

    /// Returns the unmasked head without modifying the datagram.
    pub fn peek_head(&self, datagram: &[u8]) -> Option<[u8; HEAD_LEN]> {
        if datagram.len() < MIN_DATAGRAM {
            return None;
        }
        let mut sample = [0u8; SAMPLE_LEN];
        sample.copy_from_slice(&datagram[HEAD_LEN..MIN_DATAGRAM]);
        let mask = self.head_mask(&sample);
        let mut head = [0u8; HEAD_LEN];
        for i in 0..HEAD_LEN {
            head[i] = datagram[i] ^ mask[i];
        }
        Some(head)
    }

    /// XORs a handshake body with the keystream of `nonce` (from the head).
    /// Involutive like [`Scrambler::toggle_head`].
    pub fn toggle_body(&self, nonce: &[u8; 12], body: &mut [u8]) {
        let mut c = ChaCha20::new(&self.key.into(), &(*nonce).into());
        // Start at block 1 so body keystreams never equal a head mask block
        // drawn with the same nonce and block 0.
        c.seek(64u64);
        c.apply_keystream(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn head_mask_round_trips_and_changes_bytes() {
        let s = Scrambler::new([9; 32]);
        let mut d: Vec<u8> = (0..64u8).collect();
        let orig = d.clone();
        assert!(s.toggle_head(&mut d));
        assert_ne!(d[..HEAD_LEN], orig[..HEAD_LEN]);
        assert_eq!(d[HEAD_LEN..], orig[HEAD_LEN..]);
        assert_eq!(s.peek_head(&d).unwrap()[..], orig[..HEAD_LEN]);
        assert!(s.toggle_head(&mut d));
        assert_eq!(d, orig);
        assert!(!s.toggle_head(&mut [0u8; 31]));
        assert!(s.peek_head(&[0u8; 31]).is_none());
    }

    #[test]
    fn extreme_block_counters_do_not_wrap() {
        // Found by fuzzing: a sample starting with ff ff ff ff.
        let s = Scrambler::new([0; 32]);
        let mut d = vec![0xffu8; 40];
        assert!(s.toggle_head(&mut d));
        assert!(s.toggle_head(&mut d));
        assert_eq!(d, vec![0xffu8; 40]);
    }

    #[test]
    fn other_key_sees_garbage() {
        let a = Scrambler::new([1; 32]);
        let b = Scrambler::new([2; 32]);
        let mut d = vec![0u8; 48];
        a.toggle_head(&mut d);
        assert_ne!(b.peek_head(&d).unwrap(), [0u8; HEAD_LEN]);
    }

    proptest! {
        #[test]
        fn toggles_are_involutions(key in any::<[u8; 32]>(), nonce in any::<[u8; 12]>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let s = Scrambler::new(key);
            let mut b = body.clone();
            s.toggle_body(&nonce, &mut b);
            s.toggle_body(&nonce, &mut b);
            prop_assert_eq!(&b, &body);
            let mut d = body.clone();
            let ok = s.toggle_head(&mut d);
            prop_assert_eq!(ok, body.len() >= MIN_DATAGRAM);
            s.toggle_head(&mut d);
            prop_assert_eq!(d, body);
        }
    }
}
