//! Any bytes fed to a node as a datagram: dropped and counted, never a panic.
//! The first byte picks whether the bytes are masked with the mesh's real
//! scramble key first, so the fuzzer also reaches the handshake and data
//! paths behind the head mask.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moss_crypto::{MeshKeys, Scrambler};
use moss_mesh::{Config, Identity, Node};
use std::time::Duration;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut node = Node::new(Config::default(), Identity::from_seed([1; 32]), "fuzz", None, [2; 32], Duration::ZERO).unwrap();
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        Scrambler::new(MeshKeys::derive("fuzz", None).scramble_key).toggle_head(&mut bytes);
    }
    let from = "127.0.0.1:9".parse().unwrap();
    node.handle_datagram(Duration::from_millis(1), from, &mut bytes);
    node.handle_timeout(Duration::from_secs(1));
    while node.poll_transmit().is_some() {}
    let s = node.stats();
    assert_eq!(s.datagrams_in, 1);
});
