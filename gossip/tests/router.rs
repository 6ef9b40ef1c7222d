//! Router behaviour, driven directly (no wire, no sockets).

use moss_crypto::PeerId;
use moss_gossip::{Action, Config, Control, MessageId, PxPeer, Received, Router};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn p(i: u8) -> PeerId {
    PeerId([i; 32])
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 4000))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7; 32])
}

fn drain(r: &mut Router) -> Vec<Action> {
    std::iter::from_fn(|| r.poll_action()).collect()
}

/// A router with `n` peers (ids 1..=n, outbound when odd) on topic "t".
fn router(n: u8, cfg: Config) -> Router {
    let mut r = Router::new(cfg, secs(1));
    for i in 1..=n {
        r.add_peer(p(i), addr(i), i % 2 == 1);
        r.peer_subscribed(&p(i), "t");
    }
    r
}

fn grafts(a: &[Action]) -> Vec<PeerId> {
    a.iter()
        .filter_map(|a| match a {
            Action::Control {
                to,
                control: Control::Graft { .. },
            } => Some(*to),
            _ => None,
        })
        .collect()
}

fn prunes(a: &[Action]) -> Vec<(PeerId, usize)> {
    a.iter()
        .filter_map(|a| match a {
            Action::Control {
                to,
                control: Control::Prune { px, .. },
            } => Some((*to, px.len())),
            _ => None,
        })
        .collect()
}

fn sends(a: &[Action]) -> Vec<PeerId> {
    a.iter()
        .filter_map(|a| match a {
            Action::Send { to, .. } => Some(*to),
            _ => None,
        })
        .collect()
}

fn body(n: usize) -> Arc<[u8]> {
    vec![1u8; n].into()
}

