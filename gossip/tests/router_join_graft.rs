//! Graft on subscribe: a peer announcing a topic we subscribe to joins the
//! mesh at once while it is below D, and the heartbeat's limits still hold
//! (D, backoff, negative scores, topics we do not subscribe to).

mod common;

use common::*;
use moss_gossip::{Config, Control};

#[test]
fn a_subscribing_peer_is_grafted_before_the_next_heartbeat() {
    let mut r = router(0, Config::default());
    r.join("t", secs(0), &mut rng());
    assert!(drain(&mut r).is_empty(), "no peers yet");
    r.add_peer(p(1), addr(1), true);
    r.peer_subscribed_at(&p(1), "t", secs(0));
    assert_eq!(grafts(&drain(&mut r)), vec![p(1)]);
    assert_eq!(r.mesh_peers("t"), vec![p(1)]);
    // Announcing again changes nothing.
    r.peer_subscribed_at(&p(1), "t", secs(0));
    assert!(grafts(&drain(&mut r)).is_empty());
}

#[test]
fn grafting_on_subscribe_stops_at_d() {
    let cfg = Config::default();
    let d = cfg.d;
    let mut r = router(0, cfg);
    r.join("t", secs(0), &mut rng());
    for i in 1..=20 {
        r.add_peer(p(i), addr(i), false);
        r.peer_subscribed_at(&p(i), "t", secs(0));
    }
    assert_eq!(grafts(&drain(&mut r)).len(), d);
    assert_eq!(r.mesh_peers("t").len(), d);
}

#[test]
fn no_graft_for_unsubscribed_topics_backoff_or_unknown_peers() {
    let mut r = router(0, Config::default());
    r.join("t", secs(0), &mut rng());
    // A topic we do not subscribe to.
    r.add_peer(p(1), addr(1), true);
    r.peer_subscribed_at(&p(1), "other", secs(0));
    // A peer that pruned us with a backoff.
    r.add_peer(p(2), addr(2), true);
    r.peer_subscribed_at(&p(2), "t", secs(0));
    r.on_control(secs(1), &p(2), prune_t(60, vec![]), &mut rng());
    r.peer_unsubscribed(&p(2), "t", secs(1));
    drain(&mut r);
    r.peer_subscribed_at(&p(2), "t", secs(2));
    // A peer the router does not know (no session).
    r.peer_subscribed_at(&p(3), "t", secs(2));
    assert!(grafts(&drain(&mut r)).is_empty());
    assert_eq!(r.mesh_peers("t"), vec![]);
}

#[test]
fn a_negative_score_peer_is_not_grafted_on_subscribe() {
    let mut r = router(0, Config::default());
    r.join("t", secs(0), &mut rng());
    r.add_peer(p(1), addr(1), true);
    r.penalise(&p(1), 10.0);
    r.peer_subscribed_at(&p(1), "t", secs(0));
    assert!(grafts(&drain(&mut r)).is_empty());
    // Its GRAFT is refused the same way (the rule is the heartbeat's).
    r.on_control(
        secs(0),
        &p(1),
        Control::Graft { topic: "t".into() },
        &mut rng(),
    );
    assert!(r.mesh_peers("t").is_empty());
}
