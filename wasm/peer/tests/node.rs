//! The browser peer's node in headless Chromium (wasm-bindgen-test): two
//! `MossNode`s wired channel to channel in memory, on virtual time, plus
//! the exported API on the page's own clock and randomness.

use moss_wasm_peer::clock::Monotonic;
use moss_wasm_peer::error::{
    ERR_CONFIG_INVALID, ERR_INVALID_ARGUMENT, ERR_INVALID_CHANNEL, ERR_MESSAGE_TOO_LARGE,
    ERR_NO_PEERS,
};
use moss_wasm_peer::{MossEvent, MossNode, PeerError};
use std::time::Duration;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// Both ends of one link: node `i` knows it as channel `ch[i]`.
struct Pair {
    n: [MossNode; 2],
    ch: [u32; 2],
    now: Duration,
    events: [Vec<MossEvent>; 2],
}

fn node(mesh: &str, psk: Option<&[u8]>, seed: u8) -> MossNode {
    MossNode::create_at(mesh, psk, "", Some(&[seed; 32]), Duration::ZERO).unwrap()
}

impl Pair {
    fn new(a: MossNode, b: MossNode) -> Self {
        Self {
            n: [a, b],
            ch: [3, 9],
            now: Duration::ZERO,
            events: [Vec::new(), Vec::new()],
        }
    }

    /// Two nodes of mesh "m", node 0 dialled node 1, sessions up.
    fn connected(subscribe: &[&str]) -> Self {
        let mut p = Self::new(node("m", None, 1), node("m", None, 2));
        for n in &mut p.n {
            for t in subscribe {
                n.subscribe_at(Duration::ZERO, t).unwrap();
            }
        }
        let ch = p.ch[0];
        p.n[0].connect_at(p.now, ch);
        p.run(50);
        p
    }

    /// Moves datagrams both ways and advances time, `steps` times 10 ms.
    fn run(&mut self, steps: usize) {
        for _ in 0..steps {
            for i in 0..2 {
                self.n[i].timeout_at(self.now);
                while let Some((c, mut bytes)) = self.n[i].next_transmit() {
                    assert_eq!(c, self.ch[i], "sent on its own channel");
                    let j = 1 - i;
                    let ch = self.ch[j];
                    self.n[j].datagram_at(self.now, ch, &mut bytes);
                }
                while let Some(e) = self.n[i].poll_event() {
                    self.events[i].push(e);
                }
            }
            self.now += Duration::from_millis(10);
        }
    }

    fn kinds(&self, i: usize) -> Vec<String> {
        self.events[i].iter().map(|e| e.kind()).collect()
    }
}

#[wasm_bindgen_test]
fn two_nodes_on_channels_meet_and_exchange_messages() {
    let mut p = Pair::connected(&["chat"]);
    assert_eq!(p.kinds(0), ["join"]);
    assert_eq!(p.kinds(1), ["join"]);
    assert_eq!(p.events[0][0].peer(), p.n[1].peer_id());
    assert_eq!(p.events[0][0].channel(), Some(p.ch[0]));
    let peers: serde_json::Value = serde_json::from_str(&p.n[1].peers_json()).unwrap();
    assert_eq!(peers[0]["channel"], p.ch[1]);
    assert_eq!(peers[0]["outbound"], false);
    let now = p.now;
    p.n[0].publish_at(now, "chat", b"hello").unwrap();
    p.run(5);
    let m = p.events[1]
        .iter_mut()
        .find(|e| e.kind() == "message")
        .unwrap();
    assert_eq!(m.topic(), "chat");
    assert_eq!(m.take_data(), b"hello");
    assert_eq!(m.peer(), p.n[0].peer_id());
}

#[wasm_bindgen_test]
fn a_closed_channel_ends_the_session_at_once() {
    let mut p = Pair::connected(&[]);
    let ch = p.ch[0];
    assert_eq!(p.n[0].node().peer_count(), 1);
    p.n[0].channel_closed(ch);
    assert_eq!(p.n[0].node().peer_count(), 0);
    let e = p.n[0].poll_event().unwrap();
    assert_eq!(
        (e.kind().as_str(), e.reason().as_str()),
        ("leave", "closed")
    );
    assert_eq!(p.n[0].host_stats().channels_closed, 1);
}

#[wasm_bindgen_test]
fn shutdown_tells_the_peer() {
    let mut p = Pair::connected(&[]);
    p.n[0].shutdown();
    p.run(2);
    assert_eq!(p.n[1].node().peer_count(), 0);
    assert!(p.events[1]
        .iter()
        .any(|e| e.kind() == "leave" && e.reason() == "closed"));
}

