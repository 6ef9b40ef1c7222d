//! The scramble codec is an involution on every input and never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_crypto::Scrambler;

fuzz_target!(|data: &[u8]| {
    if data.len() < 44 {
        return;
    }
    let key: [u8; 32] = data[..32].try_into().unwrap_or([0; 32]);
    let nonce: [u8; 12] = data[32..44].try_into().unwrap_or([0; 12]);
    let s = Scrambler::new(key);
    let orig = data[44..].to_vec();
    let mut d = orig.clone();
    let masked = s.toggle_head(&mut d);
    assert_eq!(masked, s.peek_head(&orig).is_some());
    s.toggle_head(&mut d);
    assert_eq!(d, orig);
    s.toggle_body(&nonce, &mut d);
    s.toggle_body(&nonce, &mut d);
    assert_eq!(d, orig);
});
