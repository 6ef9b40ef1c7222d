//! The envelope decoder and the hub's router on arbitrary text: no panic,
//! and whatever the hub forwards is JSON with the sender stamped in `from`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_signal::hub::Hub;
use moss_signal::limits::Limits;
use std::time::Instant;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = moss_signal::envelope::decode(text);
    let mut hub = Hub::new(Limits { burst: 1e9, ..Limits::default() });
    let now = Instant::now();
    let (Ok(a), Ok(b)) = (hub.join(now, "room", "a"), hub.join(now, "room", "b")) else {
        return;
    };
    for conn in [a.conn, b.conn] {
        if let Ok(sends) = hub.route(now, conn, text) {
            for s in sends {
                let v: serde_json::Value = serde_json::from_str(&s.text).expect("hub sent JSON");
                assert!(v["from"] == "a" || v["from"] == "b");
                assert!(!s.to.contains(&conn));
            }
        }
    }
});
