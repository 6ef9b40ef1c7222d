//! `moss-signal` as a real process on loopback, driven by real WebSocket
//! clients: presence, routing, every limit, and bad input closed with a code
//! and reason while the server and its other clients carry on.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Longest wait for any one expected event.
const WAIT: Duration = Duration::from_secs(10);

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on an ephemeral port and reads the port from its log.
fn start(extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_moss-signal"))
        .args(["-addr", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn moss-signal");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("ws://").nth(1) {
                let _ = tx.send(rest.trim_end_matches("/signal").to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(WAIT)
        .expect("moss-signal did not report its address");
    Server { child, addr }
}

impl Server {
    async fn join(&self, room: &str, id: &str) -> Ws {
        let url = format!("ws://{}/signal?room={room}&id={id}", self.addr);
        tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("connect")
            .0
    }

    /// Joins and consumes the `peers` message, returning the ids in it.
    async fn peer(&self, room: &str, id: &str) -> (Ws, Vec<String>) {
        let mut ws = self.join(room, id).await;
        let m = next(&mut ws).await;
        assert_eq!(m["type"], "peers", "{m}");
        let ids = m["peers"]
            .as_array()
            .expect("peers")
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect();
        (ws, ids)
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).expect("connect http");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).expect("read");
        let status = buf
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (
            status,
            buf.split_once("\r\n\r\n")
                .map(|b| b.1.to_string())
                .unwrap_or_default(),
        )
    }

    /// The value of one `/metrics` sample, by its full name and labels.
    fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{body}"))
    }
}

impl Server {
    /// `moss_signal_closed_total` for one cause.
    fn closed(&self, reason: &str, code: u16) -> f64 {
        self.metric(&format!(
            r#"moss_signal_closed_total{{reason="{reason}",code="{code}"}}"#
        ))
    }
}

