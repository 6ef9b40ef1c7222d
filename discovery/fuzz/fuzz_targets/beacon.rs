//! LAN beacon decoder, under a fixed key and under a key taken from the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_discovery::beacon;

fuzz_target!(|data: &[u8]| {
    let _ = beacon::decode(&[0x42; 32], data);
    if data.len() >= 32 {
        let mut key = [0u8; 32];
        key.copy_from_slice(&data[..32]);
        let _ = beacon::decode(&key, &data[32..]);
        // A beacon we encode under that key must decode back.
        let b = beacon::Beacon {
            listen_port: 1 + u16::from(data[0]),
            instance_id: [data[1]; 8],
        };
        assert_eq!(beacon::decode(&key, &beacon::encode(&key, &b)), Ok(b));
    }
});
