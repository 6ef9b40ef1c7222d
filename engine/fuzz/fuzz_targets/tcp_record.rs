//! The TCP record decoder on arbitrary streams, fed in arbitrary splits:
//! it never panics, never delivers a datagram outside the record bounds,
//! never buffers more than one record, and a stream it accepts re-encodes
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss::tcp::record::{self, Decoder, Mask, MAX_RECORD, MIN_RECORD, NONCE_LEN};

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let key = record::mask_key(&[0x42; 32]);
    let mut d = Decoder::new(key);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut result = Ok(());
    for chunk in stream.chunks(usize::from(split) + 1) {
        result = d.feed(chunk, &mut |r| {
            assert!((MIN_RECORD..=MAX_RECORD).contains(&r.len()));
            got.push(r.to_vec());
        });
        if result.is_err() {
            break;
        }
    }
    // What was delivered re-encodes to a prefix of the stream.
    if stream.len() >= NONCE_LEN {
        let nonce: [u8; NONCE_LEN] = stream[..NONCE_LEN].try_into().unwrap_or([0; NONCE_LEN]);
        let mut m = Mask::new(&key, &nonce);
        let mut out = nonce.to_vec();
        for g in &got {
            record::encode(&mut m, g, &mut out);
        }
        assert!(stream.starts_with(&out));
    } else {
        assert!(got.is_empty() && result.is_ok());
    }
});
