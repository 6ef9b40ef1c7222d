//! The TCP carrier on loopback with real engines: two nodes whose static
//! peer is dialled over TCP (`transport.prefer_tcp`) exchange pub/sub both
//! ways on TCP paths only, unsharded and on sharded engines; garbage on a TCP connection closes it and is
//! counted; the connection cap holds; a session ends when its connection
//! closes.

use moss::Node;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// An offline node of `mesh` with `extra` config fields.
fn node_with(mesh: &str, extra: &str) -> Node {
    let config = format!(
        r#"{{"trackers": [], "dht_enabled": false, "lan_discovery_enabled": false{extra}}}"#
    );
    Node::builder(mesh)
        .config_json(&config)
        .unwrap()
        .start()
        .unwrap()
}

/// An offline, unsharded node of `mesh` with `extra` config fields.
fn node(mesh: &str, extra: &str) -> Node {
    node_with(mesh, &format!(r#", "engine": {{"shards": 1}}{extra}"#))
}

fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two nodes with `shards` engine shards each exchange pub/sub over TCP
/// paths only.
fn pubsub_both_ways_over_tcp_only(shards: u32) {
    let engine = format!(r#", "engine": {{"shards": {shards}}}"#);
    let a = node_with("tcp-mesh", &engine);
    let port = a.local_addr().port();
    assert_eq!(a.tcp_local_addr().map(|t| t.port()), Some(port));
    let b = node_with(
        "tcp-mesh",
        &format!(
            r#"{engine}, "static_peers": ["127.0.0.1:{port}"], "transport": {{"prefer_tcp": true}}"#
        ),
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
fn pubsub_both_ways_over_tcp_only_unsharded() {
    pubsub_both_ways_over_tcp_only(1);
}

#[test]
fn pubsub_both_ways_over_tcp_only_on_sharded_engines() {
    pubsub_both_ways_over_tcp_only(2);
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
    let s = node_with(
        "tcp-sharded-off",
        r#", "engine": {"shards": 2}, "transport": {"tcp_enabled": false}"#,
    );
    assert!(s.tcp_stats().is_none());
}

/// A TCP forwarder from a fresh listener to `to` for one connection, with
/// a switch that cuts it (both sockets shut down, the listener closed).
struct Cut {
    addr: std::net::SocketAddr,
    socks: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Cut {
    fn new(to: std::net::SocketAddr) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let socks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = socks.clone();
        std::thread::spawn(move || {
            let Ok((a, _)) = listener.accept() else {
                return;
            };
            // No second connection gets through: redials are refused.
            drop(listener);
            let Ok(b) = TcpStream::connect(to) else {
                return;
            };
            let (mut a2, mut b2) = (a.try_clone().unwrap(), b.try_clone().unwrap());
            kept.lock()
                .unwrap()
                .extend([a.try_clone().unwrap(), b.try_clone().unwrap()]);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut a2, &mut b2);
            });
            let (mut a, mut b) = (a, b);
            let _ = std::io::copy(&mut b, &mut a);
        });
        Self { addr, socks }
    }

    fn cut(&self) {
        for s in self.socks.lock().unwrap().iter() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The first `PeerLeft` reason within [`WAIT`], skipping other events.
fn left_reason(n: &Node) -> &'static str {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match n.events().recv_timeout(left) {
            Ok(moss::Event::PeerLeft { reason, .. }) => return reason,
            Ok(_) => {}
            Err(_) => panic!("no peer left within {WAIT:?}"),
        }
    }
}

#[test]
fn a_closed_connection_ends_its_session_on_both_sides() {
    // UDP cannot replace the path: B knows A only through the forwarder's
    // TCP address, and the liveness timers are far longer than the wait
    // for the event would need (a silence timeout reads "timeout").
    let a = node("tcp-close", "");
    let door = Cut::new(a.tcp_local_addr().unwrap());
    let b = node(
        "tcp-close",
        &format!(
            r#", "static_peers": ["{}"], "transport": {{"prefer_tcp": true}}"#,
            door.addr
        ),
    );
    until("peers", || a.peer_count() == 1 && b.peer_count() == 1);
    while a.events().try_recv().is_ok() {}
    while b.events().try_recv().is_ok() {}
    door.cut();
    // Both ends see the connection close and end the session for that
    // reason, not for the peer's silence.
    assert_eq!(left_reason(&a), "closed");
    assert_eq!(left_reason(&b), "closed");
    assert_eq!(a.peer_count(), 0);
    assert_eq!(b.peer_count(), 0);
    until("closed", || a.tcp_stats().unwrap().open == 0);
}
