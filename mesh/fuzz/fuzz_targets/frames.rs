//! The frame decoder and the handshake-body and publish decoders are total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_mesh::wire::{FrameReader, HandshakeBody, Publish};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    for f in FrameReader::new(data) {
        match f {
            // Whatever decodes re-encodes to the bytes it came from.
            Ok(frame) => {
                let start = out.len();
                frame.encode(&mut out);
                assert_eq!(out.len() - start, frame.encoded_len());
            }
            Err(_) => break,
        }
    }
    assert!(data.starts_with(&out));
    if data.len() >= 2 {
        let pad = u16::from_le_bytes([data[0], data[1]]);
        let _ = HandshakeBody::decode(&data[2..], pad);
    }
    let _ = Publish::decode_body(data);
});
