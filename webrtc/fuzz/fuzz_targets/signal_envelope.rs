//! Decoding what a signal server sends is total: any text gives a signal or
//! an error, never a panic, and every decoded id and SDP is within its bound.
//! The decoder is `moss_webrtc::envelope`, a re-export of the peer half of
//! moss-signal-envelope, used here directly so the build has no str0m.
#![no_main]
use libfuzzer_sys::fuzz_target;
use moss_signal_envelope::peer::{decode, Signal, MAX_ID, MAX_SDP};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode(text) {
        Ok(Signal::Peers(ids)) => assert!(ids.iter().all(|i| i.len() <= MAX_ID)),
        Ok(Signal::Join(id) | Signal::Leave(id)) => assert!(id.len() <= MAX_ID),
        Ok(Signal::Offer { from, sdp } | Signal::Answer { from, sdp }) => {
            assert!(from.len() <= MAX_ID && sdp.len() <= MAX_SDP)
        }
        Err(_) => {}
    }
});
