//! Fuzz target: `StatDelta::decode` must never panic, and whatever it
//! accepts must re-encode to the same bytes and merge into a state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_telemetry::StatDelta;

fuzz_target!(|data: &[u8]| {
    if let Ok(delta) = StatDelta::decode(data) {
        assert_eq!(delta.encode(), data, "accepted a non-canonical encoding");
        let state = delta.to_state();
        assert_eq!(state.epoch(), delta.epoch());
        let _ = state.state_digest();
    }
});
