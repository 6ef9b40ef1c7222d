//! ring's ChaCha20-Poly1305 (what `moss-crypto` seals and opens every
//! datagram with) against RustCrypto's `chacha20poly1305`, in headless
//! Chromium: both must produce the same bytes for the same key, nonce and
//! data, and each one's time per datagram is printed for BENCHMARKS.md
//! (`aead figures:` lines). Both crates are built at opt-level 3 in the
//! test profile (peer/Cargo.toml), the loop around them is not.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, KeyInit};
use moss_wasm_peer::clock::now_ms;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const KEY: [u8; 32] = [7; 32];

fn nonce(i: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&i.to_le_bytes());
    n
}

fn ring_seal(key: &LessSafeKey, i: u64, buf: &mut Vec<u8>) {
    let n = Nonce::assume_unique_for_key(nonce(i));
    key.seal_in_place_append_tag(n, Aad::empty(), buf).unwrap();
}

fn rc_seal(key: &ChaCha20Poly1305, i: u64, buf: &mut Vec<u8>) {
    key.encrypt_in_place(&nonce(i).into(), b"", buf).unwrap();
}

#[wasm_bindgen_test]
fn ring_and_rustcrypto_seal_the_same_bytes() {
    let r = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &KEY).unwrap());
    let c = ChaCha20Poly1305::new(&KEY.into());
    for (i, len) in [0usize, 1, 63, 64, 1200].into_iter().enumerate() {
        let data: Vec<u8> = (0..len).map(|b| b as u8).collect();
        let (mut a, mut b) = (data.clone(), data.clone());
        ring_seal(&r, i as u64, &mut a);
        rc_seal(&c, i as u64, &mut b);
        assert_eq!(a, b, "{len} B");
        assert_eq!(a.len(), len + 16);
        // And each opens the other's.
        let mut opened = b.clone();
        let n = Nonce::assume_unique_for_key(nonce(i as u64));
        let plain = r.open_in_place(n, Aad::empty(), &mut opened).unwrap();
        assert_eq!(plain, &data[..]);
        c.decrypt_in_place(&nonce(i as u64).into(), b"", &mut a).unwrap();
        assert_eq!(a, data);
    }
}

/// Microseconds per seal of a `len`-byte datagram, best of 3 runs of `n`.
fn per_seal(n: u64, len: usize, mut seal: impl FnMut(u64, &mut Vec<u8>)) -> f64 {
    let mut best = f64::INFINITY;
    let mut buf = vec![0x5a; len];
    buf.reserve(16);
    for _ in 0..3 {
        let t0 = now_ms();
        for i in 0..n {
            // Each round seals the last one's ciphertext, tag cut off.
            buf.truncate(len);
            seal(i, &mut buf);
        }
        best = best.min((now_ms() - t0) * 1e3 / n as f64);
    }
    best
}

#[wasm_bindgen_test]
fn aead_figures() {
    let r = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &KEY).unwrap());
    let c = ChaCha20Poly1305::new(&KEY.into());
    for (len, n) in [(64usize, 4_000u64), (1200, 1_000)] {
        let ring_us = per_seal(n, len, |i, b| ring_seal(&r, i, b));
        let rc_us = per_seal(n, len, |i, b| rc_seal(&c, i, b));
        let line = format!(
            "aead figures: {len} B seal: ring {ring_us:.2} µs, RustCrypto {rc_us:.2} µs, RustCrypto/ring {:.2}x, {:.1} / {:.1} MB/s",
            rc_us / ring_us,
            len as f64 / ring_us,
            len as f64 / rc_us
        );
        console_log!("{line}");
        assert!(ring_us.is_finite() && rc_us.is_finite() && ring_us > 0.0 && rc_us > 0.0);
    }
}
