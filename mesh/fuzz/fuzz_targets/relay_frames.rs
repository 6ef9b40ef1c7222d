//! The relay frame decoder is total, and whatever decodes re-encodes to
//! the bytes it came from (the body is strict: exact lengths).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_mesh::relay::frames::Relay;

fuzz_target!(|data: &[u8]| {
    let Some((&t, body)) = data.split_first() else {
        return;
    };
    let t = 0x60 | (t & 0x0F);
    if let Ok(f) = Relay::decode(t, body) {
        let mut out = Vec::new();
        f.encode_body(&mut out);
        assert_eq!(out, body);
    }
});
