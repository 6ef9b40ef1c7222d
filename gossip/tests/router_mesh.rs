//! Topic meshes: joining, GRAFT/PRUNE with backoff and peer exchange, degree upkeep.
//! Router behaviour, driven directly (no wire, no sockets).

mod common;

use common::*;
use moss_gossip::{Action, Config, Control, PxPeer};
use std::net::SocketAddr;

#[test]
fn join_grafts_d_peers_and_heartbeat_keeps_degree_between_bounds() {
    let (mut r, mut g) = joined(20, Config::default());
    let a = drain(&mut r);
    assert_eq!(grafts(&a).len(), 6);
    assert_eq!(r.mesh_peers("t").len(), 6);
    // Peers graft us until the mesh exceeds D_high; the heartbeat prunes
    // back to D, keeping at least D_out outbound peers, with PX.
    for i in 1..=20 {
        r.on_control(secs(1), &p(i), Control::Graft { topic: "t".into() }, &mut g);
    }
    // Inbound grafts stop at D_high; outbound peers are still accepted.
    let before = r.mesh_peers("t").len();
    assert_eq!(before, 12 + 5);
    drain(&mut r);
    r.heartbeat(secs(2), &mut g);
    let a = drain(&mut r);
    let mesh = r.mesh_peers("t");
    assert_eq!(mesh.len(), 6);
    let outbound = mesh.iter().filter(|q| q.0[0] % 2 == 1).count();
    assert!(outbound >= 2);
    let pr = prunes(&a);
    assert_eq!(pr.len(), before - 6);
    assert!(pr.iter().all(|(_, px)| *px > 0), "pruned peers get PX");
    // Peers leave: below D_lo the heartbeat grafts back up to D, from
    // peers not in backoff (the pruned ones are).
    for q in mesh.iter().take(4) {
        r.remove_peer(q, secs(3));
    }
    r.heartbeat(secs(3), &mut g);
    assert!(
        grafts(&drain(&mut r)).is_empty(),
        "everyone else is in backoff"
    );
    for i in 30..36 {
        r.add_peer(p(i), addr(i), false);
        r.peer_subscribed(&p(i), "t");
    }
    r.heartbeat(secs(3), &mut g);
    let a = drain(&mut r);
    assert!(!grafts(&a).is_empty());
    assert_eq!(r.mesh_peers("t").len(), 6);
}

#[test]
fn graft_in_backoff_is_refused_and_penalised() {
    let (mut r, mut g) = joined(3, Config::default());
    drain(&mut r);
    r.on_control(secs(1), &p(1), prune_t(60, vec![]), &mut g);
    assert!(!r.mesh_peers("t").contains(&p(1)));
    for k in 0..4 {
        r.on_control(
            secs(2 + k),
            &p(1),
            Control::Graft { topic: "t".into() },
            &mut g,
        );
    }
    let a = drain(&mut r);
    assert_eq!(prunes(&a).len(), 4);
    assert!(!r.mesh_peers("t").contains(&p(1)));
    assert!(
        r.peer_score(&p(1), secs(6)) < 0.0,
        "P7 for grafting in backoff"
    );
    // The heartbeat does not graft a peer in backoff either.
    r.heartbeat(secs(7), &mut g);
    assert!(!grafts(&drain(&mut r)).contains(&p(1)));
}

/// A mesh peer we left because it went silent (its path died, so our
/// PRUNE was likely lost) grafts again once it is back: it joins our mesh
/// at once, without P7 for grafting in backoff. One we pruned and that
/// heard it is still refused and penalised (above).
#[test]
fn a_peer_pruned_for_silence_that_grafts_again_is_taken_back_unpunished() {
    let (mut r, mut g) = joined(3, Config::default());
    drain(&mut r);
    assert!(r.mesh_peers("t").contains(&p(1)));
    r.peer_unresponsive(&p(1), secs(2));
    assert!(!r.mesh_peers("t").contains(&p(1)));
    drain(&mut r);
    r.on_control(secs(3), &p(1), Control::Graft { topic: "t".into() }, &mut g);
    assert!(prunes(&drain(&mut r)).is_empty(), "not refused");
    assert!(r.mesh_peers("t").contains(&p(1)));
    assert!(r.peer_score(&p(1), secs(3)) >= 0.0, "no P7");
    // Pruned again for silence, then its own PRUNE arrives (it heard
    // ours): the backoff is an ordinary one again.
    r.peer_unresponsive(&p(1), secs(4));
    r.on_control(secs(5), &p(1), prune_t(60, vec![]), &mut g);
    drain(&mut r);
    r.on_control(secs(6), &p(1), Control::Graft { topic: "t".into() }, &mut g);
    assert_eq!(prunes(&drain(&mut r)).len(), 1, "refused in backoff");
    assert!(r.peer_score(&p(1), secs(6)) < 0.0);
}

#[test]
fn prune_px_dials_unknown_peers_only_from_non_negative_peers() {
    let (mut r, mut g) = joined(2, Config::default());
    drain(&mut r);
    let px = vec![
        PxPeer {
            peer: p(2),
            addr: addr(2),
        },
        PxPeer {
            peer: p(50),
            addr: addr(50),
        },
    ];
    r.on_control(secs(1), &p(1), prune_t(60, px.clone()), &mut g);
    let dials: Vec<SocketAddr> = drain(&mut r)
        .into_iter()
        .filter_map(|a| match a {
            Action::Dial(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(dials, vec![addr(50)], "known peers are not dialled");
    // A peer with a negative score gets no hearing.
    r.on_invalid(&p(2), "t");
    r.on_control(
        secs(1),
        &p(2),
        Control::Prune {
            topic: "t".into(),
            backoff_secs: 60,
            px,
        },
        &mut g,
    );
    assert!(drain(&mut r).iter().all(|a| !matches!(a, Action::Dial(_))));
}
