//! Noise IK messages: any bytes as IK message 1 to a responder, and as IK
//! message 2 to an initiator that holds the right key, fail cleanly or
//! complete; the same bytes inside an IK datagram to a node are dropped
//! and counted, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_crypto::noise::static_keypair;
use moss_crypto::{Handshake, Identity, LocalStatic, MeshKeys, Scrambler};
use moss_mesh::wire::{HandshakeBody, Head, Kind};
use moss_mesh::{Config, Node};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, noise)) = data.split_first() else { return };
    let keys = MeshKeys::derive("fuzz", None);
    let (a, b) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
    let (la, lb) = (LocalStatic::new(&a, &keys.prologue), LocalStatic::new(&b, &keys.prologue));
    let mut r = Handshake::ik_responder(&lb, [4; 32]).unwrap();
    if r.read(noise).is_ok() {
        let mut out = [0u8; 1024];
        let _ = r.write(&[], &mut out);
    }
    let mut i = Handshake::ik_initiator(&la, &static_keypair(&b).1, [3; 32]).unwrap();
    let mut out = [0u8; 1024];
    let _ = i.write(&[], &mut out).unwrap();
    if i.read(noise).is_ok() {
        assert!(i.is_finished());
        let _ = i.finish();
    }
    // As a datagram: message 1 (kind 5) or 2 (kind 6) to a node.
    let kind = if mode & 1 == 0 { Kind::IkInit } else { Kind::IkResponse };
    let receiver = if kind == Kind::IkInit { 0 } else { u32::from(mode) };
    let nonce = [7u8; 12];
    let mut d = Head::Handshake { kind, pad_len: 0, nonce }.encode().to_vec();
    HandshakeBody { sender: 5, receiver, noise }.encode(&mut d);
    if d.len() > 1200 {
        return;
    }
    let scr = Scrambler::new(keys.scramble_key);
    scr.toggle_body(&nonce, &mut d[16..]);
    scr.toggle_head(&mut d);
    let mut node = Node::new(Config::default(), b, "fuzz", None, [2; 32], Duration::ZERO).unwrap();
    let from = "127.0.0.1:9".parse().unwrap();
    node.handle_datagram(Duration::from_millis(1), from, &mut d);
    node.handle_timeout(Duration::from_secs(2));
    while node.poll_transmit().is_some() {}
    assert_eq!(node.stats().datagrams_in, 1);
});
