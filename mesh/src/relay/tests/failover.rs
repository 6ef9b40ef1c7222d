//! Failover when both ends of a pair asked a supernode at once and each
//! chose another one (each is nearer its own): the pair holds two relay
//! sessions, one carrying its Noise session and one left over. The CI run
//! of the real-NAT suite caught such a pair stuck without a session after
//! the carrying supernode died: the left-over relay session made both ends
//! believe a relay was in place (no new request), re-asking its supernode
//! only renewed it (nobody dialled through it again), and a dial through
//! it once more was IK (the path was known), whose messages the supernode
//! did not learn the ends' indices from, so the data plane dropped the
//! session's data.

use super::*;
use crate::event::DisconnectReason;

/// Supernodes 0 and 1; end 2 is near 0 and end 3 near 1, so each picks
/// its own when both ask at once.
fn far_apart() -> Net {
    let mut net = Net::new(4, cfg());
    let (near, far) = (Duration::from_millis(2), Duration::from_millis(40));
    net.set_latency(2, 0, near);
    net.set_latency(2, 1, far);
    net.set_latency(3, 1, near);
    net.set_latency(3, 0, far);
    star_on(net, &[0, 1])
}

/// The supernode (0 or 1) whose relay session `a`'s session with `b` uses.
fn carrier(net: &Net, a: usize, b: usize) -> Option<usize> {
    match net.path_to(a, b) {
        Some(Path::Relay { via, .. }) => (0..2).find(|&s| net.id(s) == via),
        _ => None,
    }
}

/// Ends 2 and 3 dial each other at once; both dials time out and each asks
/// its nearest supernode: both supernodes serve the pair.
fn both_ask_at_once() -> Net {
    let mut net = far_apart();
    let (a2, a3) = (net.addrs[2], net.addrs[3]);
    net.nodes[2].add_static_peer(a3);
    net.nodes[3].add_static_peer(a2);
    let ok = net.until(|net| {
        net.nodes[0].relay_info().served_sessions == 1
            && net.nodes[1].relay_info().served_sessions == 1
            && carrier(net, 2, 3).is_some()
            && carrier(net, 2, 3) == carrier(net, 3, 2)
    });
    assert!(
        ok,
        "the pair relayed on one session, each supernode serving it once"
    );
    net
}

/// The carrying supernode goes (`clean`: shuts down; else crashes): the
/// pair is relayed by the other within 60 s and exchanges messages.
fn carrier_goes(clean: bool) {
    let mut net = both_ask_at_once();
    let Some(gone) = carrier(&net, 2, 3) else {
        panic!("relayed");
    };
    let other = 1 - gone;
    if clean {
        net.nodes[gone].shutdown();
        net.collect();
    }
    net.dead.insert(gone);
    let t0 = net.now;
    let ok =
        net.until(|net| carrier(net, 2, 3) == Some(other) && carrier(net, 3, 2) == Some(other));
    assert!(ok, "relayed by the other supernode again");
    let took = net.now - t0;
    assert!(took < Duration::from_secs(60), "recovered in {took:?}");
    exchange(&mut net, 2, 3, "after");
}

#[test]
fn when_the_carrying_supernode_of_a_doubly_relayed_pair_crashes_the_other_relays_it() {
    carrier_goes(false);
}

#[test]
fn when_the_carrying_supernode_of_a_doubly_relayed_pair_leaves_the_other_relays_it() {
    carrier_goes(true);
}

#[test]
fn the_idle_supernode_of_a_doubly_relayed_pair_going_leaves_the_pair_alone() {
    let mut net = both_ask_at_once();
    let Some(used) = carrier(&net, 2, 3) else {
        panic!("relayed");
    };
    let idle = 1 - used;
    let before: Vec<usize> = [2, 3].iter().map(|&i| net.events[i].len()).collect();
    net.nodes[idle].shutdown();
    net.collect();
    net.dead.insert(idle);
    net.run(Duration::from_secs(40));
    for (k, (a, b)) in [(2, 3), (3, 2)].into_iter().enumerate() {
        assert_eq!(
            carrier(&net, a, b),
            Some(used),
            "{a} still relayed by {used}"
        );
        let peer = net.id(b);
        let dropped = net.events[a][before[k]..]
            .iter()
            .any(|e| matches!(e, Event::PeerDisconnected { peer: p, .. } if *p == peer));
        assert!(!dropped, "{a} kept its session with {b}");
    }
    exchange(&mut net, 2, 3, "after");
}

#[test]
fn a_left_over_relay_session_is_released() {
    let mut net = both_ask_at_once();
    let Some(used) = carrier(&net, 2, 3) else {
        panic!("relayed");
    };
    let idle = 1 - used;
    let ok = net.until(|net| net.nodes[idle].relay_info().served_sessions == 0);
    assert!(ok, "the supernode not carrying the pair serves it no more");
    assert_eq!(net.nodes[used].relay_info().served_sessions, 1);
    net.run(Duration::from_secs(30));
    assert_eq!(carrier(&net, 2, 3), Some(used));
    assert_eq!(
        net.nodes[idle].relay_info().served_sessions,
        0,
        "not asked again"
    );
}

/// The relayed session of a pair ends (a re-handshake after a silence
/// failed, in the relay simulator) while both ends still hear their
/// supernode: the initiator asks that supernode again at once, the one
/// that sees both ends, instead of excluding it and asking others (which
/// cannot reach the peer, so the pair stayed apart for a request round of
/// `ADDR_RETRY`, 10 s, or more).
#[test]
fn a_relayed_session_lost_while_the_supernode_lives_is_relayed_again_by_it() {
    let mut net = relayed_star(3, cfg(), &[(1, 2)], "t");
    let via = net.id(0);
    assert!(matches!(net.path_to(1, 2), Some(Path::Relay { via: v, .. }) if v == via));
    let peer = net.id(2);
    let Some(idx) = net.nodes[1].table.by_peer(&peer) else {
        panic!("1 has a session with 2");
    };
    net.nodes[1].remove_session(idx, Some(DisconnectReason::Timeout));
    assert!(!net.connected(1, 2));
    // Within one request timeout, well before a new request round.
    net.run(super::super::client::REQUEST_TIMEOUT);
    assert!(
        matches!(net.path_to(1, 2), Some(Path::Relay { via: v, .. }) if v == via),
        "1 reaches 2 through the same supernode again: {:?}",
        net.path_to(1, 2)
    );
    assert!(matches!(net.path_to(2, 1), Some(Path::Relay { .. })));
    exchange(&mut net, 1, 2, "again");
}
