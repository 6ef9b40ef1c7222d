//! Raw AEAD limit: `ring` ChaCha20-Poly1305 seal + open on one core.

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
