//! Publishing and forwarding: flood publishing, fanout, mesh forwarding and IDONTWANT.
//! Router behaviour, driven directly (no wire, no sockets).

mod common;

use common::*;
use moss_crypto::PeerId;
use moss_gossip::{Action, Config, Control, Received, Router};

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
    let (mut r, mut g) = joined(12, Config::default());
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
    let idw = controls_to(&a, |c| matches!(c, Control::IDontWant { .. }));
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
fn early_idontwant_goes_out_once_at_the_first_fragment() {
    let (mut r, mut g) = joined(12, Config::default());
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
