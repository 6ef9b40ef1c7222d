//! The 20-byte BitTorrent peer id Moss announces with.

/// Prefix that identifies a Moss node in tracker announces (Azureus style:
/// client code `MS`, version `0100`).
pub const PEER_ID_PREFIX: &[u8; 8] = b"-MS0100-";

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Builds a peer id from the Moss prefix and 12 random bytes, each mapped to
/// `[a-z0-9]` so the id is printable in tracker logs.
pub fn peer_id_from_random(random: [u8; 12]) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..8].copy_from_slice(PEER_ID_PREFIX);
    for (slot, byte) in out[8..].iter_mut().zip(random) {
        *slot = ALPHABET[usize::from(byte) % ALPHABET.len()];
    }
    out
}

/// Generates a fresh peer id with randomness from the operating system.
pub fn generate_peer_id() -> Result<[u8; 20], getrandom::Error> {
    let mut random = [0u8; 12];
    getrandom::getrandom(&mut random)?;
    Ok(peer_id_from_random(random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_alphabet() {
        let id = peer_id_from_random([0, 25, 26, 35, 36, 255, 1, 2, 3, 4, 5, 6]);
        assert_eq!(&id[..8], b"-MS0100-");
        assert_eq!(&id[8..], b"az09adbcdefg");
    }

    #[test]
    fn generated_ids_differ_and_are_printable() {
        let a = generate_peer_id().unwrap();
        let b = generate_peer_id().unwrap();
        assert_ne!(a, b);
        assert!(a[8..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
