//! Hint bodies: `Hint::decode` is total, and what decodes re-encodes to
//! the same bytes; a node fed any bytes as a hint datagram (with a dial of its own
//! in flight, so a hint can match something) only counts, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_mesh::hint::Hint;
use moss_mesh::wire::Kind;

mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&pad, body)) = data.split_first() else { return };
    let pad_len = u16::from(pad & 1);
    if let Ok(h) = Hint::decode(body, pad_len) {
        let mut fill = [0u8; 11];
        fill.copy_from_slice(&body[5..16]);
        assert_eq!(&h.encode(fill)[..], body);
    }
    // The same bytes as a hint datagram to a node.
    common::feed(Kind::Hint, pad_len, body);
});
