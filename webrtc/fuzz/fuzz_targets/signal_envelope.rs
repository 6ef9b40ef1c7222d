//! Decoding what a signal server sends is total: any text gives a signal or
//! an error, never a panic, and every decoded id and SDP is within its bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use moss_webrtc::envelope::{decode, MAX_ID, MAX_SDP};
use moss_webrtc::Signal;

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
