//! STUN decoding is total, and what decodes re-encodes to something that decodes to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use moss_nat::stun::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        if let Ok(bytes) = m.encode() {
            assert_eq!(Message::decode(&bytes).as_ref(), Ok(&m));
        }
    }
});
