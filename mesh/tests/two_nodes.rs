//! Two and five in-memory nodes: sessions, pub/sub, bad input.

mod common;

use common::{addr, Net};
use moss_mesh::{DropReason, Event, PublishError};
use std::time::Duration;

#[test]
fn two_nodes_connect_and_exchange_messages() {
    let mut net = Net::new(2, "local", None);
    net.nodes[1].add_static_peer(addr(0));
    net.nodes[0].subscribe("chat");
    net.nodes[1].subscribe("chat");
    assert!(net.drive(|n| n.nodes[0].peer_count() == 1));
    assert!(net.run_until_idle());
    assert_eq!(net.nodes[0].peer_count(), 1);
    assert_eq!(net.nodes[1].peer_count(), 1);
    let pk0 = net.nodes[0].public_key();
    let pk1 = net.nodes[1].public_key();
    assert!(net.events[0]
        .iter()
        .any(|e| matches!(e, Event::PeerConnected { peer, .. } if *peer == pk1)));
    let now = net.now;
    net.nodes[0].publish(now, "chat", b"hello").unwrap();
    net.nodes[1].publish(now, "chat", b"world").unwrap();
    assert!(net.run_until_idle());
    assert_eq!(
        net.messages(1),
        vec![("chat".to_string(), b"hello".to_vec())]
    );
    assert_eq!(
        net.messages(0),
        vec![("chat".to_string(), b"world".to_vec())]
    );
    let from = net.events[1].iter().find_map(|e| match e {
        Event::Message(m) => Some(m.from),
        _ => None,
    });
    assert_eq!(from, Some(pk0));
    // Unsubscribed topics are not delivered and publishing there has no peers.
    net.nodes[1].unsubscribe("chat");
    assert!(net.run_until_idle());
    let now = net.now;
    assert_eq!(
        net.nodes[0].publish(now, "chat", b"x"),
        Err(PublishError::NoPeers)
    );
}

#[test]
fn sessions_survive_idle_time_with_keepalives_and_expire_when_peer_vanishes() {
    let mut net = Net::new(2, "local", None);
    net.nodes[1].add_static_peer(addr(0));
    net.run(Duration::from_secs(60));
    assert_eq!(net.nodes[0].peer_count(), 1, "keepalives hold the session");
    // Node 0 goes silent.
    net.muted[0] = true;
    net.run(Duration::from_secs(40));
    assert_eq!(net.nodes[1].peer_count(), 0);
    assert!(net.events[1]
        .iter()
        .any(|e| matches!(e, Event::PeerDisconnected { .. })));
}

#[test]
fn large_messages_are_fragmented_and_reassembled() {
    let mut net = Net::new(2, "local", None);
    net.nodes[1].add_static_peer(addr(0));
    net.nodes[1].subscribe("big");
    assert!(net.drive(|n| n.nodes[0].peer_count() == 1));
    assert!(net.run_until_idle());
    let data: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
    let now = net.now;
    net.nodes[0].publish(now, "big", &data).unwrap();
    assert!(net.run_until_idle());
    assert_eq!(net.messages(1), vec![("big".to_string(), data)]);
    let too_big = vec![0u8; 65537];
    let now = net.now;
    assert!(matches!(
        net.nodes[0].publish(now, "big", &too_big),
        Err(PublishError::TooLarge { .. })
    ));
}

#[test]
fn wrong_psk_or_mesh_never_gets_a_session() {
    let mut net = Net::with(
        3,
        |i| match i {
            0 => ("m".into(), Some([1; 32])),
            1 => ("m".into(), Some([2; 32])),
            _ => ("other".into(), Some([1; 32])),
        },
        Default::default(),
    );
    net.nodes[1].add_static_peer(addr(0));
    net.nodes[2].add_static_peer(addr(0));
    net.run(Duration::from_secs(20));
    for n in &net.nodes {
        assert_eq!(n.peer_count(), 0);
    }
    // Wrong-key datagrams do not even unmask to a valid head.
    let d = net.nodes[0].stats().drops.clone();
    assert!(
        d.get(DropReason::Unrecognized)
            + d.get(DropReason::HandshakeDecrypt)
            + d.get(DropReason::BadHandshake)
            > 0
    );
    assert!(net.events[1]
        .iter()
        .any(|e| matches!(e, Event::ConnectFailed { .. })));
}

