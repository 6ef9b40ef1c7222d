//! The product description's offline two-node demo, run as real processes
//! on loopback: two `moss-gateway` binaries with a static peer and trackers
//! off connect, and a message published into the mesh reaches both.

mod common;

use common::{free_udp_port, get, json, peer_count, spawn, sse_until};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

#[test]
fn two_gateways_connect_and_relay_a_message() {
    let a = spawn::<&str>(&[]);
    let static_peer = format!("127.0.0.1:{}", a.udp);
    let b = spawn(&["-static", &static_peer]);
    eventually("gateway A up", || peer_count(&a).is_some());
    eventually("A and B connected", || {
        peer_count(&a) == Some(1) && peer_count(&b) == Some(1)
    });

    // A test client joins the mesh through B and publishes on "chat".
    let client = moss::Node::builder("local")
        .config(
            moss::Config::from_json(
                r#"{"trackers":[],"lan_discovery_enabled":false,"dht_enabled":false}"#,
            )
            .unwrap(),
        )
        .bind("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    client
        .connect_wait(&format!("127.0.0.1:{}", b.udp), Duration::from_secs(10))
        .unwrap();
    eventually("client learns B's subscription", || {
        client
            .stats()
            .map(|s| s.peers.iter().any(|p| p.topics.iter().any(|t| t == "chat")))
            .unwrap_or(false)
    });
    client.publish("chat", b"hello mesh").unwrap();
    for g in [&b, &a] {
        eventually("message shown by the gateway", || {
            json(&g.http, "/api/messages?topic=chat")
                .and_then(|v| v.as_array().cloned())
                .is_some_and(|list| {
                    list.iter().any(|m| {
                        m["text"] == "hello mesh" && m["from"] == client.public_key().to_hex()
                    })
                })
        });
    }
    let stats = json(&a.http, "/api/stats").unwrap();
    assert!(stats["node"]["counters"]["messages_delivered"].as_u64() >= Some(1));
    // The birthday-spray sockets' counters are reported; two loopback
    // gateways never spray (the NAT lab checks a won round behind a real
    // symmetric NAT, nat/scripts/punch-lab.sh).
    let spray = &stats["node"]["spray"];
    for key in ["rounds", "sockets_opened", "won", "foreign", "datagrams_in"] {
        assert_eq!(spray[key].as_u64(), Some(0), "spray.{key}: {stats}");
    }
}

#[test]
fn http_api_is_read_only_cors_enabled_and_bounded() {
    let g = spawn(&["-max-meshes", "2"]);
    eventually("gateway up", || peer_count(&g).is_some());
    let (status, body) = get(&g.http, "/api/stats?meshid=second").unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&g.http, "/api/stats?meshid=third").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("mesh limit"));
    let (status, _) = get(&g.http, "/api/nope").unwrap();
    assert_eq!(status, 404);
    let (status, body) = get(&g.http, "/api/messages?topic=other").unwrap();
    assert_eq!(status, 404, "{body}");
    let metrics = get(&g.http, "/metrics").unwrap().1;
    assert!(
        metrics.contains("moss_drops_total{mesh=\"local\",reason=\"replay\"} 0"),
        "{metrics}"
    );
    // CORS and private-network headers on a preflight.
    let mut s = TcpStream::connect(&g.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "OPTIONS /api/stats HTTP/1.1\r\nHost: x\r\nOrigin: https://explorer.example\r\nAccess-Control-Request-Private-Network: true\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let lower = resp.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 204"), "{resp}");
    assert!(lower.contains("access-control-allow-origin: *"));
    assert!(lower.contains("access-control-allow-private-network: true"));
    // Server-sent events push a stats document.
    assert!(sse_until(&g.http, "data: {").contains("event: stats"));
}