#[wasm_bindgen_test]
fn wrong_psk_or_other_mesh_gives_no_session() {
    for b in [node("m", Some(&[7; 32]), 2), node("other", None, 2)] {
        let a = node("m", None, 1);
        assert_ne!(a.room(), b.room(), "another rendezvous room");
        let mut p = Pair::new(a, b);
        let ch = p.ch[0];
        p.n[0].connect_at(p.now, ch);
        p.run(100);
        assert_eq!(p.n[0].node().peer_count() + p.n[1].node().peer_count(), 0);
        assert!(
            p.n[1].node().stats().drops.total() > 0,
            "handshakes dropped and counted"
        );
        assert!(!p.kinds(0).contains(&"join".to_string()));
    }
}

#[wasm_bindgen_test]
fn junk_datagrams_are_dropped_and_counted() {
    let mut n = node("m", None, 1);
    let mut x: u32 = 0x1234_5678;
    let mut total = 0;
    for len in [
        0usize, 1, 3, 15, 16, 17, 31, 64, 100, 1200, 1500, 9000, 65536,
    ] {
        for _ in 0..20 {
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            n.datagram_at(Duration::from_millis(1), 5, &mut b);
            total += 1;
        }
    }
    n.junk();
    let s = n.node().stats();
    assert_eq!(s.datagrams_in, total);
    assert_eq!(
        s.drops.total(),
        total,
        "every junk datagram dropped and counted"
    );
    assert_eq!(n.node().session_count(), 0);
    assert_eq!(n.host_stats().junk_dropped, 1);
    let st: serde_json::Value = serde_json::from_str(&n.stats_json()).unwrap();
    assert_eq!(st["datagrams_in"], total);
    assert_eq!(st["host"]["junk_dropped"], 1);
}

#[wasm_bindgen_test]
fn errors_carry_the_c_abi_codes() {
    let code = |r: Result<MossNode, PeerError>| r.err().map(|e| e.code());
    assert_eq!(
        code(MossNode::create_at("", None, "", None, Duration::ZERO)),
        Some(ERR_CONFIG_INVALID)
    );
    assert_eq!(
        code(MossNode::create_at(
            "m",
            None,
            "{nope",
            None,
            Duration::ZERO
        )),
        Some(ERR_CONFIG_INVALID)
    );
    assert_eq!(
        code(MossNode::create_at(
            "m",
            Some(&[1; 31]),
            "",
            None,
            Duration::ZERO
        )),
        Some(ERR_INVALID_ARGUMENT)
    );
    assert_eq!(
        code(MossNode::create_at(
            "m",
            None,
            "",
            Some(&[1; 33]),
            Duration::ZERO
        )),
        Some(ERR_INVALID_ARGUMENT)
    );
    let mut n = node("m", None, 1);
    assert_eq!(
        n.subscribe_at(Duration::ZERO, "").unwrap_err().code(),
        ERR_INVALID_CHANNEL
    );
    let t = Duration::ZERO;
    assert_eq!(
        n.publish_at(t, "chat", b"x").unwrap_err().code(),
        ERR_NO_PEERS
    );
    assert_eq!(
        n.publish_at(t, "", b"x").unwrap_err().code(),
        ERR_INVALID_CHANNEL
    );
    let big = vec![0u8; 2 << 20];
    assert_eq!(
        n.publish_at(t, "chat", &big).unwrap_err().code(),
        ERR_MESSAGE_TOO_LARGE
    );
}

#[wasm_bindgen_test]
fn the_exported_api_runs_on_the_page_clock_and_randomness() {
    let mut a = MossNode::new("m", None, None, None).unwrap();
    let b = MossNode::new("m", None, Some("{}".into()), None).unwrap();
    assert_ne!(
        a.peer_id(),
        b.peer_id(),
        "fresh identities from crypto.getRandomValues"
    );
    assert_eq!(a.peer_id().len(), 64);
    assert_eq!(a.room().len(), 40);
    assert_eq!(a.room(), b.room());
    let kept = MossNode::new("m", None, None, Some(a.identity_seed())).unwrap();
    assert_eq!(
        kept.peer_id(),
        a.peer_id(),
        "a kept seed is the same identity"
    );
    assert!(a.next_timeout_ms() >= 0.0);
    a.timeout();
    a.connect(4);
    let d = a.poll_transmit().expect("a handshake on channel 4");
    assert_eq!(a.transmit_channel(), 4);
    assert!(!d.is_empty());
    let e = MossNode::new("m", None, Some("{\"security\": 5}".into()), None)
        .err()
        .unwrap();
    assert_eq!(e.code(), ERR_CONFIG_INVALID);
    assert!(e.message().contains("security"), "{}", e.message());
}

#[wasm_bindgen_test]
fn the_clock_never_goes_back() {
    let mut m = Monotonic::default();
    assert_eq!(m.at(1500.0), Duration::from_millis(1500));
    assert_eq!(m.at(1000.0), Duration::from_millis(1500));
    assert_eq!(m.at(f64::NAN), Duration::from_millis(1500));
    assert_eq!(m.at(2000.0), Duration::from_secs(2));
    assert!(m.now() >= Duration::from_secs(2));
}
