//! Peer scoring through the router: invalid messages and graylisting, application score and IP colocation, P3/P3b, topic weights and the cap.
//! Router behaviour, driven directly (no wire, no sockets).

mod common;

use common::*;
use moss_gossip::{Config, Control, Received, Router};

#[test]
fn invalid_messages_graylist_and_graylisted_peers_are_ignored() {
    let (mut r, mut g) = joined(4, Config::default());
    for _ in 0..40 {
        r.on_invalid(&p(1), "t");
    }
    assert!(r.is_graylisted(&p(1), secs(1)));
    assert_eq!(
        r.on_message(secs(1), &p(1), &p(1), [1; 32], "t", 1, Some(body(1))),
        Received::Graylisted
    );
    assert!(!r.is_seen(&[1; 32]));
    drain(&mut r);
    r.on_control(
        secs(1),
        &p(1),
        Control::IWant { ids: vec![[1; 32]] },
        &mut g,
    );
    assert!(drain(&mut r).is_empty());
}

#[test]
fn app_score_callback_and_ip_colocation_shape_the_mesh() {
    let mut r = Router::new(Config::default(), secs(1));
    let mut g = rng();
    // Five peers behind one IP, three on their own.
    for i in 1..=8u8 {
        let a = if i <= 5 { addr(99) } else { addr(i) };
        r.add_peer(p(i), a, false);
        r.peer_subscribed(&p(i), "t");
    }
    r.join("t", secs(0), &mut g);
    let mesh = r.mesh_peers("t");
    assert_eq!(
        mesh,
        vec![p(6), p(7), p(8)],
        "colocated peers score below 0"
    );
    r.set_app_score(Box::new(
        |peer, _base| if peer.0[0] == 7 { -50.0 } else { 0.0 },
    ));
    r.heartbeat(secs(1), &mut g);
    assert!(r.peer_score(&p(7), secs(1)) <= -50.0);
    assert!(
        !r.mesh_peers("t").contains(&p(7)),
        "pruned for its app score"
    );
}

#[test]
fn silent_mesh_peers_are_pruned_and_p3b_keeps_them_out() {
    // Topic "t" expects deliveries after 3 s in mesh; nobody delivers.
    let mut score = moss_gossip::ScoreParams::default();
    score.topics.insert(
        "t".into(),
        moss_gossip::TopicParams {
            mesh_deliveries_activation: secs(3),
            mesh_deliveries_threshold: 2.0,
            mesh_deliveries_cap: 4.0,
            mesh_failure_penalty_weight: -1.0,
            time_in_mesh_weight: 0.0,
            ..moss_gossip::TopicParams::default()
        },
    );
    let cfg = Config::builder().score(score).build().unwrap();
    let (mut r, mut g) = joined(8, cfg);
    let mesh = r.mesh_peers("t");
    assert_eq!(mesh.len(), 6);
    drain(&mut r);
    // One mesh peer delivers enough; the others fall to -0.5 * 2² (P3)
    // once active and are pruned by the heartbeat.
    let good = mesh[0];
    for k in 0..4u8 {
        r.on_message(secs(3), &good, &p(200), [k; 32], "t", 10, Some(body(10)));
    }
    r.heartbeat(secs(4), &mut g);
    let after = r.mesh_peers("t");
    assert!(after.contains(&good), "the delivering peer stays");
    for q in mesh.iter().filter(|q| **q != good) {
        assert!(!after.contains(q), "silent peer {q:?} pruned");
        // P3 no longer applies out of the mesh, but P3b remembers the
        // squared deficit: -1 * 2².
        let s = r.peer_score(q, secs(4));
        assert!((s + 4.0).abs() < 1e-9, "P3b after the prune: {s}");
    }
    assert!(r.peer_score(&good, secs(4)) > 0.0);
}

#[test]
fn topic_weight_and_topic_score_cap_apply_through_the_router() {
    let mut score = moss_gossip::ScoreParams {
        topic_score_cap: 1.0,
        ..moss_gossip::ScoreParams::default()
    };
    score.topics.insert(
        "quiet".into(),
        moss_gossip::TopicParams {
            topic_weight: 0.0,
            ..moss_gossip::TopicParams::default()
        },
    );
    let cfg = Config::builder().score(score).build().unwrap();
    let mut r = router(2, cfg);
    let mut g = rng();
    // Joined at the time of the messages: P1 is still 0.
    r.join("t", secs(1), &mut g);
    r.join("quiet", secs(1), &mut g);
    r.peer_subscribed(&p(1), "quiet");
    for k in 0..10u8 {
        r.on_message(secs(1), &p(1), &p(200), [k; 32], "t", 10, Some(body(10)));
        r.on_message(
            secs(1),
            &p(2),
            &p(200),
            [k | 0x80; 32],
            "quiet",
            10,
            Some(body(10)),
        );
    }
    assert_eq!(r.peer_score(&p(1), secs(1)), 1.0, "P2 on t, capped");
    assert_eq!(r.peer_score(&p(2), secs(1)), 0.0, "topic weight 0");
}