#[test]
fn join_grafts_d_peers_and_heartbeat_keeps_degree_between_bounds() {
    let mut r = router(20, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
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
    let mut r = router(3, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
    drain(&mut r);
    r.on_control(
        secs(1),
        &p(1),
        Control::Prune {
            topic: "t".into(),
            backoff_secs: 60,
            px: vec![],
        },
        &mut g,
    );
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

#[test]
fn prune_px_dials_unknown_peers_only_from_non_negative_peers() {
    let mut r = router(2, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
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
    r.on_control(
        secs(1),
        &p(1),
        Control::Prune {
            topic: "t".into(),
            backoff_secs: 60,
            px: px.clone(),
        },
        &mut g,
    );
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

#[test]
fn fanout_without_flood_publishing_and_its_expiry() {
    let cfg = Config::builder().flood_publish(false).build().unwrap();
    let mut r = router(10, cfg);
    let mut g = rng();
    assert_eq!(
        r.publish(secs(1), [1; 32], "t", body(10), &mut g),
        Ok(6),
        "fanout of D peers"
    );
    let first = r.fanout_peers("t");
    assert_eq!(first.len(), 6);
    drain(&mut r);
    assert_eq!(r.publish(secs(2), [2; 32], "t", body(10), &mut g), Ok(6));
    assert_eq!(sends(&drain(&mut r)), first, "same fanout peers reused");
    assert_eq!(
        r.publish(secs(2), [2; 32], "t", body(10), &mut g),
        Err(moss_gossip::PublishError::Duplicate)
    );
    // Joining the topic seeds the mesh from fanout.
    r.join("t", secs(3), &mut g);
    assert_eq!(r.mesh_peers("t"), first);
    assert!(r.fanout_peers("t").is_empty());
    // Fanout state of an abandoned topic expires.
    let mut r2 = router(10, Config::builder().flood_publish(false).build().unwrap());
    r2.publish(secs(1), [3; 32], "t", body(10), &mut g).unwrap();
    r2.heartbeat(secs(30), &mut g);
    assert_eq!(r2.fanout_peers("t").len(), 6);
    r2.heartbeat(secs(62), &mut g);
    assert!(r2.fanout_peers("t").is_empty());
    // No peers: an error, nothing remembered.
    let mut empty = Router::new(Config::default(), secs(1));
    assert_eq!(
        empty.publish(secs(1), [4; 32], "t", body(1), &mut g),
        Err(moss_gossip::PublishError::NoPeers)
    );
    assert!(!empty.is_seen(&[4; 32]));
}

#[test]
fn flood_publish_reaches_every_topic_peer_above_the_publish_threshold() {
    let mut r = router(10, Config::default());
    let mut g = rng();
    for _ in 0..4 {
        r.on_invalid(&p(3), "t");
    }
    assert!(r.peer_score(&p(3), secs(1)) < -100.0);
    assert_eq!(r.publish(secs(1), [1; 32], "t", body(10), &mut g), Ok(9));
    assert!(!sends(&drain(&mut r)).contains(&p(3)));
}

#[test]
fn received_messages_go_to_mesh_peers_only_and_idontwant_is_sent_and_honoured() {
    let mut r = router(12, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
    drain(&mut r);
    let mesh = r.mesh_peers("t");
    let from = mesh[0];
    let skip = mesh[1];
    r.on_control(
        secs(1),
        &skip,
        Control::IDontWant { ids: vec![[9; 32]] },
        &mut g,
    );
    let got = r.on_message(
        secs(1),
        &from,
        &p(200),
        [9; 32],
        "t",
        2000,
        Some(body(2000)),
    );
    assert_eq!(got, Received::New { subscribed: true });
    let a = drain(&mut r);
    let to = sends(&a);
    let expect: Vec<PeerId> = mesh[2..].to_vec();
    assert_eq!(to, expect, "mesh minus sender minus IDONTWANT");
    let idw: Vec<PeerId> = a
        .iter()
        .filter_map(|a| match a {
            Action::Control {
                to,
                control: Control::IDontWant { .. },
            } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(idw, mesh[1..].to_vec(), "IDONTWANT to mesh peers at once");
    assert_eq!(
        r.on_message(
            secs(1),
            &mesh[2],
            &p(200),
            [9; 32],
            "t",
            2000,
            Some(body(2000))
        ),
        Received::Duplicate
    );
    // Small messages get no IDONTWANT.
    r.on_message(secs(1), &from, &p(200), [8; 32], "t", 100, Some(body(100)));
    assert!(drain(&mut r).iter().all(|a| !matches!(
        a,
        Action::Control {
            control: Control::IDontWant { .. },
            ..
        }
    )));
    // Turned off: none either.
    let mut off = router(12, Config::builder().idontwant(false).build().unwrap());
    off.join("t", secs(0), &mut g);
    drain(&mut off);
    let m = off.mesh_peers("t");
    off.on_message(
        secs(1),
        &m[0],
        &p(200),
        [9; 32],
        "t",
        2000,
        Some(body(2000)),
    );
    assert!(drain(&mut off).iter().all(|a| !matches!(
        a,
        Action::Control {
            control: Control::IDontWant { .. },
            ..
        }
    )));
}

#[test]
fn ihave_iwant_repair_with_limits_and_broken_promise_penalty() {
    let mut r = router(12, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
    drain(&mut r);
    let outsider = (1..=12)
        .map(p)
        .find(|q| !r.mesh_peers("t").contains(q))
        .unwrap();
    r.on_control(
        secs(1),
        &outsider,
        Control::IHave {
            topic: "t".into(),
            ids: vec![[1; 32], [2; 32]],
        },
        &mut g,
    );
    let a = drain(&mut r);
    let want: Vec<Vec<[u8; 32]>> = a
        .iter()
        .filter_map(|a| match a {
            Action::Control {
                control: Control::IWant { ids },
                ..
            } => Some(ids.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(want.len(), 1);
    assert_eq!(want[0].len(), 2);
    // Neither arrives: two broken promises, P7 beyond its threshold.
    assert_eq!(r.peer_score(&outsider, secs(1)), 0.0);
    r.heartbeat(secs(5), &mut g);
    assert!(r.peer_score(&outsider, secs(5)) < -5.0);
    let m0 = r.mesh_peers("t")[0];
    r.on_message(secs(5), &m0, &p(200), [1; 32], "t", 10, Some(body(10)));
    drain(&mut r);
    // IWANT is served from the cache, at most 3 times per peer.
    for _ in 0..5 {
        r.on_control(
            secs(5),
            &outsider,
            Control::IWant { ids: vec![[1; 32]] },
            &mut g,
        );
    }
    assert_eq!(sends(&drain(&mut r)).len(), 3);
    // Peers below the gossip threshold are not heard.
    let bad = p(12);
    r.on_invalid(&bad, "t");
    r.on_invalid(&bad, "t");
    r.on_control(
        secs(5),
        &bad,
        Control::IHave {
            topic: "t".into(),
            ids: vec![[3; 32]],
        },
        &mut g,
    );
    assert!(drain(&mut r).is_empty());
}

#[test]
fn heartbeat_gossips_ihave_to_lazy_peers() {
    let mut r = router(20, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
    drain(&mut r);
    let mesh = r.mesh_peers("t");
    r.on_message(secs(1), &mesh[0], &p(200), [5; 32], "t", 10, Some(body(10)));
    drain(&mut r);
    r.heartbeat(secs(1), &mut g);
    let lazy: Vec<PeerId> = drain(&mut r)
        .into_iter()
        .filter_map(|a| match a {
            Action::Control {
                to,
                control: Control::IHave { ids, .. },
            } if ids.contains(&[5; 32]) && !mesh.contains(&to) => Some(to),
            _ => None,
        })
        .collect();
    assert_eq!(lazy.len(), 6, "D_lazy non-mesh peers");
}

#[test]
fn invalid_messages_graylist_and_graylisted_peers_are_ignored() {
    let mut r = router(4, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
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
fn early_idontwant_goes_out_once_at_the_first_fragment() {
    let mut r = router(12, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
    drain(&mut r);
    let mesh = r.mesh_peers("t");
    r.early_idontwant(secs(1), &mesh[0], [4; 32], "t");
    let idw = |a: &[Action]| {
        a.iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::Control {
                        control: Control::IDontWant { .. },
                        ..
                    }
                )
            })
            .count()
    };
    assert_eq!(idw(&drain(&mut r)), mesh.len() - 1);
    r.early_idontwant(secs(1), &mesh[1], [4; 32], "t");
    assert_eq!(idw(&drain(&mut r)), 0, "once per id");
    r.on_message(
        secs(1),
        &mesh[0],
        &p(200),
        [4; 32],
        "t",
        16384,
        Some(body(16384)),
    );
    assert_eq!(idw(&drain(&mut r)), 0, "not again after reassembly");
    // Not for seen ids, nor when turned off.
    r.early_idontwant(secs(1), &mesh[0], [4; 32], "t");
    assert!(drain(&mut r).is_empty());
    let mut off = router(12, Config::builder().idontwant(false).build().unwrap());
    off.join("t", secs(0), &mut g);
    drain(&mut off);
    let m = off.mesh_peers("t");
    off.early_idontwant(secs(1), &m[0], [4; 32], "t");
    assert!(drain(&mut off).is_empty());
}

#[test]
fn answers_our_rate_limiter_dropped_are_not_broken_promises() {
    let mut r = router(12, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
    drain(&mut r);
    let outsider = (1..=12)
        .map(p)
        .find(|q| !r.mesh_peers("t").contains(q))
        .unwrap();
    let ihave = Control::IHave {
        topic: "t".into(),
        ids: vec![[1; 32], [2; 32]],
    };
    r.on_control(secs(1), &outsider, ihave, &mut g);
    drain(&mut r);
    r.rate_limited(&outsider, secs(2));
    r.heartbeat(secs(5), &mut g);
    assert_eq!(r.peer_score(&outsider, secs(5)), 0.0);
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
    let mut r = router(8, cfg);
    let mut g = rng();
    r.join("t", secs(0), &mut g);
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

/// IHAVE id lists sent to `to` in `a`.
fn ihaves_to(a: &[Action], to: &PeerId) -> Vec<Vec<MessageId>> {
    a.iter()
        .filter_map(|x| match x {
            Action::Control {
                to: t,
                control: Control::IHave { ids, .. },
            } if t == to => Some(ids.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_peer_joining_the_mesh_hears_of_cached_messages_older_than_the_gossip_windows() {
    let mut r = router(3, Config::default());
    let mut g = rng();
    r.join("t", secs(0), &mut g);
    drain(&mut r);
    let mesh = r.mesh_peers("t");
    r.on_message(secs(1), &mesh[0], &p(200), [5; 32], "t", 10, Some(body(10)));
    drain(&mut r);
    // Long after the gossip windows, but still cached.
    for s in 2..20 {
        r.heartbeat(secs(s), &mut g);
    }
    drain(&mut r);
    // A new subscriber grafts onto us: it is offered the old message...
    r.add_peer(p(50), addr(50), false);
    r.peer_subscribed(&p(50), "t");
    r.on_control(
        secs(20),
        &p(50),
        Control::Graft { topic: "t".into() },
        &mut g,
    );
    assert!(r.mesh_peers("t").contains(&p(50)));
    let offered = ihaves_to(&drain(&mut r), &p(50));
    assert_eq!(offered, vec![vec![[5; 32]]]);
    // ...but not the copy it is known to have (the peer sent it to us).
    r.add_peer(p(51), addr(51), false);
    r.peer_subscribed(&p(51), "t");
    r.on_message(secs(20), &p(51), &p(200), [5; 32], "t", 10, Some(body(10)));
    drain(&mut r);
    r.on_control(
        secs(20),
        &p(51),
        Control::Graft { topic: "t".into() },
        &mut g,
    );
    assert!(r.mesh_peers("t").contains(&p(51)));
    assert!(ihaves_to(&drain(&mut r), &p(51)).is_empty());
}
