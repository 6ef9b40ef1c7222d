//! Cookie replies and cookied message 1s: both decoders are total and
//! what decodes re-encodes to the same bytes; the same bytes as kind 8 or
//! 9 datagrams to a node (with a dial of its own in flight, so a reply can
//! match) are dropped and counted, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_mesh::cookie::{CookieReply, CookiedInit};
use moss_mesh::wire::Kind;

mod common;

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
    if let Some(node) = common::feed(kind, pad_len, body) {
        assert_eq!(node.stats().datagrams_in, 1);
    }
});
