//! The NAT frame and address decoders are total, and whatever decodes
//! re-encodes to the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_mesh::nat::{decode_addr, encode_addr, split_addr, NatFrame};

fuzz_target!(|data: &[u8]| {
    let Some((&t, body)) = data.split_first() else {
        return;
    };
    let t = 0x50 | (t & 0x0F);
    if let Ok(f) = NatFrame::decode(t, body) {
        let mut out = Vec::new();
        f.encode_body(&mut out);
        assert_eq!(out, body);
        assert_eq!(f.body_len(), body.len());
        assert_eq!(f.type_byte(), t);
    }
    if let Ok(a) = decode_addr(body) {
        let mut out = Vec::new();
        encode_addr(a, &mut out);
        assert_eq!(out, body);
    }
    if let Ok((_, rest)) = split_addr(body) {
        assert!(rest.len() < body.len());
    }
});
