//! A peer killed and restarted on the same address, with the same identity
//! or a new one, dialled or dialling (issue #17, finding 1): within 1 s of
//! virtual time messages flow both ways again and each side counts exactly
//! one peer. Before the fix the survivor kept a dead session for the 30 s
//! idle timeout (dialled side restarted) or counted two peers (restart
//! under a new identity).

mod common;

use common::{addr, Net};
use moss_mesh::{Config, DropReason, Identity, Node};
use std::time::Duration;

/// Replaces node `i` by a fresh process: same address, `identity`, empty
/// state (what `kill -9` and a restart leave), subscribed to "t" again and
/// dialling `statics`.
fn restart(net: &mut Net, i: usize, identity: Identity, statics: &[usize]) {
    let mut seed = [0u8; 32];
    seed[0] = i as u8;
    seed[1] = 0x55;
    seed[2] = (net.now.as_millis() % 251) as u8;
    net.nodes[i] = Node::new(Config::default(), identity, "restart", None, seed, net.now).unwrap();
    net.nodes[i].subscribe("t");
    for &j in statics {
        net.nodes[i].add_static_peer(addr(j));
    }
    // What was in flight to the dead process is gone with it.
    let gone = addr(i);
    net.queue.retain(|f| f.to != gone);
}

/// Node 0 dials node 1; both subscribe to "t" and settle.
fn pair() -> Net {
    let mut net = Net::new(2, "restart", None);
    net.nodes[0].add_static_peer(addr(1));
    for n in &mut net.nodes {
        n.subscribe("t");
    }
    net.run(Duration::from_secs(3));
    assert_eq!(
        (net.nodes[0].peer_count(), net.nodes[1].peer_count()),
        (1, 1)
    );
    net
}

/// Both nodes publish every 100 ms for `d`; returns, per node, the virtual
/// time after `from` of the first message it received from the other one
/// that was published after `from` (`None`: none arrived).
fn publish_both_ways(net: &mut Net, d: Duration) -> [Option<Duration>; 2] {
    let from = net.now;
    let seen: Vec<usize> = (0..2).map(|i| net.messages(i).len()).collect();
    let mut first = [None; 2];
    let mut k = 0u32;
    while net.now < from + d {
        for i in 0..2 {
            let now = net.now;
            let body = format!("{i}-{k}");
            // A node with no peer yet refuses (nothing to send to).
            let _ = net.nodes[i].publish(now, "t", body.as_bytes());
        }
        k += 1;
        net.run(Duration::from_millis(100));
        for i in 0..2 {
            let got = net.messages(i).len() > seen[i];
            if got && first[i].is_none() {
                first[i] = Some(net.now - from);
            }
        }
    }
    first
}

/// Runs the scenario: restart node `who` (with `identity`), then both
/// publish; asserts delivery both ways and one peer each within 1 s.
fn recovers(who: usize, identity: Identity) -> Net {
    let mut net = pair();
    let statics: &[usize] = if who == 0 { &[1] } else { &[] };
    restart(&mut net, who, identity, statics);
    let first = publish_both_ways(&mut net, Duration::from_secs(1));
    let counts = (net.nodes[0].peer_count(), net.nodes[1].peer_count());
    assert_eq!(counts, (1, 1), "peer counts 1 s after the restart");
    for (i, f) in first.iter().enumerate() {
        assert!(
            f.is_some(),
            "node {i} received nothing within 1 s of the restart"
        );
    }
    net
}

#[test]
fn dialled_side_restarts_with_its_identity() {
    let net = recovers(1, Identity::from_seed([2; 32]));
    // The survivor re-handshook with IK (it held the peer's static key).
    assert!(net.nodes[0].stats().ik_completed >= 1);
}

#[test]
fn dialling_side_restarts_with_its_identity() {
    recovers(0, Identity::from_seed([1; 32]));
}

#[test]
fn dialled_side_restarts_under_a_new_identity() {
    let net = recovers(1, Identity::from_seed([77; 32]));
    // The survivor tried IK with the old key, was refused and fell back.
    assert!(net.nodes[1].stats().hints_sent >= 1);
}

#[test]
fn dialling_side_restarts_under_a_new_identity() {
    recovers(0, Identity::from_seed([78; 32]));
}

#[test]
fn a_peer_that_goes_for_good_is_dropped_within_the_idle_timeout() {
    let mut net = pair();
    net.muted[1] = true;
    let start = net.now;
    assert!(net.drive(|n| n.nodes[0].peer_count() == 0));
    // A few seconds (the idle timeout of 10 s, not the 30 s of old).
    assert!(
        net.now - start <= Duration::from_secs(11),
        "{:?}",
        net.now - start
    );
}

#[test]
fn hints_are_never_larger_than_their_prompt_and_rate_limited() {
    let mut net = pair();
    // A young session's datagrams carry its subscriptions again: run past
    // those rounds until node 0 has sent an empty keepalive.
    net.run(Duration::from_secs(7));
    restart(&mut net, 1, Identity::from_seed([2; 32]), &[]);
    // Replay one of node 0's keepalives to the restarted node 50 times at
    // one instant (nothing is delivered in between).
    let stale: Vec<_> = net
        .log
        .iter()
        .filter(|f| f.to == addr(1) && f.bytes.len() == 32)
        .map(|f| (f.from, f.bytes.clone()))
        .collect();
    assert!(!stale.is_empty(), "no keepalive of node 0 logged");
    let before = net.log.len();
    for _ in 0..50 {
        let (from, bytes) = stale[0].clone();
        net.inject(1, from, bytes);
    }
    let hints: Vec<_> = net.log[before..]
        .iter()
        .filter(|f| f.from == addr(1))
        .collect();
    assert_eq!(hints.len(), 1, "one hint per path per interval");
    assert!(hints.iter().all(|h| h.bytes.len() <= 32));
    let s = net.nodes[1].stats();
    assert_eq!(s.drops.get(DropReason::UnknownSession), 50);
}
