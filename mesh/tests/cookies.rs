//! Handshake floods (issue #17, finding 9): with the responder's 256
//! in-flight handshakes taken by a flood of valid message 1s, a new
//! initiator used to be refused (`capacity`) until the flood's half-open
//! slots timed out. Now a message 1 under load gets a cookie reply; the
//! initiator echoes the cookie and is admitted ahead of the flood.
//! Cookie limits count per IP: a flooder rotating its source port gets no
//! more cookie replies than one that does not.

mod common;

use common::{addr, Net};
use moss_crypto::{Handshake, Identity, MeshKeys, Role, Scrambler};
use moss_mesh::wire::{HandshakeBody, Head, Kind};
use moss_mesh::DropReason;
use std::net::SocketAddr;
use std::time::Duration;

/// A valid message 1 of mesh `m` from a fresh identity (seed `i`).
fn message1(i: u32) -> Vec<u8> {
    let keys = MeshKeys::derive("m", None);
    let mut seed = [0x70; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    let id = Identity::from_seed(seed);
    let mut hs = Handshake::new(Role::Initiator, &id, &keys.prologue, seed).unwrap();
    let mut m = [0u8; 1024];
    let n = hs.write(&[], &mut m).unwrap();
    let nonce = [9u8; 12];
    let mut d = Head::Handshake {
        kind: Kind::Init,
        pad_len: 0,
        nonce,
    }
    .encode()
    .to_vec();
    HandshakeBody {
        sender: 0x5000 + i,
        receiver: 0,
        noise: &m[..n],
    }
    .encode(&mut d);
    let scr = Scrambler::new(keys.scramble_key);
    scr.toggle_body(&nonce, &mut d[16..]);
    scr.toggle_head(&mut d);
    d
}

fn flooder(i: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, 9, (i % 250) as u8], 1000 + (i / 250) as u16))
}

#[test]
fn a_legit_initiator_gets_in_while_a_flood_holds_every_handshake_slot() {
    let mut net = Net::new(2, "m", None);
    // 400 distinct valid message 1s: the first 256 take every slot.
    for i in 0..400 {
        net.inject(1, flooder(i), message1(i));
    }
    let s = net.nodes[1].stats();
    assert!(s.drops.get(DropReason::Capacity) >= 100, "{:?}", s.drops);
    assert!(s.cookies_sent >= 100, "the flood got cookies");
    let cookies_before = s.cookies_sent;
    // The flood's slots stay half-open for the handshake timeout (5 s);
    // the newcomer joins long before that.
    net.nodes[0].connect(addr(1));
    assert!(net.drive(|n| n.nodes[0].peer_count() == 1 && n.nodes[1].peer_count() == 1));
    assert!(net.now < Duration::from_secs(1), "joined at {:?}", net.now);
    assert_eq!(net.nodes[1].stats().cookies_sent, cookies_before + 1);
    assert!(net.nodes[1].peers().iter().any(|p| p.addr == addr(0)));
}

#[test]
fn bad_cookie_for_a_forged_or_stale_echo() {
    use moss_mesh::cookie::CookiedInit;
    let keys = MeshKeys::derive("m", None);
    let mut net = Net::new(1, "m", None);
    let plain = message1(1);
    // Rebuild message 1 as a cookied one with a made-up cookie.
    let mut d = plain.clone();
    let scr = Scrambler::new(keys.scramble_key);
    scr.toggle_head(&mut d);
    scr.toggle_body(&[9; 12], &mut d[16..]);
    let body = d[16..].to_vec();
    let nonce = [4u8; 12];
    let mut f = Head::Handshake {
        kind: Kind::CookieInit,
        pad_len: 0,
        nonce,
    }
    .encode()
    .to_vec();
    CookiedInit::encode_prefix(&[0xab; 16], Kind::Init, &mut f);
    f.extend_from_slice(&body);
    scr.toggle_body(&nonce, &mut f[16..]);
    scr.toggle_head(&mut f);
    net.inject(0, flooder(1), f);
    let d = &net.nodes[0].stats().drops;
    assert_eq!(d.get(DropReason::BadCookie), 1);
    assert_eq!(net.nodes[0].session_count(), 0);
}

#[test]
fn a_flooder_rotating_source_ports_gets_one_cookie_reply_per_interval() {
    let mut net = Net::new(2, "m", None);
    // 256 message 1s from many hosts take every handshake slot.
    for i in 0..256 {
        net.inject(1, flooder(i), message1(i));
    }
    assert_eq!(net.nodes[1].stats().cookies_sent, 0);
    // One host, 300 source ports, one message 1 each within one interval:
    // one cookie reply (per port, it was 300).
    let host = |port: u16| SocketAddr::from(([127, 0, 8, 1], 20_000 + port));
    for k in 0..300u16 {
        net.inject(1, host(k), message1(1000 + u32::from(k)));
    }
    assert_eq!(net.nodes[1].stats().cookies_sent, 1);
    // Another host still gets its reply at once.
    net.inject(1, SocketAddr::from(([127, 0, 8, 2], 9)), message1(2000));
    assert_eq!(net.nodes[1].stats().cookies_sent, 2);
    // And a newcomer on a third address joins through the flood.
    net.nodes[0].connect(addr(1));
    assert!(net.drive(|n| n.nodes[0].peer_count() == 1 && n.nodes[1].peer_count() == 1));
}
