//! Cookie replies and cookied message 1s: both decoders are total and
//! what decodes re-encodes to the same bytes; the same bytes as kind 8 or
//! 9 datagrams to a node (with a dial of its own in flight, so a reply can
//! match) are dropped and counted, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_crypto::{MeshKeys, Scrambler};
use moss_mesh::cookie::{CookieReply, CookiedInit};
use moss_mesh::wire::{Head, Kind};
use moss_mesh::{Config, Identity, Node};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    let pad_len = u16::from(mode >> 4);
    if let Ok(r) = CookieReply::decode(body, pad_len) {
        assert_eq!(&r.encode()[..], body);
    }
    if let Ok(c) = CookiedInit::decode(body, pad_len) {
        let mut b = Vec::new();
        CookiedInit::encode_prefix(&c.cookie, c.inner, &mut b);
        c.body.encode(&mut b);
        assert_eq!(&b[..], &body[..body.len() - usize::from(pad_len)]);
    }
    let kind = if mode & 1 == 0 { Kind::CookieReply } else { Kind::CookieInit };
    let nonce = [3u8; 12];
    let mut d = Head::Handshake { kind, pad_len, nonce }.encode().to_vec();
    d.extend_from_slice(body);
    if d.len() < 32 || d.len() > 1200 {
        return;
    }
    let scr = Scrambler::new(MeshKeys::derive("fuzz", None).scramble_key);
    scr.toggle_body(&nonce, &mut d[16..]);
    scr.toggle_head(&mut d);
    let mut node = Node::new(Config::default(), Identity::from_seed([1; 32]), "fuzz", None, [2; 32], Duration::ZERO).unwrap();
    let from = "127.0.0.1:9".parse().unwrap();
    node.connect(from);
    while node.poll_transmit().is_some() {}
    node.handle_datagram(Duration::from_millis(1), from, &mut d);
    node.handle_timeout(Duration::from_secs(2));
    while node.poll_transmit().is_some() {}
    assert_eq!(node.stats().datagrams_in, 1);
});
