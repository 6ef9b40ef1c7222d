//! Native nodes meeting over WebRTC DataChannels: a real `moss-signal`
//! (in process, on loopback), two unsharded nodes with `webrtc.enabled`,
//! no trackers, DHT, LAN or static peers, so the only way they can meet is
//! the signal room and a str0m DataChannel on loopback ICE candidates.
//! They exchange pub/sub both ways on `channel:` paths; a node of another
//! mesh (another room) meets nobody; stopping one is seen by the other.
#![cfg(feature = "webrtc")]

use moss::Node;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// An offline node of `mesh` that meets peers only through `signal`.
fn node(mesh: &str, signal: SocketAddr) -> Node {
    let cfg = format!(
        r#"{{"trackers": [], "dht_enabled": false, "lan_discovery_enabled": false,
            "transport": {{"tcp_enabled": false}},
            "webrtc": {{"enabled": true, "signal": ["ws://{signal}"], "ice_ips": ["127.0.0.1"]}}}}"#
    );
    Node::builder(mesh)
        .config_json(&cfg)
        .unwrap()
        .start()
        .unwrap()
}

fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_native_nodes_meet_over_a_datachannel_and_exchange_messages() {
    let signal = moss_signal::background::Background::start(
        "127.0.0.1:0".parse().unwrap(),
        moss_signal::limits::Limits::default(),
    )
    .expect("signal server");
    let a = node("rtc-mesh", signal.addr());
    let b = node("rtc-mesh", signal.addr());
    let other = node("rtc-other-mesh", signal.addr());
    let sa = a.subscribe("t").unwrap();
    let sb = b.subscribe("t").unwrap();
    let so = other.subscribe("t").unwrap();
    until("a and b peered", || {
        a.peer_count() == 1 && b.peer_count() == 1
    });
    b.wait_for_subscriber("t", WAIT).unwrap();
    a.wait_for_subscriber("t", WAIT).unwrap();
    b.publish("t", b"b to a").unwrap();
    a.publish("t", &[9u8; 3000]).unwrap();
    let m = sa.recv_timeout(WAIT).expect("a got nothing");
    assert_eq!(m.data(), b"b to a");
    let m = sb.recv_timeout(WAIT).expect("b got nothing");
    assert_eq!(
        m.data(),
        &[9u8; 3000][..],
        "a fragmented message crosses too"
    );
    for n in [&a, &b] {
        let s = n.stats().unwrap();
        assert!(
            s.peers.iter().all(|p| p.addr.starts_with("channel:")),
            "every path is a DataChannel: {:?}",
            s.peers
        );
        let w = n.webrtc_stats().unwrap();
        assert_eq!(w.signal_connected, 1, "{w:?}");
        assert_eq!(w.links_open, 1, "{w:?}");
        assert!(w.datagrams_in > 0 && w.datagrams_out > 0, "{w:?}");
    }
    // Another mesh is another room: it never even links.
    assert_eq!(other.peer_count(), 0);
    assert_eq!(other.webrtc_stats().unwrap().links_opened, 0);
    assert!(so.try_recv().is_none());
    // A node that stops is seen leaving at once (its channel closes).
    drop(b);
    until("a saw b leave", || a.peer_count() == 0);
}