/// The next text message as JSON (pings skipped).
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no message in time");
        match m.expect("stream ended").expect("read") {
            Message::Text(t) => return serde_json::from_str(&t).expect("server sent JSON"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Reads until the server's close frame; returns its code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no close in time");
        match m {
            Some(Ok(Message::Close(Some(f)))) => {
                // Keep reading so that our reply goes out (the closing handshake).
                let _ =
                    tokio::time::timeout(WAIT, async { while ws.next().await.is_some() {} }).await;
                return (u16::from(f.code), f.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("read error before close frame: {e}"),
        }
    }
}

async fn send(ws: &mut Ws, v: &str) {
    ws.send(Message::text(v)).await.expect("send");
}

#[tokio::test]
async fn presence_and_routing() {
    let s = start(&[]);
    let (mut a, peers) = s.peer("ab12", "a").await;
    assert!(peers.is_empty());
    let (mut b, peers) = s.peer("ab12", "b").await;
    assert_eq!(peers, ["a"]);
    assert_eq!(next(&mut a).await, json!({"type": "join", "from": "b"}));
    let (mut c, mut peers) = s.peer("ab12", "c").await;
    peers.sort();
    assert_eq!(peers, ["a", "b"]);
    assert_eq!(next(&mut a).await, json!({"type": "join", "from": "c"}));
    assert_eq!(next(&mut b).await, json!({"type": "join", "from": "c"}));
    let (mut other, _) = s.peer("cd34", "a").await;

    // Directed, with a forged `from` that the server overwrites.
    send(
        &mut a,
        r#"{"type":"offer","from":"c","to":"c","data":{"sdp":"v=0"}}"#,
    )
    .await;
    // Broadcast: everyone else in the room, not the sender, not other rooms.
    send(&mut a, r#"{"type":"candidate","data":"x"}"#).await;
    assert_eq!(
        next(&mut c).await,
        json!({"type": "offer", "from": "a", "to": "c", "data": {"sdp": "v=0"}})
    );
    let bcast = json!({"type": "candidate", "from": "a", "data": "x"});
    assert_eq!(next(&mut c).await, bcast);
    // b's first message is the broadcast: the directed offer never reached it.
    assert_eq!(next(&mut b).await, bcast);
    // a's next message is b's reply, not its own broadcast.
    send(&mut b, r#"{"type":"answer","to":"a"}"#).await;
    assert_eq!(
        next(&mut a).await,
        json!({"type": "answer", "from": "b", "to": "a"})
    );
    // To nobody in the room: dropped and counted; the sender stays.
    send(&mut a, r#"{"type":"offer","to":"ghost"}"#).await;
    send(&mut a, r#"{"type":"after","to":"b"}"#).await;
    assert_eq!(next(&mut b).await["type"], "after");
    assert_eq!(s.metric("moss_signal_unroutable_total"), 1.0);

    // Leave reaches the rest of the room only.
    c.close(None).await.expect("close");
    assert_eq!(next(&mut a).await, json!({"type": "leave", "from": "c"}));
    assert_eq!(next(&mut b).await, json!({"type": "leave", "from": "c"}));
    let (mut other2, peers) = s.peer("cd34", "b").await;
    assert_eq!(peers, ["a"]);
    assert_eq!(next(&mut other).await, json!({"type": "join", "from": "b"}));
    send(&mut other2, r#"{"type":"hello"}"#).await;
    assert_eq!(next(&mut other).await["from"], "b");

    assert_eq!(s.get("/healthz"), (200, "ok".to_string()));
    assert_eq!(s.metric("moss_signal_rooms"), 2.0);
    assert_eq!(s.metric("moss_signal_peers"), 4.0);
    assert_eq!(s.metric("moss_signal_joins_total"), 5.0);
    assert_eq!(s.get("/nope").0, 404);
}

#[tokio::test]
async fn join_limits_close_with_codes() {
    let s = start(&["-max-rooms", "2", "-max-room-peers", "2", "-max-peers", "4"]);
    for (query_room, query_id) in [("a%2Fb", "x"), ("", "x"), ("r", ""), ("r", "%3Cb%3E")] {
        let mut ws = s.join(query_room, query_id).await;
        let (code, reason) = closed(&mut ws).await;
        assert_eq!(code, 4400, "{query_room:?} {query_id:?}: {reason}");
        assert!(reason.starts_with("bad "), "{reason}");
    }
    let (mut a, _) = s.peer("r", "a").await;
    // A duplicate id is refused; the first holder keeps its place.
    let mut dup = s.join("r", "a").await;
    assert_eq!(
        closed(&mut dup).await,
        (4409, "duplicate id in room".into())
    );
    let (mut b, _) = s.peer("r", "b").await;
    assert_eq!(next(&mut a).await, json!({"type": "join", "from": "b"}));
    let mut full = s.join("r", "c").await;
    assert_eq!(closed(&mut full).await, (1013, "room full".into()));
    let (_x, _) = s.peer("s", "x").await;
    let mut third = s.join("t", "z").await;
    assert_eq!(closed(&mut third).await, (1013, "too many rooms".into()));
    let (_y, _) = s.peer("s", "y").await;
    let mut over = s.join("s", "w").await;
    assert_eq!(closed(&mut over).await, (1013, "server full".into()));
    // The room still works.
    send(&mut b, r#"{"type":"offer","to":"a"}"#).await;
    assert_eq!(next(&mut a).await["from"], "b");
    assert_eq!(s.closed("bad_room", 4400), 2.0);
    assert_eq!(s.closed("bad_id", 4400), 2.0);
    assert_eq!(s.closed("duplicate_id", 4409), 1.0);
    assert_eq!(s.closed("server_full", 1013), 1.0);
}

#[tokio::test]
async fn bad_input_is_closed_with_a_reason_and_others_carry_on() {
    // 0.05 envelopes/s: the burst of 5 cannot refill while the test runs.
    let s = start(&["-max-envelope", "256", "-rate", "0.05", "-burst", "5"]);
    let (mut a, _) = s.peer("room", "a").await;
    let big_json = format!(r#"{{"type":"x","data":"{}"}}"#, "y".repeat(300));
    let huge = "z".repeat(64 * 1024);
    let cases: [(Message, u16, &str); 6] = [
        (Message::text("not json"), 1007, "malformed envelope"),
        (
            Message::text(r#"{"type":"join"}"#),
            1007,
            "malformed envelope",
        ),
        (Message::text(r#"{"to":"a"}"#), 1007, "malformed envelope"),
        (Message::text(big_json), 1009, "envelope too big"),
        (Message::text(huge), 1009, "envelope too big"),
        (
            Message::binary(vec![1u8, 2, 3]),
            1003,
            "binary messages are not accepted",
        ),
    ];
    for (i, (msg, code, reason)) in cases.into_iter().enumerate() {
        let id = format!("bad{i}");
        let (mut bad, _) = s.peer("room", &id).await;
        assert_eq!(next(&mut a).await, json!({"type": "join", "from": id}));
        bad.send(msg).await.expect("send");
        assert_eq!(
            closed(&mut bad).await,
            (code, reason.to_string()),
            "case {i}"
        );
        assert_eq!(next(&mut a).await, json!({"type": "leave", "from": id}));
    }
    // Rate: the sixth envelope in a burst of five closes the connection.
    let (mut fast, _) = s.peer("room", "fast").await;
    assert_eq!(next(&mut a).await["type"], "join");
    for _ in 0..6 {
        if fast
            .send(Message::text(r#"{"type":"x","to":"a"}"#))
            .await
            .is_err()
        {
            break;
        }
    }
    for _ in 0..5 {
        assert_eq!(next(&mut a).await["from"], "fast");
    }
    assert_eq!(
        closed(&mut fast).await,
        (4429, "rate limit exceeded".into())
    );
    assert_eq!(next(&mut a).await, json!({"type": "leave", "from": "fast"}));
    // The server and its remaining client are unharmed.
    let (mut b, peers) = s.peer("room", "b").await;
    assert_eq!(peers, ["a"]);
    assert_eq!(next(&mut a).await["type"], "join");
    send(&mut b, r#"{"type":"offer","to":"a"}"#).await;
    assert_eq!(next(&mut a).await["from"], "b");
    assert_eq!(s.get("/healthz").0, 200);
    assert_eq!(s.closed("malformed", 1007), 3.0);
    assert_eq!(s.closed("oversize", 1009), 2.0);
    assert_eq!(s.closed("rate_limited", 4429), 1.0);
}

#[tokio::test]
async fn slow_reader_queue_overflow_is_dropped_and_counted() {
    let s = start(&["-queue", "2", "-rate", "100000", "-burst", "100000"]);
    // `slow` never reads: once its socket buffers fill, its queue of two
    // overflows and further copies are dropped.
    let (_slow, _) = s.peer("room", "slow").await;
    let (mut fast, _) = s.peer("room", "fast").await;
    let env = format!(
        r#"{{"type":"x","to":"slow","data":"{}"}}"#,
        "p".repeat(15 * 1024)
    );
    let mut dropped = 0.0;
    for round in 0..40 {
        for _ in 0..100 {
            send(&mut fast, &env).await;
        }
        dropped = s.metric("moss_signal_queue_dropped_total");
        if dropped > 0.0 {
            eprintln!("queue overflowed after {} envelopes", (round + 1) * 100);
            break;
        }
    }
    assert!(dropped > 0.0, "the slow reader's queue never overflowed");
    // The fast peer and the server still work.
    let (mut c, _) = s.peer("room", "c").await;
    assert_eq!(next(&mut fast).await, json!({"type": "join", "from": "c"}));
    send(&mut c, r#"{"type":"hi","to":"fast"}"#).await;
    assert_eq!(next(&mut fast).await["from"], "c");
}

#[tokio::test]
async fn silent_connection_is_closed_as_idle() {
    let s = start(&["-idle-sec", "1"]);
    let (mut quiet, _) = s.peer("room", "quiet").await;
    // Not reading means not answering the server's pings. Wait (bounded)
    // until the server counts the idle close, then read its close frame
    // while it still waits for our answer.
    for _ in 0..100 {
        if s.closed("idle", 1001) > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(closed(&mut quiet).await, (1001, "idle timeout".into()));
    assert_eq!(s.metric("moss_signal_peers"), 0.0);
}

#[test]
fn demo_dir_is_served_and_nothing_outside_it() {
    let dir = std::env::temp_dir().join(format!("moss-signal-demo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("demo")).unwrap();
    std::fs::write(dir.join("demo/index.html"), "<p>demo</p>").unwrap();
    std::fs::write(dir.join(".secret"), "no").unwrap();
    let s = start(&["-demo", dir.to_str().unwrap()]);
    assert_eq!(s.get("/demo/index.html"), (200, "<p>demo</p>".to_string()));
    assert_eq!(s.get("/demo/"), (200, "<p>demo</p>".to_string()));
    assert_eq!(s.get("/").0, 307, "/ goes to /demo/");
    assert_eq!(s.get("/.secret").0, 400);
    assert_eq!(s.get("/demo/nope.js").0, 404);
    // The signaling endpoints are still there.
    assert_eq!(s.get("/healthz"), (200, "ok".to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}
