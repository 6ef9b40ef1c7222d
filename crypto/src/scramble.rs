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
    /// The key as ChaCha20's eight little-endian state words.
    key_words: [u32; 8],
}

use crate::lanes::{self, SIGMA};

/// Datagrams [`Scrambler::peek_heads`] gathers per lane-wise pass.
const PEEK_CHUNK: usize = 64;

fn quarter_round(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

/// The first `N` words (N ≤ 16) of ChaCha20 block `counter` (RFC 8439
/// §2.3): one block and nothing more, where the stream cipher computes
/// several at once for a 16-byte head mask.
fn chacha20_block<const N: usize>(key: &[u32; 8], counter: u32, nonce: &[u32; 3]) -> [u32; N] {
    let mut init = [0u32; 16];
    init[..4].copy_from_slice(&SIGMA);
    init[4..12].copy_from_slice(key);
    init[12] = counter;
    init[13..].copy_from_slice(nonce);
    let mut x = init;
    for _ in 0..10 {
        quarter_round(&mut x, 0, 4, 8, 12);
        quarter_round(&mut x, 1, 5, 9, 13);
        quarter_round(&mut x, 2, 6, 10, 14);
        quarter_round(&mut x, 3, 7, 11, 15);
        quarter_round(&mut x, 0, 5, 10, 15);
        quarter_round(&mut x, 1, 6, 11, 12);
        quarter_round(&mut x, 2, 7, 8, 13);
        quarter_round(&mut x, 3, 4, 9, 14);
    }
    let mut out = [0u32; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = x[i].wrapping_add(init[i]);
    }
    out
}

/// Little-endian words of `bytes` (a multiple of 4 long).
fn words<const N: usize>(bytes: &[u8]) -> [u32; N] {
    let mut w = [0u32; N];
    for (w, c) in w.iter_mut().zip(bytes.chunks_exact(4)) {
        *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    w
}

/// The first [`HEAD_LEN`] bytes of `datagram` (at least that long) XORed
/// with `mask`.
fn unmasked(datagram: &[u8], mask: &[u8; HEAD_LEN]) -> [u8; HEAD_LEN] {
    let mut head = [0u8; HEAD_LEN];
    for ((h, b), m) in head.iter_mut().zip(datagram).zip(mask) {
        *h = b ^ m;
    }
    head
}

impl Scrambler {
    /// A codec for the given 32-byte scramble key (see [`crate::MeshKeys`]).
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            key_words: words(&key),
        }
    }

    fn head_mask(&self, sample: &[u8; SAMPLE_LEN]) -> [u8; HEAD_LEN] {
        // ChaCha20's block counter is 32 bits; keeping the top bit clear
        // leaves room for the block, so the keystream never wraps.
        let [block, n0, n1, n2] = lanes::sample_words(sample);
        let w: [u32; 4] = chacha20_block(&self.key_words, block, &[n0, n1, n2]);
        let mut mask = [0u8; HEAD_LEN];
        for (m, w) in mask.chunks_exact_mut(4).zip(w) {
            m.copy_from_slice(&w.to_le_bytes());
        }
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
        Some(unmasked(datagram, &self.head_mask(&sample)))
    }

    /// The head masks of many samples at once: `masks[i]` becomes the mask
    /// [`Scrambler::toggle_head`] would apply for body sample `samples[i]`,
    /// for as many as both slices hold. Lane-wise ChaCha20 (sixteen lanes
    /// with AVX-512F, eight with AVX2 where the CPU has them, four
    /// otherwise), the last few one by one.
    pub fn head_masks(&self, samples: &[[u8; SAMPLE_LEN]], masks: &mut [[u8; HEAD_LEN]]) {
        let n = samples.len().min(masks.len());
        let done = lanes::masks(&self.key_words, &samples[..n], &mut masks[..n]);
        for (s, m) in samples[done..n].iter().zip(&mut masks[done..n]) {
            *m = self.head_mask(s);
        }
    }

    /// [`Scrambler::peek_head`] of many datagrams at once with
    /// [`Scrambler::head_masks`]: `heads[i]` becomes the unmasked head of
    /// `datagrams[i]` (`None` if it is shorter than [`MIN_DATAGRAM`]), for
    /// as many as both slices hold. No allocation.
    pub fn peek_heads(&self, datagrams: &[&[u8]], heads: &mut [Option<[u8; HEAD_LEN]>]) {
        let mut samples = [[0u8; SAMPLE_LEN]; PEEK_CHUNK];
        let mut masks = [[0u8; HEAD_LEN]; PEEK_CHUNK];
        for (ds, hs) in datagrams
            .chunks(PEEK_CHUNK)
            .zip(heads.chunks_mut(PEEK_CHUNK))
        {
            let n = ds.len().min(hs.len());
            for (s, d) in samples.iter_mut().zip(&ds[..n]) {
                if let Some(sample) = d.get(HEAD_LEN..MIN_DATAGRAM) {
                    s.copy_from_slice(sample);
                }
            }
            self.head_masks(&samples[..n], &mut masks[..n]);
            for ((h, d), m) in hs.iter_mut().zip(&ds[..n]).zip(&masks) {
                *h = (d.len() >= MIN_DATAGRAM).then(|| unmasked(d, m));
            }
        }
    }

    /// The lanes [`Scrambler::head_masks`] computes at once on this CPU
    /// (16 with AVX-512F, 8 with AVX2, else 4).
    pub fn mask_lanes() -> usize {
        lanes::width()
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

    /// The head mask as the stream cipher computes it (what the codec
    /// used before it computed one block itself).
    fn stream_mask(key: &[u8; 32], sample: &[u8; SAMPLE_LEN]) -> [u8; HEAD_LEN] {
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&sample[4..16]);
        let block = u32::from_le_bytes([sample[0], sample[1], sample[2], sample[3]]) & 0x7fff_ffff;
        let mut c = ChaCha20::new(&(*key).into(), &nonce.into());
        c.seek(u64::from(block) * 64);
        let mut mask = [0u8; HEAD_LEN];
        c.apply_keystream(&mut mask);
        mask
    }

    #[test]
    fn the_block_function_matches_rfc_8439() {
        // RFC 8439 §2.3.2: key 00..1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00,
        // block counter 1.
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let nonce = [0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0];
        let out: [u32; 16] = chacha20_block(&words(&key), 1, &words(&nonce));
        let expected = [
            0xe4e7f110, 0x15593bd1, 0x1fdd0f50, 0xc47120a3, 0xc7f4d1c7, 0x0368c033, 0x9aaa2204,
            0x4e6cd4c3, 0x466482d2, 0x09aa9f07, 0x05d7c214, 0xa2028bd9, 0xd19c12b5, 0xb94e16de,
            0xe883d0cb, 0x4e3c50a2,
        ];
        assert_eq!(out, expected);
        let short: [u32; 4] = chacha20_block(&words(&key), 1, &words(&nonce));
        assert_eq!(short, expected[..4]);
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

    /// A sample selecting ChaCha20 block `counter` with `nonce`.
    fn sample_of(counter: u32, nonce: &[u8; 12]) -> [u8; SAMPLE_LEN] {
        let mut s = [0u8; SAMPLE_LEN];
        s[..4].copy_from_slice(&counter.to_le_bytes());
        s[4..].copy_from_slice(nonce);
        s
    }

    #[test]
    fn the_lane_wise_blocks_match_rfc_8439() {
        // The RFC 8439 §2.3.2 block in every lane of every path.
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let sample = sample_of(1, &[0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0]);
        let mut expected = [0u8; HEAD_LEN];
        for (b, w) in
            expected
                .chunks_exact_mut(4)
                .zip([0xe4e7f110u32, 0x15593bd1, 0x1fdd0f50, 0xc47120a3])
        {
            b.copy_from_slice(&w.to_le_bytes());
        }
        let key_words = words(&key);
        let samples = [sample; 8];
        let mut masks = [[0u8; HEAD_LEN]; 8];
        assert_eq!(lanes::masks_narrow(&key_words, &samples, &mut masks), 8);
        assert_eq!(masks, [expected; 8]);
        let mut arrays = [[0u8; HEAD_LEN]; 8];
        assert_eq!(lanes::masks_arrays(&key_words, &samples, &mut arrays), 8);
        assert_eq!(arrays, [expected; 8]);
        let mut wide = [[0u8; HEAD_LEN]; 8];
        if let Some(n) = lanes::masks_wide(&key_words, &samples, &mut wide) {
            assert_eq!(n, 8);
            assert_eq!(wide, [expected; 8]);
        }
        let mut widest = [[0u8; HEAD_LEN]; 16];
        if let Some(n) = lanes::masks_widest(&key_words, &[sample; 16], &mut widest) {
            assert_eq!(n, 16);
            assert_eq!(widest, [expected; 16]);
        }
        let mut all = [[0u8; HEAD_LEN]; 8];
        Scrambler::new(key).head_masks(&samples, &mut all);
        assert_eq!(all, [expected; 8]);
    }

    #[test]
    fn batched_masks_cover_only_what_both_slices_hold() {
        let s = Scrambler::new([5; 32]);
        let samples: Vec<[u8; SAMPLE_LEN]> = (0..11u8).map(|i| [i; SAMPLE_LEN]).collect();
        let mut masks = vec![[0u8; HEAD_LEN]; 13];
        s.head_masks(&samples, &mut masks);
        for (m, smp) in masks.iter().zip(&samples) {
            assert_eq!(*m, s.head_mask(smp));
        }
        assert_eq!(masks[11..], [[0u8; HEAD_LEN]; 2]);
        let mut few = vec![[0u8; HEAD_LEN]; 3];
        s.head_masks(&samples, &mut few);
        assert_eq!(few[..], masks[..3]);
    }

    proptest! {
        #[test]
        fn every_lane_path_is_the_scalar_mask(key in any::<[u8; 32]>(), samples in proptest::collection::vec(any::<[u8; SAMPLE_LEN]>(), 0..40)) {
            let s = Scrambler::new(key);
            let scalar: Vec<_> = samples.iter().map(|x| s.head_mask(x)).collect();
            let mut batched = vec![[0u8; HEAD_LEN]; samples.len()];
            s.head_masks(&samples, &mut batched);
            prop_assert_eq!(&batched, &scalar);
            let mut narrow = vec![[0u8; HEAD_LEN]; samples.len()];
            let n = lanes::masks_narrow(&s.key_words, &samples, &mut narrow);
            prop_assert_eq!(n, samples.len() / lanes::NARROW * lanes::NARROW);
            prop_assert_eq!(&narrow[..n], &scalar[..n]);
            let mut arrays = vec![[0u8; HEAD_LEN]; samples.len()];
            let n = lanes::masks_arrays(&s.key_words, &samples, &mut arrays);
            prop_assert_eq!(&arrays[..n], &scalar[..n]);
            let mut wide = vec![[0u8; HEAD_LEN]; samples.len()];
            if let Some(n) = lanes::masks_wide(&s.key_words, &samples, &mut wide) {
                prop_assert_eq!(n, samples.len() / lanes::WIDE * lanes::WIDE);
                prop_assert_eq!(&wide[..n], &scalar[..n]);
            }
            let mut widest = vec![[0u8; HEAD_LEN]; samples.len()];
            if let Some(n) = lanes::masks_widest(&s.key_words, &samples, &mut widest) {
                prop_assert_eq!(n, samples.len() / lanes::WIDEST * lanes::WIDEST);
                prop_assert_eq!(&widest[..n], &scalar[..n]);
            }
        }

        #[test]
        fn batched_peeks_are_single_peeks(key in any::<[u8; 32]>(), datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..150)) {
            let s = Scrambler::new(key);
            let views: Vec<&[u8]> = datagrams.iter().map(|d| &d[..]).collect();
            let mut heads = vec![Some([7u8; HEAD_LEN]); views.len()];
            s.peek_heads(&views, &mut heads);
            let single: Vec<_> = views.iter().map(|d| s.peek_head(d)).collect();
            prop_assert_eq!(heads, single);
        }

        #[test]
        fn the_head_mask_is_the_stream_ciphers(key in any::<[u8; 32]>(), sample in any::<[u8; SAMPLE_LEN]>()) {
            prop_assert_eq!(Scrambler::new(key).head_mask(&sample), stream_mask(&key, &sample));
        }

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