#[test]
fn bad_flags_exit_with_a_message_naming_the_flag() {
    for (args, needle) in [
        (vec!["-listen-port", "70000"], "-listen-port"),
        (vec!["-trackers=maybe"], "-trackers"),
        (vec!["-static", "nope"], "static_peers"),
        (vec!["-unknown"], "-unknown"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_moss-gateway"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn two_gateways_converge_to_the_same_chain() {
    let a = spawn(&["-epoch-sec", "2", "-k-anon", "1"]);
    let static_peer = format!("127.0.0.1:{}", a.udp);
    let b = spawn(&["-epoch-sec", "2", "-k-anon", "1", "-static", &static_peer]);
    eventually("A and B connected", || {
        peer_count(&a) == Some(1) && peer_count(&b) == Some(1)
    });
    // A's event stream carries the node's host events: B joining (id 1).
    // The gateway records the event on its own thread, which may run after
    // the peer count went up: read until it comes (it used to read only
    // the first period, a race under load).
    let text = sse_until(&a.http, ",\"id\":1,\"detail\"");
    assert!(text.contains("event: node"), "{text}");
    // Only epochs that start after both are connected count: earlier ones
    // may be empty on both sides and agree trivially.
    let start_epoch = json(&a.http, "/api/stats")
        .and_then(|s| s["epoch"].as_u64())
        .unwrap_or(0);
    let mut agreed = None;
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && agreed.is_none() {
        std::thread::sleep(Duration::from_millis(250));
        let (Some(ca), Some(cb)) = (json(&a.http, "/api/chain"), json(&b.http, "/api/chain"))
        else {
            continue;
        };
        let (Some(ca), Some(cb)) = (ca.as_array().cloned(), cb.as_array().cloned()) else {
            continue;
        };
        // An epoch both finalized after both were connected and contributing:
        // its state digest must be identical. Its epoch digest need not be:
        // that one also covers the previous link, and the epochs each
        // gateway finalized before they met differ (the test failed about
        // one run in four when it compared epoch digests: whenever the two
        // chains' first links held different states).
        for la in ca
            .iter()
            .rev()
            .filter(|l| l["epoch"].as_u64() > Some(start_epoch))
        {
            if let Some(lb) = cb.iter().find(|l| l["epoch"] == la["epoch"]) {
                assert_eq!(
                    la["state_digest"],
                    lb["state_digest"],
                    "epoch {} (from {start_epoch}): A {} B {}; A {:?} B {:?}",
                    la["epoch"],
                    serde_json::Value::Array(ca.clone()),
                    serde_json::Value::Array(cb.clone()),
                    json(&a.http, "/api/stats"),
                    json(&b.http, "/api/stats"),
                );
                agreed = Some(la.clone());
                break;
            }
        }
    }
    let link = agreed.expect("both gateways finalize a common epoch with one state");
    assert_eq!(link["state_digest"].as_str().map(str::len), Some(64));
    assert_eq!(link["epoch_digest"].as_str().map(str::len), Some(64));
    let stats = json(&a.http, "/api/stats").unwrap();
    for field in [
        "epoch",
        "node_count_estimate",
        "contributors",
        "k_anon_ok",
        "nat_histogram",
        "epoch_digest",
        "prev_digest",
    ] {
        assert!(
            stats.get(field).is_some(),
            "/api/stats lacks {field}: {stats}"
        );
    }
    let (status, _) = get(&a.http, "/api/chain?limit=zero").unwrap();
    assert_eq!(status, 400);
}

#[test]
fn two_gateways_without_static_peers_find_each_other_on_the_lan() {
    // Default discovery, except: no public trackers or DHT (no internet in
    // tests) and beacons kept on the loopback interface.
    let lan_port = free_udp_port().to_string();
    let lan = [
        "-lan=true",
        "-lan-interface",
        "127.0.0.1",
        "-lan-port",
        &lan_port,
    ];
    let a = spawn(&lan);
    let b = spawn(&lan);
    eventually("A and B connected via LAN beacons", || {
        peer_count(&a) == Some(1) && peer_count(&b) == Some(1)
    });
}
