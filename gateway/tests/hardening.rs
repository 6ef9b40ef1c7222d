//! Findings 5-8 of the reliability issue, reproduced against the real
//! `moss-gateway` binary on loopback: the HTTP server under slow-loris and
//! idle floods, strict mesh ids escaped where echoed, and on-demand meshes
//! kept off public trackers and the DHT. (Finding 5, the mesh cap under
//! concurrency, is the `meshes` unit test: it counts built nodes.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Gateway {
    child: Child,
    http: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an offline gateway (no trackers, DHT or LAN unless `extra` says
/// otherwise through `-config`) and waits until its API answers.
fn start(extra: &[&str]) -> Gateway {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let http = format!("127.0.0.1:{port}");
    let mut args = vec![
        "-mesh",
        "hardening",
        "-http",
        &http,
        "-listen-port",
        "0",
        "-lan=false",
    ];
    if !extra.contains(&"-config") {
        args.extend(["-trackers=false", "-dht=false"]);
    }
    args.extend(extra);
    let child = Command::new(env!("CARGO_BIN_EXE_moss-gateway"))
        .args(&args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn moss-gateway");
    let g = Gateway { child, http };
    let deadline = Instant::now() + Duration::from_secs(20);
    while request(&g.http, "/api/stats").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "gateway did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    g
}

/// One GET with `Connection: close`; (status, body).
fn request(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_string()))
}

fn stats(g: &Gateway, meshid: &str) -> serde_json::Value {
    let (status, body) = request(&g.http, &format!("/api/stats?meshid={meshid}")).expect("stats");
    assert_eq!(status, 200, "{meshid}: {body}");
    serde_json::from_str(&body).expect("json")
}

fn open_fds(g: &Gateway) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", g.child.id()))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn api_answers_under_slow_loris_and_stalled_heads_time_out() {
    let g = start(&["-http-header-timeout-sec", "1"]);
    // 50 connections that send half a request head and then nothing.
    let mut loris: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(&g.http).expect("connect");
            s.write_all(b"GET /api/stats HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("write");
            s
        })
        .collect();
    let (status, _) = request(&g.http, "/api/stats").expect("API unreachable under slow-loris");
    assert_eq!(status, 200);
    // The stalled heads are dropped by the header timeout (EOF or reset).
    let mut b = [0u8; 512];
    for s in &mut loris {
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        match s.read(&mut b) {
            Ok(0) => {}
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "stalled head still open: {e}"
            ),
            Ok(n) => assert!(
                String::from_utf8_lossy(&b[..n]).starts_with("HTTP/1.1 408"),
                "{}",
                String::from_utf8_lossy(&b[..n])
            ),
        }
    }
    // A long response (server-sent events) is not cut by the header timeout:
    // two pushes are SSE_PERIOD (2 s) apart.
    let mut sse = TcpStream::connect(&g.http).expect("connect");
    sse.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    write!(sse, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut got = String::new();
    while got.matches("event: stats").count() < 2 {
        let n = sse.read(&mut b).expect("SSE read");
        assert!(n > 0, "SSE stream closed: {got}");
        got.push_str(&String::from_utf8_lossy(&b[..n]));
    }
}

#[test]
fn idle_flood_is_capped_and_evicted() {
    let cap = 16;
    // A long header timeout: only eviction can free slots quickly.
    let g = start(&[
        "-http-max-conns",
        &cap.to_string(),
        "-http-header-timeout-sec",
        "60",
    ]);
    let base = open_fds(&g);
    // Far more idle connections than the cap.
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(&g.http).expect("connect"))
        .collect();
    // The API still answers: a new client evicts the oldest connection that
    // never sent a request.
    let (status, _) = request(&g.http, "/api/stats").expect("API unreachable under an idle flood");
    assert_eq!(status, 200);
    let held = open_fds(&g);
    // The cap, plus at most one accepted connection waiting for its slot.
    assert!(
        held <= base + cap + 1,
        "{held} fds open, {base} before, cap {cap}"
    );
    // The oldest idle connection was closed by the server, not held.
    let s = &mut idle[0];
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut b = [0u8; 64];
    assert!(
        matches!(s.read(&mut b), Ok(0) | Err(_)),
        "oldest idle connection still open"
    );
}

#[test]
fn mesh_ids_are_strict_and_escaped_where_echoed() {
    let g = start(&["-max-meshes", "4"]);
    for bad in [
        "%ff%fe",
        "%fe%ff",
        "a%0Ab",
        "%E2%80%AEevil",
        "x%E2%81%A6",
        "%EF%BB%BF",
        "",
    ] {
        let (status, body) = request(&g.http, &format!("/api/stats?meshid={bad}")).expect("answer");
        assert_eq!(status, 400, "{bad}: {body}");
        let err: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
        assert!(
            err["error"]
                .as_str()
                .is_some_and(|e| e.contains("invalid mesh id")),
            "{body}"
        );
    }
    let long = "m".repeat(129);
    assert_eq!(
        request(&g.http, &format!("/api/stats?meshid={long}")).map(|r| r.0),
        Some(400)
    );
    // Quotes, backslashes, HTML and dots are valid, and escaped when echoed.
    let tricky = "q%22%5C%3Cb%3E..%2F";
    let doc = stats(&g, tricky);
    assert_eq!(doc["node"]["mesh_id"], "q\"\\<b>../");
    let (_, metrics) = request(&g.http, "/metrics").expect("metrics");
    assert!(
        metrics.contains(r#"moss_peers{mesh="q\"\\<b>../",backend="#),
        "{metrics}"
    );
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        assert_eq!(
            line.matches('"').count() - line.matches("\\\"").count(),
            line.matches('=').count() * 2,
            "{line}"
        );
    }
}

#[test]
fn on_demand_meshes_stay_off_public_discovery_unless_named() {
    // Trackers and DHT on in the gateway's config, all pointing at a closed
    // loopback port: nothing leaves the machine.
    let path = std::env::temp_dir().join(format!("moss-hardening-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"trackers":["udp://127.0.0.1:9/announce"],"dht_enabled":true,"dht_bootstrap":["127.0.0.1:9"],"lan_discovery_enabled":false}"#,
    )
    .expect("write config");
    let config = path.to_string_lossy().into_owned();
    let g = start(&["-config", &config, "-public-meshes", "open,other"]);
    let discovery = |mesh: &str| stats(&g, mesh)["node"]["discovery"].clone();
    let primary = discovery("hardening");
    assert_eq!(
        primary["trackers"].as_array().map(Vec::len),
        Some(1),
        "{primary}"
    );
    assert!(!primary["dht"].is_null(), "{primary}");
    let closed = discovery("closed");
    assert!(
        closed["trackers"].as_array().is_none_or(Vec::is_empty),
        "{closed}"
    );
    assert!(closed["dht"].is_null(), "{closed}");
    let open = discovery("open");
    assert_eq!(open["trackers"].as_array().map(Vec::len), Some(1), "{open}");
    assert!(!open["dht"].is_null(), "{open}");
    let _ = std::fs::remove_file(path);
}