#[test]
fn same_psk_connects() {
    let mut net = Net::new(2, "m", Some([1; 32]));
    net.nodes[1].add_static_peer(addr(0));
    net.drive(|n| n.nodes[0].peer_count() == 1);
    assert_eq!(net.nodes[0].peer_count(), 1);
}

#[test]
fn dialling_oneself_fails_at_once_and_completes_no_handshake() {
    let mut net = Net::new(1, "m", None);
    net.nodes[0].connect(addr(0));
    assert!(net.run_until_idle());
    assert!(net.events[0]
        .iter()
        .any(|e| matches!(e, Event::ConnectFailed { addr: a, .. } if *a == addr(0))));
    let s = net.nodes[0].stats();
    assert_eq!(s.handshakes_completed, 0);
    assert_eq!(
        s.drops.get(DropReason::SelfConnect),
        2,
        "both ends of the dial"
    );
    assert_eq!(net.nodes[0].session_count(), 0);
}

#[test]
fn garbage_truncated_oversize_and_replayed_datagrams_are_dropped_and_counted() {
    let mut net = Net::new(2, "local", None);
    net.nodes[1].add_static_peer(addr(0));
    net.nodes[0].subscribe("t");
    net.run(Duration::from_secs(1));
    let now = net.now;
    net.nodes[1].publish(now, "t", b"once").unwrap();
    assert!(net.run_until_idle());
    let before = net.messages(0).len();
    // Replay every datagram node 1 ever sent to node 0.
    let replays: Vec<_> = net
        .log
        .iter()
        .filter(|f| f.to == addr(0))
        .map(|f| (f.from, f.bytes.clone()))
        .collect();
    for (from, b) in replays {
        net.inject(0, from, b);
    }
    assert_eq!(net.messages(0).len(), before, "replays deliver nothing");
    let stats = net.nodes[0].stats().clone();
    assert!(stats.drops.get(DropReason::Replay) > 0);
    net.inject(0, addr(1), vec![1, 2, 3]);
    net.inject(0, addr(1), vec![0xAB; 5000]);
    net.inject(0, addr(1), vec![0x55; 600]);
    let d = &net.nodes[0].stats().drops;
    assert_eq!(d.get(DropReason::TooShort), 1);
    assert_eq!(d.get(DropReason::Oversize), 1);
    assert!(
        d.get(DropReason::Unrecognized)
            + d.get(DropReason::UnknownSession)
            + d.get(DropReason::BadHandshake)
            >= 1
    );
    assert_eq!(net.nodes[0].peer_count(), 1, "session unaffected");
    // Tampered data datagram: flip a ciphertext byte.
    let now = net.now;
    net.nodes[1].publish(now, "t", b"tamper").unwrap();
    let t = net.nodes[1].poll_transmit().unwrap();
    let mut bytes = t.bytes;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    net.inject(0, addr(1), bytes);
    assert_eq!(net.nodes[0].stats().drops.get(DropReason::BadTag), 1);
}

#[test]
fn simultaneous_dials_converge_to_one_session() {
    let mut net = Net::new(2, "local", None);
    net.nodes[0].add_static_peer(addr(1));
    net.nodes[1].add_static_peer(addr(0));
    net.nodes[0].subscribe("t");
    net.nodes[1].subscribe("t");
    assert!(net.drive(|n| n.nodes.iter().all(|x| x.peer_count() == 1)));
    assert!(net.run_until_idle());
    assert_eq!(net.nodes[0].peer_count(), 1);
    assert_eq!(net.nodes[1].peer_count(), 1);
    let now = net.now;
    net.nodes[0].publish(now, "t", b"x").unwrap();
    assert!(net.run_until_idle());
    assert_eq!(net.messages(1).len(), 1);
    let connects = net.events[0]
        .iter()
        .filter(|e| matches!(e, Event::PeerConnected { .. }))
        .count();
    assert_eq!(connects, 1);
}

