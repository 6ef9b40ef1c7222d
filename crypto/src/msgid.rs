//! Message ids: BLAKE2s-256 over sender key, sequence number and payload.

use blake2::{Blake2s256, Digest};

/// Computes the id that deduplicates a pub/sub message.
pub fn message_id(sender: &[u8; 32], seq: u64, topic: &str, payload: &[u8]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    h.update(sender);
    h.update(seq.to_be_bytes());
    h.update((topic.len() as u32).to_be_bytes());
    h.update(topic.as_bytes());
    h.update(payload);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_matters() {
        let base = message_id(&[1; 32], 1, "t", b"x");
        assert_ne!(base, message_id(&[2; 32], 1, "t", b"x"));
        assert_ne!(base, message_id(&[1; 32], 2, "t", b"x"));
        assert_ne!(base, message_id(&[1; 32], 1, "u", b"x"));
        assert_ne!(base, message_id(&[1; 32], 1, "t", b"y"));
        // topic/payload boundary is unambiguous
        assert_ne!(
            message_id(&[1; 32], 1, "ab", b"c"),
            message_id(&[1; 32], 1, "a", b"bc")
        );
    }
}
