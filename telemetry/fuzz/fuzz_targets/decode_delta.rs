//! Fuzz target: `StatDelta::decode` must never panic; whatever it accepts
//! must re-encode to the same bytes, merge into a state and go through a
//! node's `apply_delta` and `snapshot` without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_telemetry::{StatDelta, Telemetry, TelemetryConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(delta) = StatDelta::decode(data) {
        assert_eq!(delta.encode(), data, "accepted a non-canonical encoding");
        let state = delta.to_state();
        assert_eq!(state.epoch(), delta.epoch());
        let _ = state.state_digest();

        let config = TelemetryConfig {
            enabled: true,
            epoch_sec: u64::from(delta.epoch_sec()),
            k_anon: 1,
            ..TelemetryConfig::default()
        };
        if let Ok(mut node) = Telemetry::new(config, [7; 32]) {
            let now = delta.epoch().saturating_mul(u64::from(delta.epoch_sec()));
            let _ = node.apply_delta(&delta, now);
            let _ = node.snapshot().to_json();
            let _ = node.state_deltas();
        }
    }
});
