//! The NAT frame, address and token-body decoders are total, and whatever
//! decodes re-encodes to the bytes it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_mesh::nat::{
    decode_addr, decode_token_body, encode_addr, encode_token_body, split_addr, NatFrame,
    TOKEN_LEN,
};

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
    // The token datagram's body: the first byte picks the padding length.
    if let Ok(token) = decode_token_body(body, u16::from(t & 0x01)) {
        let mut fill = [0u8; 16];
        fill.copy_from_slice(&body[TOKEN_LEN..]);
        assert_eq!(encode_token_body(&token, &fill)[..], body[..]);
    }
});
