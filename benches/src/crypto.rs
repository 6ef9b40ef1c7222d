//! Raw AEAD limit: `ring` ChaCha20-Poly1305 seal + open on one core; the
//! scramble codec's head masks, one by one and batched.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Why the crypto measurement could not run.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// ring refused the key or a seal.
    #[error("ring ChaCha20-Poly1305 failed to seal")]
    Seal,
    /// A freshly sealed datagram did not open: the measurement is void.
    #[error("ring ChaCha20-Poly1305 failed to open its own ciphertext")]
    Open,
}

/// Seal+open pairs per second for `size`-byte payloads over `dur`.
pub fn seal_open_rate(size: usize, dur: Duration) -> Result<f64, CryptoError> {
    let key = UnboundKey::new(&CHACHA20_POLY1305, &[7u8; 32]).map_err(|_| CryptoError::Seal)?;
    let key = LessSafeKey::new(key);
    let mut buf: Vec<u8> = Vec::with_capacity(size + 16);
    let plain: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < dur {
        // Check the clock every 256 operations.
        for _ in 0..256 {
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&n.to_le_bytes());
            buf.clear();
            buf.extend_from_slice(&plain);
            key.seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buf,
            )
            .map_err(|_| CryptoError::Seal)?;
            let opened = key
                .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
                .map_err(|_| CryptoError::Open)?;
            black_box(opened);
            n += 1;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Scramble head masks per second over `dur`: one by one
/// (`Scrambler::peek_head`) and batched (`Scrambler::peek_heads` over
/// chunks of 64 datagrams of `size` bytes, the lane-wise ChaCha20).
pub fn head_mask_rates(size: usize, dur: Duration) -> (f64, f64) {
    use moss_crypto::Scrambler;
    let s = Scrambler::new([7u8; 32]);
    let datagrams: Vec<Vec<u8>> = (0..64u32)
        .map(|i| {
            (0..size.max(32))
                .map(|j| (i as usize * 31 + j) as u8)
                .collect()
        })
        .collect();
    let views: Vec<&[u8]> = datagrams.iter().map(|d| &d[..]).collect();
    let scalar = rate(dur, || {
        for d in &views {
            black_box(s.peek_head(black_box(d)));
        }
    });
    let mut heads = [None; 64];
    let batched = rate(dur, || {
        s.peek_heads(black_box(&views), &mut heads);
        black_box(&heads);
    });
    (scalar * 64.0, batched * 64.0)
}

/// Calls of `f` per second over `dur`.
fn rate(dur: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < dur {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}
