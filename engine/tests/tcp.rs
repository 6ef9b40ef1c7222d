//! The TCP carrier on loopback with real engines: two nodes whose static
//! peer is dialled over TCP (`transport.prefer_tcp`) exchange pub/sub both
//! ways on TCP paths only; garbage on a TCP connection closes it and is
//! counted; the connection cap holds.

use moss::Node;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn config(extra: &str) -> String {
    format!(
        r#"{{"trackers": [], "dht_enabled": false, "lan_discovery_enabled": false,
            "engine": {{"shards": 1}}{extra}}}"#
    )
}

/// An offline, unsharded node of `mesh` with `extra` config fields.
fn node(mesh: &str, extra: &str) -> Node {
    Node::builder(mesh)
        .config_json(&config(extra))
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
fn pubsub_both_ways_over_tcp_only() {
    let a = node("tcp-mesh", "");
    let port = a.local_addr().port();
    assert_eq!(a.tcp_local_addr().map(|t| t.port()), Some(port));
    let b = node(
        "tcp-mesh",
        &format!(r#", "static_peers": ["127.0.0.1:{port}"], "transport": {{"prefer_tcp": true}}"#),
    );
    let sa = a.subscribe("t").unwrap();
    let sb = b.subscribe("t").unwrap();
    until("peers", || a.peer_count() == 1 && b.peer_count() == 1);
    b.wait_for_subscriber("t", WAIT).unwrap();
    a.wait_for_subscriber("t", WAIT).unwrap();
    b.publish("t", b"b to a").unwrap();
    a.publish("t", b"a to b").unwrap();
    let m = sa.recv_timeout(WAIT).expect("a got nothing");
    assert_eq!(m.data(), b"b to a");
    let m = sb.recv_timeout(WAIT).expect("b got nothing");
    assert_eq!(m.data(), b"a to b");
    // Every path is TCP, and the records were counted on both sides.
    for n in [&a, &b] {
        let s = n.stats().unwrap();
        assert!(
            s.peers.iter().all(|p| p.addr.starts_with("tcp:")),
            "{:?}",
            s.peers
        );
        let t = n.tcp_stats().unwrap();
        assert!(t.records_in > 0 && t.records_out > 0, "{t:?}");
        assert_eq!(t.bad_records, 0);
    }
    assert_eq!(b.tcp_stats().unwrap().dialed, 1);
    assert_eq!(a.tcp_stats().unwrap().accepted, 1);
}

#[test]
fn garbage_closes_the_connection_and_is_counted() {
    let a = node("tcp-garbage", "");
    let addr = a.tcp_local_addr().unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    // A nonce, then bytes that unmask to some length: keep sending until
    // one is out of range (a garbage length is in range with p ≈ 3 %).
    s.set_read_timeout(Some(WAIT)).unwrap();
    let _ = s.write_all(&[0x5a; 12]);
    let mut junk = 0u8;
    let deadline = Instant::now() + WAIT;
    while a.tcp_stats().unwrap().bad_records == 0 {
        assert!(Instant::now() < deadline, "garbage was not refused");
        junk = junk.wrapping_add(37);
        if s.write_all(&[junk; 64]).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    until("bad record count", || {
        a.tcp_stats().unwrap().bad_records == 1
    });
    // The node closed its end: the read sees EOF or a reset, not a hang.
    let mut buf = [0u8; 64];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    // Only the node's 12-byte nonce came back.
    assert!(total <= 12, "{total}");
    until("closed", || a.tcp_stats().unwrap().open == 0);
}

#[test]
fn the_connection_cap_holds() {
    let a = node("tcp-cap", "");
    let addr = a.tcp_local_addr().unwrap();
    let cap = moss::tcp::MAX_CONNECTIONS;
    let extra = 8;
    let conns: Vec<TcpStream> = (0..cap + extra)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    until("all seen", || {
        let t = a.tcp_stats().unwrap();
        t.accepted + t.refused == (cap + extra) as u64
    });
    let t = a.tcp_stats().unwrap();
    assert_eq!(t.open, cap as u64);
    assert_eq!(t.refused, extra as u64);
    drop(conns);
}

/// Copies bytes both ways between an accepted connection and `to`.
fn forward(listener: std::net::TcpListener, to: std::net::SocketAddr) {
    std::thread::spawn(move || {
        for inbound in listener.incoming().take(1) {
            let Ok(a) = inbound else { return };
            let Ok(b) = TcpStream::connect(to) else {
                return;
            };
            let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
            let (mut a, mut b) = (a, b);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a2, &mut b2);
            });
            let _ = std::io::copy(&mut b, &mut a);
        }
    });
}

#[test]
fn a_udp_dial_that_times_out_falls_back_to_tcp() {
    let quick = r#", "security": {"handshake_timeout_sec": 1}"#;
    let a = node("tcp-fallback", quick);
    let b = node("tcp-fallback", quick);
    // A TCP-only door to A: its port has no UDP socket, so B's UDP
    // handshake goes unanswered, and the TCP dial to the same address
    // reaches A through the forwarder.
    let door = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = door.local_addr().unwrap();
    assert!(std::net::UdpSocket::bind(addr).is_ok(), "UDP port in use");
    forward(door, a.tcp_local_addr().unwrap());
    let peer = b.connect_wait(&addr.to_string(), WAIT).unwrap();
    assert_eq!(peer, a.public_key());
    let t = b.tcp_stats().unwrap();
    assert_eq!(t.dialed, 1, "{t:?}");
    assert!(b.stats().unwrap().counters.handshakes_failed >= 1);
}

#[test]
fn tcp_disabled_means_no_carrier() {
    let a = node("tcp-off", r#", "transport": {"tcp_enabled": false}"#);
    assert!(a.tcp_stats().is_none());
    assert!(a.tcp_local_addr().is_none());
    // Sharded engines do not run it either.
    let s = Node::builder("tcp-sharded")
        .config_json(r#"{"trackers": [], "dht_enabled": false, "lan_discovery_enabled": false, "engine": {"shards": 2}}"#)
        .unwrap()
        .start()
        .unwrap();
    assert!(s.tcp_stats().is_none());
}
