//! Three meshes on one [`moss::SharedEngine`]: pub/sub works on each, the
//! messages stay within their mesh, a mesh that stops leaves the others
//! running, and bad datagrams for one mesh are counted by that mesh's
//! node only. Real nodes on 127.0.0.1; the peers run engines of their own.
#![cfg(unix)]

mod common;

use common::{cfg, wait_for};
use moss::{DropReason, Event, Node, SharedEngine};
use std::time::Duration;

const TOPIC: &str = "news";

/// A node of `mesh` on `engine` (or on a thread of its own).
fn node(mesh: &str, engine: Option<&SharedEngine>) -> Node {
    let mut b = Node::builder(mesh)
        .config(cfg("", None))
        .bind("127.0.0.1:0".parse().unwrap());
    if let Some(e) = engine {
        b = b.shared_engine(e);
    }
    b.start().unwrap()
}

/// Connects `a` to `b`, waits until `a` sees `b` subscribed to [`TOPIC`].
fn link(a: &Node, b: &Node) {
    a.connect_wait(&b.local_addr().to_string(), Duration::from_secs(10))
        .unwrap();
    a.wait_for_subscriber(TOPIC, Duration::from_secs(10))
        .unwrap();
}

/// `s` receives `want` (waiting up to 10 s: the machine may be loaded)
/// and nothing else right after it.
fn only(s: &moss::Subscription, want: &str) {
    let m = s
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{want:?} never came"));
    assert_eq!(m.data(), want.as_bytes());
    let extra = s.recv_timeout(Duration::from_millis(300));
    assert!(extra.is_none(), "after {want:?}: {extra:?}");
}

/// Drops of `n` that junk datagrams cause.
fn junk_drops(n: &Node) -> u64 {
    let d = n.stats().unwrap().counters.drops;
    d.get(DropReason::Unrecognized) + d.get(DropReason::TooShort)
}

#[test]
fn three_meshes_share_one_engine_and_stay_apart() {
    let engine = SharedEngine::start().unwrap();
    let meshes = ["alpha", "beta", "gamma"];
    let mut on_engine: Vec<Node> = meshes.iter().map(|m| node(m, Some(&engine))).collect();
    assert_eq!(engine.node_count(), 3);
    for n in &on_engine {
        assert_eq!(n.backend(), "portable");
        assert!(
            n.tcp_local_addr().is_none(),
            "no TCP carrier on a shared engine"
        );
    }
    let peers: Vec<Node> = meshes.iter().map(|m| node(m, None)).collect();
    let subs: Vec<_> = peers.iter().map(|p| p.subscribe(TOPIC).unwrap()).collect();
    // The nodes on the engine subscribe too: traffic both ways.
    let back: Vec<_> = on_engine
        .iter()
        .map(|n| n.subscribe(TOPIC).unwrap())
        .collect();
    for (n, p) in on_engine.iter().zip(&peers) {
        link(n, p);
        p.wait_for_subscriber(TOPIC, Duration::from_secs(10))
            .unwrap();
    }

    for (i, n) in on_engine.iter().enumerate() {
        n.publish(TOPIC, format!("{} says hi", meshes[i]).as_bytes())
            .unwrap();
        peers[i]
            .publish(TOPIC, format!("{} answers", meshes[i]).as_bytes())
            .unwrap();
    }
    for i in 0..3 {
        only(&subs[i], &format!("{} says hi", meshes[i]));
        only(&back[i], &format!("{} answers", meshes[i]));
    }

    // Junk for gamma's node only: dropped and counted there, not by the
    // others (every node of the engine is polled by the same thread).
    let before: Vec<u64> = on_engine.iter().map(junk_drops).collect();
    let junk = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..20u8 {
        junk.send_to(&[i; 96], on_engine[2].local_addr()).unwrap();
    }
    assert!(
        wait_for(|| junk_drops(&on_engine[2]) >= before[2] + 20),
        "gamma counts the junk"
    );
    for i in 0..2 {
        assert_eq!(
            junk_drops(&on_engine[i]),
            before[i],
            "{} counted gamma's junk",
            meshes[i]
        );
    }

    // A node of one mesh cannot join another: its handshake is refused.
    let cross =
        on_engine[0].connect_wait(&peers[1].local_addr().to_string(), Duration::from_secs(2));
    assert!(cross.is_err(), "alpha joined beta: {cross:?}");

    // Beta stops: its peer hears the close, the other two run on.
    let mut beta = on_engine.remove(1);
    beta.stop();
    assert!(beta.is_stopped());
    assert_eq!(engine.node_count(), 2);
    assert!(
        wait_for(|| peers[1].peer_count() == 0),
        "beta's peer saw the close"
    );
    assert!(wait_for(|| peers[1]
        .events()
        .try_iter()
        .any(|e| matches!(e, Event::PeerLeft { .. }))));
    assert!(matches!(
        beta.subscribe("late"),
        Err(moss::NodeError::Stopped)
    ));
    for (n, i) in on_engine.iter().zip([0usize, 2]) {
        n.publish(TOPIC, format!("{} again", meshes[i]).as_bytes())
            .unwrap();
        only(&subs[i], &format!("{} again", meshes[i]));
    }
    assert!(subs[1].try_recv().is_none(), "nothing from a stopped mesh");

    // A new mesh on the same engine after one left.
    let delta = node("delta", Some(&engine));
    let delta_peer = node("delta", None);
    let sub = delta_peer.subscribe(TOPIC).unwrap();
    link(&delta, &delta_peer);
    delta.publish(TOPIC, b"delta").unwrap();
    let m = sub
        .recv_timeout(Duration::from_secs(10))
        .expect("delta delivers");
    assert_eq!(m.data(), b"delta");
    assert_eq!(engine.node_count(), 3);
}

#[test]
fn two_shared_engines_talk_to_each_other() {
    let (e1, e2) = (
        SharedEngine::start().unwrap(),
        SharedEngine::start().unwrap(),
    );
    let a = node("pair", Some(&e1));
    let b = node("pair", Some(&e2));
    let sub = b.subscribe(TOPIC).unwrap();
    link(&a, &b);
    let big: Vec<u8> = (0..30_000u32).map(|i| i as u8).collect();
    a.publish(TOPIC, &big).unwrap();
    let m = sub
        .recv_timeout(Duration::from_secs(10))
        .expect("b receives");
    assert_eq!(m.data(), &big[..]);
    drop(a);
    assert!(wait_for(|| b.peer_count() == 0), "b saw a stop");
    assert_eq!(e1.node_count(), 0);
}