#[test]
fn five_nodes_in_a_line_deliver_to_all_subscribers_once() {
    let mut net = Net::new(5, "local", None);
    for i in 1..5 {
        net.nodes[i].add_static_peer(addr(i - 1));
    }
    for i in 0..5 {
        net.nodes[i].subscribe("news");
    }
    net.run(Duration::from_secs(2));
    let now = net.now;
    net.nodes[0].publish(now, "news", b"one").unwrap();
    net.nodes[4].publish(now, "news", b"two").unwrap();
    net.run(Duration::from_secs(1));
    for i in 1..4 {
        let mut got = net.messages(i);
        got.sort();
        assert_eq!(
            got,
            vec![
                ("news".into(), b"one".to_vec()),
                ("news".into(), b"two".to_vec())
            ],
            "node {i}"
        );
    }
    assert_eq!(net.messages(0), vec![("news".into(), b"two".to_vec())]);
    assert_eq!(net.messages(4), vec![("news".into(), b"one".to_vec())]);
}

#[test]
fn five_nodes_full_mesh_with_loss_deduplicate() {
    let mut net = Net::new(5, "local", None);
    for i in 0..5 {
        for j in 0..i {
            net.nodes[i].add_static_peer(addr(j));
        }
        net.nodes[i].subscribe("t");
    }
    net.run(Duration::from_secs(3));
    for n in &net.nodes {
        assert_eq!(n.peer_count(), 4);
    }
    let now = net.now;
    for k in 0..10u8 {
        net.nodes[(k % 5) as usize].publish(now, "t", &[k]).unwrap();
    }
    net.run(Duration::from_secs(1));
    for i in 0..5 {
        assert_eq!(
            net.messages(i).len(),
            8,
            "node {i} gets every message but its own, once"
        );
    }
    let dups: u64 = net.nodes.iter().map(|n| n.stats().messages_duplicate).sum();
    assert!(
        dups > 0,
        "full mesh flooding produces duplicates that are suppressed"
    );
}

#[test]
fn handshake_survives_loss() {
    let mut net = Net::new(2, "local", None);
    net.loss_per_mille = 300;
    net.nodes[1].add_static_peer(addr(0));
    net.run(Duration::from_secs(30));
    assert_eq!(net.nodes[0].peer_count(), 1);
    assert_eq!(net.nodes[1].peer_count(), 1);
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let mut net = Net::new(3, "local", None);
        net.nodes[1].add_static_peer(addr(0));
        net.nodes[2].add_static_peer(addr(1));
        net.nodes[0].subscribe("a");
        net.run(Duration::from_secs(1));
        let now = net.now;
        let _ = net.nodes[2].publish(now, "a", b"z");
        net.run(Duration::from_secs(1));
        net.log.iter().map(|f| f.bytes.clone()).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn a_flood_of_bogus_handshakes_is_rate_limited_and_sessions_keep_working() {
    let mut net = Net::new(2, "local", None);
    net.nodes[1].add_static_peer(addr(0));
    net.nodes[0].subscribe("t");
    net.run(Duration::from_secs(1));
    // Capture a genuine message 1 from a third node and replay it from many
    // spoofed sources: each looks like a new dialler.
    let mut spoofer = Net::new(3, "local", None);
    spoofer.nodes[2].connect(addr(0));
    let init = spoofer.nodes[2].poll_transmit().unwrap().bytes;
    for i in 0..5000u32 {
        let from = std::net::SocketAddr::from(([127, 1, (i >> 8) as u8, i as u8], 50000));
        net.inject(0, from, init.clone());
    }
    let d = net.nodes[0].stats().drops.clone();
    let limited = d.get(DropReason::HandshakeRateLimited);
    let capacity = d.get(DropReason::Capacity);
    assert!(
        limited + capacity >= 4000,
        "most of the flood was refused before any DH: {limited} + {capacity}"
    );
    let now = net.now;
    net.nodes[1].publish(now, "t", b"still here").unwrap();
    assert!(net.run_until_idle());
    assert_eq!(
        net.messages(0),
        vec![("t".to_string(), b"still here".to_vec())]
    );
}

#[test]
fn a_replayed_message_1_is_not_reflected_at_line_rate() {
    let mut net = Net::new(2, "local", None);
    net.nodes[1].connect(addr(0));
    let init = net.nodes[1].poll_transmit().unwrap().bytes;
    let before = net.nodes[0].stats().datagrams_out;
    for _ in 0..1000 {
        net.inject(0, addr(1), init.clone());
    }
    let answered = net.nodes[0].stats().datagrams_out - before;
    assert!(
        answered <= 2,
        "1000 copies of one message 1 got {answered} answers"
    );
    assert!(
        net.nodes[0]
            .stats()
            .drops
            .get(DropReason::HandshakeRateLimited)
            >= 998
    );
}
