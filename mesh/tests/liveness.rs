//! One set of liveness rules (issue #17, finding 2): the values
//! `docs/PROTOCOL.md` states are the ones the node runs, the router's
//! silent-peer PRUNE agrees with the keepalive (an idle peer that follows
//! the document is never pruned), and a vanished peer leaves the mesh
//! within the silence rule and its session within the idle timeout.

mod common;

use common::{addr, Net};
use moss_mesh::liveness::{IDLE_TIMEOUT, KEEPALIVE, SILENCE};
use std::time::Duration;

/// The seconds the liveness table of PROTOCOL.md gives for `rule`.
fn documented(rule: &str) -> Duration {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with(&format!("| {rule} |")))
        .unwrap_or_else(|| panic!("PROTOCOL.md has no liveness row {rule:?}"));
    let secs = row
        .split('|')
        .nth(2)
        .and_then(|c| c.trim().split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no value in {row:?}"));
    Duration::from_secs(secs)
}

#[test]
fn the_documented_rules_are_the_ones_in_force_and_agree() {
    assert_eq!(documented("keepalive"), KEEPALIVE);
    assert_eq!(documented("silence"), SILENCE);
    assert_eq!(documented("idle timeout"), IDLE_TIMEOUT);
    // Three keepalives may be lost before a peer is suspect, five before
    // its session goes.
    assert!(KEEPALIVE * 3 <= SILENCE && SILENCE < IDLE_TIMEOUT);
}

#[test]
fn idle_mesh_peers_stay_and_a_vanished_one_goes_within_the_rules() {
    let mut net = Net::new(2, "live", None);
    net.nodes[0].add_static_peer(addr(1));
    for n in &mut net.nodes {
        n.subscribe("t");
    }
    net.run(Duration::from_secs(3));
    // A minute without any publish: keepalives alone keep the mesh.
    for _ in 0..60 {
        net.run(Duration::from_secs(1));
        for i in 0..2 {
            assert_eq!(net.nodes[i].mesh_peers("t").len(), 1, "node {i} pruned");
        }
    }
    net.muted[1] = true;
    let gone = net.now;
    assert!(net.drive(|n| n.nodes[0].mesh_peers("t").is_empty()));
    let left = net.now - gone;
    assert!(net.drive(|n| n.nodes[0].peer_count() == 0));
    let dropped = net.now - gone;
    assert!(left <= SILENCE + Duration::from_secs(1), "{left:?}");
    assert!(
        dropped <= IDLE_TIMEOUT + Duration::from_secs(1),
        "{dropped:?}"
    );
}
