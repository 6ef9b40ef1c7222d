//! Nodes find each other with no static peer, through real discovery
//! components on loopback: a real BitTorrent tracker (the npm
//! `bittorrent-tracker` server; install with
//! `discovery/scripts/install-test-deps.sh`), a local Mainline DHT testnet,
//! and LAN beacons kept on the loopback interface.

use moss::{Config, Event, Node};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True once `cond` holds, false after 45 s.
fn waited(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(45);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    assert!(waited(cond), "timed out waiting for: {what}");
}

/// What a node that did not meet its peer went through: its host events,
/// handshake counters and discovery figures (for a failure's message).
fn story(name: &str, n: &Node) -> String {
    let events: Vec<Event> = n.events().try_iter().collect();
    let counters = n.stats().map(|s| {
        let c = s.counters;
        (
            c.handshakes_initiated,
            c.handshakes_completed,
            c.handshakes_failed,
        )
    });
    let discovery = serde_json::to_string(&n.discovery_stats()).unwrap_or_default();
    format!(
        "\n{name} at {}: events {events:?}\n  handshakes (initiated, completed, failed) {counters:?}\n  discovery {discovery}",
        n.local_addr()
    )
}

/// A free loopback port, never one handed out before in this process (a
/// just-released port can come back from the next `bind(0)`).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if !given.contains(&port) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port");
}

fn node(mesh: &str, json: &str) -> Node {
    let cfg = Config::from_json(json).unwrap();
    Node::builder(mesh)
        .config(cfg)
        .bind("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap()
}

struct Tracker(Child);

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_tracker(port: u16) -> Tracker {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../discovery/tests/js");
    assert!(
        js.join("node_modules/bittorrent-tracker").exists(),
        "bittorrent-tracker is not installed: run discovery/scripts/install-test-deps.sh"
    );
    let mut child = Command::new("node")
        .arg("tracker-server.mjs")
        .arg(port.to_string())
        .arg("1")
        .current_dir(&js)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node is installed");
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    assert!(line.starts_with("READY"), "tracker said {line:?}");
    Tracker(child)
}

fn percent(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02x}")).collect()
}

/// Announces `port` for `infohash` the way an ordinary BitTorrent client
/// does (BEP 3 over HTTP), so the tracker hands that address to Moss nodes.
fn bittorrent_client_announce(tracker: u16, infohash: &[u8; 20], port: u16) {
    let path = format!(
        "/announce?info_hash={}&peer_id={}&port={port}&uploaded=0&downloaded=0&left=1000&compact=1&event=started",
        percent(infohash),
        percent(b"-qB4650-abcdefghijkl")
    );
    let mut s = TcpStream::connect(("127.0.0.1", tracker)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    assert!(resp.starts_with(b"HTTP/1.1 200") || resp.starts_with(b"HTTP/1.0 200"));
}

#[test]
fn two_nodes_meet_through_a_real_tracker_and_a_bittorrent_client_is_filtered() {
    let port = free_port();
    let _tracker = start_tracker(port);
    let mesh = format!("tracker-test-{port}");
    // A plain BitTorrent peer announcing the same infohash: a UDP socket that
    // answers anything with junk, never a Moss handshake.
    let infohash = moss_crypto::MeshKeys::derive(&mesh, None).infohash;
    let bt = UdpSocket::bind("127.0.0.1:0").unwrap();
    bt.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let bt_port = bt.local_addr().unwrap().port();
    bittorrent_client_announce(port, &infohash, bt_port);
    let json = format!(
        r#"{{"trackers":["udp://127.0.0.1:{port}/announce","http://127.0.0.1:{port}/announce"],
            "announce_interval_sec":1,"dht_enabled":false,"lan_discovery_enabled":false,
            "security":{{"handshake_timeout_sec":2}}}}"#
    );
    let a = node(&mesh, &json);
    let b = node(&mesh, &json);
    wait_for("a and b connected through the tracker", || {
        a.peer_count() == 1 && b.peer_count() == 1
    });
    // The BitTorrent peer was dialled and got Moss handshakes it cannot read.
    let mut buf = [0u8; 2048];
    let mut got_handshake = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !got_handshake {
        if let Ok((n, from)) = bt.recv_from(&mut buf) {
            got_handshake = n >= 32;
            bt.send_to(
                b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
                from,
            )
            .unwrap();
        }
    }
    assert!(got_handshake, "the tracker's non-Moss peer was dialled");
    wait_for("the non-Moss peer's dial failed", || {
        a.stats().unwrap().counters.handshakes_failed
            + b.stats().unwrap().counters.handshakes_failed
            >= 1
    });
    assert_eq!(
        a.peer_count(),
        1,
        "the BitTorrent client never became a peer"
    );
    let announced = a
        .events()
        .try_iter()
        .any(|e| matches!(e, Event::TrackerAnnounce { .. }));
    assert!(announced, "tracker announce event (id 5)");
    let ds = a.discovery_stats().unwrap();
    assert!(serde_json::to_string(&ds).unwrap().contains("127.0.0.1"));
}

#[test]
fn two_nodes_meet_through_a_local_mainline_dht() {
    let testnet = mainline::Testnet::builder(5)
        .build()
        .expect("DHT testnet on 127.0.0.1");
    let bootstrap = serde_json::to_string(&testnet.bootstrap).unwrap();
    let json = format!(
        r#"{{"trackers":[],"lan_discovery_enabled":false,"dht_enabled":true,"dht_bootstrap":{bootstrap},"announce_interval_sec":1}}"#
    );
    let mesh = format!("dht-test-{}", free_port());
    let a = node(&mesh, &json);
    let b = node(&mesh, &json);
    // Both find each other in the same lookup round and dial at once:
    // crossing dials that must leave one session, not none (the DHT
    // offers each address once per 5 minutes, so a lost pair never meets).
    let met = waited(|| a.peer_count() == 1 && b.peer_count() == 1);
    assert!(
        met,
        "a and b did not connect through the DHT in 45 s{}{}",
        story("a", &a),
        story("b", &b)
    );
}

#[test]
fn two_nodes_meet_through_lan_beacons() {
    let lan_port = free_port();
    let json = format!(
        r#"{{"trackers":[],"dht_enabled":false,"lan_discovery_enabled":true,"lan_discovery_port":{lan_port},
            "lan_discovery_ms":200,"lan_interfaces":["127.0.0.1"]}}"#
    );
    let mesh = format!("lan-test-{lan_port}");
    let a = node(&mesh, &json);
    let b = node(&mesh, &json);
    // A node of another mesh on the same beacon port is never dialled into ours.
    let other = node("another-mesh", &json);
    wait_for("a and b connected through LAN beacons", || {
        a.peer_count() == 1 && b.peer_count() == 1
    });
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(other.peer_count(), 0);
    assert_eq!(a.peer_count(), 1);
    let sub = a.subscribe("lan").unwrap();
    wait_for("b sees a's subscription", || {
        b.stats()
            .unwrap()
            .peers
            .iter()
            .any(|p| p.topics.iter().any(|t| t == "lan"))
    });
    b.publish("lan", b"found you").unwrap();
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(10))
            .map(|m| m.into_data()),
        Some(b"found you".to_vec())
    );
}
