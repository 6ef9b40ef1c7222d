//! Shared by the hint and cookie targets: a handshake-kind datagram around
//! fuzzed body bytes, fed to a node that has a dial of its own in flight.

use moss_crypto::{MeshKeys, Scrambler};
use moss_mesh::wire::{Head, Kind};
use moss_mesh::{Config, Identity, Node};
use std::time::Duration;

/// Wraps `body` as a `kind` datagram of mesh "fuzz" and feeds it to a node
/// that dialled the sender; returns the node (None: outside 32..=1200 B).
pub fn feed(kind: Kind, pad_len: u16, body: &[u8]) -> Option<Node> {
    let nonce = [3u8; 12];
    let mut d = Head::Handshake { kind, pad_len, nonce }.encode().to_vec();
    d.extend_from_slice(body);
    if d.len() < 32 || d.len() > 1200 {
        return None;
    }
    let scr = Scrambler::new(MeshKeys::derive("fuzz", None).scramble_key);
    scr.toggle_body(&nonce, &mut d[16..]);
    scr.toggle_head(&mut d);
    let mut node = Node::new(Config::default(), Identity::from_seed([1; 32]), "fuzz", None, [2; 32], Duration::ZERO).ok()?;
    let from = "127.0.0.1:9".parse().ok()?;
    node.connect(from);
    while node.poll_transmit().is_some() {}
    node.handle_datagram(Duration::from_millis(1), from, &mut d);
    node.handle_timeout(Duration::from_secs(2));
    while node.poll_transmit().is_some() {}
    Some(node)
}
