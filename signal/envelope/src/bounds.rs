//! The bounds both ends enforce on an envelope and the names in it.

/// Longest room name (a mesh infohash in hex is 40).
pub const MAX_ROOM: usize = 128;

/// Longest peer id (a public key in hex is 64).
pub const MAX_ID: usize = 64;

/// Longest envelope `type`.
pub const MAX_TYPE: usize = 64;

/// Longest SDP a peer accepts (the browser peer bounds it the same way).
pub const MAX_SDP: usize = 16 * 1024;

/// The default bound on one envelope's JSON text at the relay.
pub const MAX_ENVELOPE: usize = 16 * 1024;

/// The room and id rule: 1..=`max` bytes of URL-unreserved ASCII
/// (`A-Z a-z 0-9 . _ ~ -`), so both are safe in URLs, logs and JSON as is.
pub fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_unreserved_ascii() {
        assert!(valid_name("a-b_c.d~0", MAX_ID));
        assert!(valid_name(&"i".repeat(MAX_ID), MAX_ID));
        for bad in ["", "a b", "a/b", "é", "a?b"] {
            assert!(!valid_name(bad, MAX_ID), "{bad:?}");
        }
        assert!(!valid_name(&"i".repeat(MAX_ID + 1), MAX_ID));
    }
}
