//! Lazy gossip: IHAVE/IWANT repair, its limits and promises, gossip to new mesh peers.
//! Router behaviour, driven directly (no wire, no sockets).

mod common;

use common::*;
use moss_crypto::PeerId;
use moss_gossip::{Action, Config, Control, Router};

#[test]
fn ihave_iwant_repair_with_limits_and_broken_promise_penalty() {
    let (mut r, mut g) = joined(12, Config::default());
    drain(&mut r);
    let outsider = outside_mesh(&r, 12);
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
    let (mut r, mut g) = joined(20, Config::default());
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
fn answers_our_rate_limiter_dropped_are_not_broken_promises() {
    let (mut r, mut g) = joined(12, Config::default());
    drain(&mut r);
    let outsider = outside_mesh(&r, 12);
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
fn a_peer_joining_the_mesh_hears_of_cached_messages_older_than_the_gossip_windows() {
    let (mut r, mut g) = joined(3, Config::default());
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

/// A mesh peer whose session died unnoticed while we published (the
/// flood went to the dead session), and that comes back on a new session
/// while its PRUNE backoff keeps it out of our mesh, still hears of our
/// message, for `LATE_BEATS` heartbeats (an IHAVE may be lost too), then
/// no more (the mesh is full: its peers carry the topic).
#[test]
fn a_peer_back_on_a_new_session_hears_of_our_messages_it_missed_outside_the_mesh() {
    let (mut r, mut g) = joined(8, Config::default());
    r.heartbeat(secs(1), &mut g);
    let mesh = r.mesh_peers("t");
    assert!(mesh.len() > Config::default().d_lo);
    let q = mesh[0];
    drain(&mut r);
    let id = [9; 32];
    r.publish(secs(1), id, "t", body(10), &mut g).unwrap();
    drain(&mut r);
    // Silent: out of the mesh with backoff; then its session ends.
    r.peer_unresponsive(&q, secs(2));
    r.remove_peer(&q, secs(3));
    drain(&mut r);
    // Back on a new session.
    let i = q.0[0];
    r.add_peer(q, addr(i), true);
    r.peer_subscribed(&q, "t");
    let mut told = 0;
    for s in 4..40 {
        r.heartbeat(secs(s), &mut g);
        let a = drain(&mut r);
        assert!(!r.mesh_peers("t").contains(&q), "in backoff");
        let heard = ihaves_to(&a, &q).iter().any(|ids| ids.contains(&id));
        if s == 4 {
            assert!(heard, "the returning peer hears of our message");
        }
        told += usize::from(heard);
    }
    assert_eq!(told as u64, moss_gossip::LATE_BEATS);
}

/// The same peer back on a new session before we noticed the old one die
/// (no removal: its new session simply sends its subscriptions again, as
/// when a relayed pair moves to another supernode). It still hears of the
/// message our flood sent to the dead session.
#[test]
fn a_peer_that_subscribes_again_on_a_new_session_hears_of_our_messages() {
    let (mut r, mut g) = joined(8, Config::default());
    r.heartbeat(secs(1), &mut g);
    let q = r.mesh_peers("t")[0];
    drain(&mut r);
    let id = [7; 32];
    r.publish(secs(1), id, "t", body(10), &mut g).unwrap();
    drain(&mut r);
    // Out of the mesh (silent), never removed; then its subscription again.
    r.peer_unresponsive(&q, secs(2));
    drain(&mut r);
    r.peer_subscribed(&q, "t");
    r.peer_subscribed(&q, "t");
    let mut told = 0;
    for s in 3..30 {
        r.heartbeat(secs(s), &mut g);
        let a = drain(&mut r);
        told += usize::from(ihaves_to(&a, &q).iter().any(|ids| ids.contains(&id)));
    }
    assert_eq!(
        told as u64,
        moss_gossip::LATE_BEATS,
        "told once per heartbeat, not twice"
    );
}

/// The relay simulator's pairs: a topic of two. The other end went silent
/// for a while and left our mesh (backoff keeps it out) just after we
/// published; a datagram of our flood was lost. It hears of our message
/// for the own-gossip windows, as a mesh peer would, not only for the
/// few heartbeats of ordinary gossip.
#[test]
fn in_a_mesh_thinner_than_d_lo_topic_peers_outside_it_hear_of_our_messages() {
    let (mut r, mut g) = joined(1, Config::default());
    r.heartbeat(secs(1), &mut g);
    assert_eq!(r.mesh_peers("t"), vec![p(1)]);
    let id = [9; 32];
    r.publish(secs(1), id, "t", body(10), &mut g).unwrap();
    r.peer_unresponsive(&p(1), secs(2));
    drain(&mut r);
    // Every heartbeat of the backoff (60 s), which is within the
    // own-gossip windows (60 heartbeats).
    let mut told = 0;
    for s in 3..60 {
        r.heartbeat(secs(s), &mut g);
        assert!(r.mesh_peers("t").is_empty(), "in backoff");
        told += usize::from(
            ihaves_to(&drain(&mut r), &p(1))
                .iter()
                .any(|ids| ids.contains(&id)),
        );
    }
    assert_eq!(told, 57);
}

/// The relay simulator's pairs under 10 % loss: over a relayed path a copy
/// crosses two lossy links, and the three IWANT answers a peer may have
/// were all lost while we kept telling it of the message (our own, for the
/// own-gossip windows). Every IHAVE we send a peer lets it ask for that
/// message once more, so the repair goes on as long as we advertise it;
/// unasked-for IWANTs stay capped at `gossip_retransmission`.
#[test]
fn each_ihave_we_send_lets_the_peer_ask_for_the_message_once_more() {
    let (mut r, mut g) = joined(1, Config::default());
    r.heartbeat(secs(1), &mut g);
    assert_eq!(r.mesh_peers("t"), vec![p(1)]);
    let id = [9; 32];
    r.publish(secs(1), id, "t", body(10), &mut g).unwrap();
    drain(&mut r);
    let limit = Config::default().gossip_retransmission as usize;
    let want = |r: &mut Router, g: &mut rand_chacha::ChaCha20Rng, s: u64| {
        r.on_control(secs(s), &p(1), Control::IWant { ids: vec![id] }, g);
        sends(&drain(r)).len()
    };
    // Unasked for: at most `limit` answers.
    let answered: usize = (0..limit + 2).map(|_| want(&mut r, &mut g, 1)).sum();
    assert_eq!(answered, limit);
    // Every heartbeat tells it again (every copy was lost), and each of
    // those IHAVEs is answered once.
    for s in 2..12 {
        r.heartbeat(secs(s), &mut g);
        let told = ihaves_to(&drain(&mut r), &p(1))
            .iter()
            .any(|ids| ids.contains(&id));
        assert!(told, "heartbeat {s}: IHAVE of our message");
        assert_eq!(want(&mut r, &mut g, s), 1, "heartbeat {s}: answered");
        assert_eq!(want(&mut r, &mut g, s), 0, "heartbeat {s}: once");
    }
}
