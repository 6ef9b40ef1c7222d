//! GossipSub control frames: any bytes either fail to decode or decode to
//! frames that re-encode exactly and that the router digests without
//! panicking (as the node does with every authenticated datagram).
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_crypto::PeerId;
use moss_gossip::{Config, Router};
use moss_mesh::pubsub::control_of;
use moss_mesh::wire::FrameReader;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let mut router = Router::new(Config::default(), Duration::from_secs(1));
    let mut rng = ChaCha20Rng::from_seed([1; 32]);
    let peer = PeerId([7; 32]);
    router.add_peer(peer, "10.0.0.7:4000".parse().unwrap(), true);
    router.join("t", Duration::ZERO, &mut rng);
    let mut now = Duration::ZERO;
    let mut rest = data;
    let mut out = Vec::new();
    for f in FrameReader::new(data) {
        let Ok(frame) = f else { break };
        // Re-encoding gives back exactly the bytes the frame came from.
        out.clear();
        frame.encode(&mut out);
        assert_eq!(out.len(), frame.encoded_len());
        assert_eq!(rest.get(..out.len()), Some(&out[..]), "frame re-encodes exactly");
        rest = &rest[out.len()..];
        if let Some(c) = control_of(&frame) {
            router.on_control(now, &peer, c, &mut rng);
        }
        now += Duration::from_millis(300);
        if now >= router.next_heartbeat() {
            router.heartbeat(now, &mut rng);
        }
        while router.poll_action().is_some() {}
    }
});
