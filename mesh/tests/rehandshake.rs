//! A re-handshake of a live session (a silence probe) replaces the session
//! at both ends without the peer going down at either: the initiator's
//! CLOSE of the old session reaches the responder before the new session's
//! first data (it leaves first), and must not end the peer there (in the
//! relay simulator a supernode ended every relay session of an end that
//! re-handshook with it, and the pair lost its relay).

mod common;

use common::Net;
use moss_mesh::{Event, RETIRE_GRACE};
use std::time::Duration;

fn disconnects(net: &Net, i: usize) -> usize {
    net.events[i]
        .iter()
        .filter(|e| matches!(e, Event::PeerDisconnected { .. }))
        .count()
}

fn connects(net: &Net, i: usize) -> usize {
    net.events[i]
        .iter()
        .filter(|e| matches!(e, Event::PeerConnected { .. }))
        .count()
}

#[test]
fn a_silence_probe_replaces_the_session_without_a_disconnect() {
    let mut net = Net::new(2, "rehandshake", None);
    net.nodes[0].connect(common::addr(1));
    assert!(net.drive(|n| n.nodes.iter().all(|x| x.peer_count() == 1)));
    net.run(Duration::from_secs(3));
    let started = net.nodes[0].stats().handshakes_initiated;
    // Node 1 falls silent: node 0 probes it with a fresh handshake after
    // the silence rule's 6 s. Node 1 answers as soon as it speaks again.
    net.muted[1] = true;
    assert!(net.drive(|n| n.nodes[0].stats().handshakes_initiated > started));
    net.muted[1] = false;
    assert!(net.drive(|n| n.nodes[1].stats().handshakes_completed >= 2));
    net.run(RETIRE_GRACE + Duration::from_secs(2));
    for i in 0..2 {
        assert_eq!(
            (net.nodes[i].peer_count(), net.nodes[i].session_count()),
            (1, 1),
            "node {i}: one peer, one session"
        );
        assert_eq!(disconnects(&net, i), 0, "node {i} never lost its peer");
        assert_eq!(connects(&net, i), 1, "node {i} connected once");
    }
    assert!(
        net.nodes[1].stats().handshakes_completed >= 2,
        "the probe ran"
    );
}
