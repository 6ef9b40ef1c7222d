//! BEP 15 response decoder (both address families) and the client state machine.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use moss_discovery::compact::PeerFamily;
use moss_discovery::udp_tracker::{decode_response, UdpTrackerClient, UdpTrackerConfig};

fuzz_target!(|data: &[u8]| {
    for family in [PeerFamily::V4, PeerFamily::V6] {
        let _ = decode_response(data, family, 200);
    }
    // Feed the same bytes to a client waiting for a connect response, and
    // (split in two) to one waiting for an announce response.
    let t0 = Instant::now();
    let mut c = UdpTrackerClient::new(
        UdpTrackerConfig::default(),
        PeerFamily::V4,
        [1; 20],
        [2; 20],
        9,
        3,
        t0,
    );
    c.handle_timeout(t0);
    if let Some(req) = c.poll_transmit() {
        let mut reply = vec![0, 0, 0, 0];
        reply.extend_from_slice(&req[12..16]);
        reply.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        let _ = c.handle_datagram(t0, &reply);
        let _ = c.poll_transmit();
    }
    let mid = data.len() / 2;
    let _ = c.handle_datagram(t0, &data[..mid]);
    let _ = c.handle_datagram(t0, &data[mid..]);
    while c.poll_event().is_some() {}
    c.handle_timeout(t0 + Duration::from_secs(4000));
    let _ = c.poll_transmit();
});
