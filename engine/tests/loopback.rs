//! Two real nodes on 127.0.0.1 through every backend this machine has.

mod common;

use common::{backends, wait_for};
use moss::{Event, Node};
use std::time::Duration;

fn node(backend: &str) -> Node {
    common::node("loopback-test", backend, None)
}

#[test]
fn two_nodes_exchange_messages_on_every_backend() {
    for b in backends() {
        let a = node(b);
        let c = node(b);
        assert_eq!(a.backend(), b);
        let sub_a = a.subscribe("chat").unwrap();
        let sub_c = c.subscribe("chat").unwrap();
        let peer = c
            .connect_wait(&a.local_addr().to_string(), Duration::from_secs(10))
            .unwrap();
        assert_eq!(peer, a.public_key());
        assert!(wait_for(|| a.peer_count() == 1), "{b}: a sees c");
        // Subscriptions propagate right after the session comes up.
        assert!(wait_for(|| c
            .stats()
            .unwrap()
            .peers
            .iter()
            .any(|p| p.topics.contains(&"chat".to_string()))));
        assert!(wait_for(|| a
            .stats()
            .unwrap()
            .peers
            .iter()
            .any(|p| p.topics.contains(&"chat".to_string()))));
        c.publish("chat", b"hello from c").unwrap();
        let m = sub_a
            .recv_timeout(Duration::from_secs(10))
            .expect("a receives");
        assert_eq!(m.data, b"hello from c");
        assert_eq!(m.from, c.public_key());
        let big: Vec<u8> = (0..60_000u32).map(|i| i as u8).collect();
        a.publish("chat", &big).unwrap();
        let m = sub_c
            .recv_timeout(Duration::from_secs(10))
            .expect("c receives big");
        assert_eq!(m.data, big, "{b}");
        let joined = a
            .events()
            .try_iter()
            .any(|e| matches!(e, Event::PeerJoined { .. }));
        assert!(joined, "{b}: peer joined event");
        let stats = a.stats().unwrap();
        assert!(stats.counters.datagrams_in > 0);
        assert_eq!(stats.backend, b);
        drop(c);
        // A stopping node closes its sessions, so the other side notices at once.
        assert!(wait_for(|| a.peer_count() == 0), "{b}: close seen");
        assert!(wait_for(|| a
            .events()
            .try_iter()
            .any(|e| matches!(e, Event::PeerLeft { .. }))));
    }
}

#[test]
fn api_errors_are_clear() {
    let mut a = node("portable");
    assert_eq!(a.publish("t", b"x"), Err(moss::NodeError::NoPeers));
    assert_eq!(a.publish("", b"x"), Err(moss::NodeError::InvalidTopic));
    assert!(matches!(
        a.publish("t", &vec![0; 70_000]),
        Err(moss::NodeError::TooLarge { .. })
    ));
    assert!(matches!(
        a.connect("not an address"),
        Err(moss::NodeError::BadAddress(_))
    ));
    // Nobody listens on this port: the dial fails within the handshake timeout.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = a.connect_wait(
        &dead.local_addr().unwrap().to_string(),
        Duration::from_secs(15),
    );
    assert!(matches!(r, Err(moss::NodeError::ConnectFailed(_))), "{r:?}");
    let info = a.mesh_info().unwrap();
    assert_eq!(info.mesh_id, "loopback-test");
    assert_eq!(info.public_key, a.public_key().to_hex());
    a.stop();
    a.stop();
    assert_eq!(a.subscribe("t").err(), Some(moss::NodeError::Stopped));
}

#[test]
fn bad_config_names_the_field() {
    let e = Node::builder("m")
        .config_json(r#"{"security":{"max_message_size_bytes":"big"}}"#)
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("security.max_message_size_bytes"),
        "{e}"
    );
}

#[test]
fn dropping_the_last_subscription_leaves_the_topic_at_once() {
    let a = node("portable");
    let sub = a.subscribe("news").unwrap();
    let kept = a.subscribe("kept").unwrap();
    assert!(wait_for(|| a.stats().unwrap().topics.len() == 2));
    let second = a.subscribe("news").unwrap();
    drop(sub);
    // Another subscription of the topic remains: still subscribed.
    assert!(wait_for(|| a.stats().unwrap().topics.len() == 2));
    assert!(a.stats().unwrap().topics.contains(&"news".to_string()));
    // No message ever arrives on the topic, and still the node leaves it.
    drop(second);
    assert!(
        wait_for(|| a.stats().unwrap().topics == ["kept".to_string()]),
        "{:?}",
        a.stats().unwrap().topics
    );
    drop(kept);
}

#[test]
fn dialling_oneself_fails_at_once() {
    let a = node("portable");
    // Well inside the handshake timeout: the self-connect is reported when
    // the handshake finishes, not when the dial times out.
    let r = a.connect_wait(&a.local_addr().to_string(), Duration::from_secs(4));
    assert!(matches!(r, Err(moss::NodeError::ConnectFailed(_))), "{r:?}");
    let s = a.stats().unwrap();
    assert_eq!(s.counters.handshakes_completed, 0);
    assert!(s.counters.drops.get(moss::DropReason::SelfConnect) >= 1);
    assert_eq!(a.peer_count(), 0);
}
