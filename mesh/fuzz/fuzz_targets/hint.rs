//! Hint bodies: `Hint::decode` is total, and what decodes re-encodes to
//! the same bytes; a node fed any bytes as a hint datagram (with a session
//! on the path, so hints can match) only counts, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_crypto::{MeshKeys, Scrambler};
use moss_mesh::hint::Hint;
use moss_mesh::wire::{Head, Kind};
use moss_mesh::{Config, Identity, Node};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Some((&pad, body)) = data.split_first() else { return };
    let pad_len = u16::from(pad & 1);
    if let Ok(h) = Hint::decode(body, pad_len) {
        let mut fill = [0u8; 11];
        fill.copy_from_slice(&body[5..16]);
        assert_eq!(&h.encode(fill)[..], body);
    }
    // The same bytes as a hint datagram to a node.
    let scr = Scrambler::new(MeshKeys::derive("fuzz", None).scramble_key);
    let nonce = [3u8; 12];
    let mut d = Head::Handshake { kind: Kind::Hint, pad_len, nonce }.encode().to_vec();
    d.extend_from_slice(body);
    if d.len() < 32 || d.len() > 1200 {
        return;
    }
    scr.toggle_body(&nonce, &mut d[16..]);
    scr.toggle_head(&mut d);
    let mut node = Node::new(Config::default(), Identity::from_seed([1; 32]), "fuzz", None, [2; 32], Duration::ZERO).unwrap();
    let from = "127.0.0.1:9".parse().unwrap();
    node.connect(from);
    while node.poll_transmit().is_some() {}
    node.handle_datagram(Duration::from_millis(1), from, &mut d);
    node.handle_timeout(Duration::from_secs(2));
    while node.poll_transmit().is_some() {}
});
