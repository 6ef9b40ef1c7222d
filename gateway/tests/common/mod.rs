//! Helpers shared by the gateway's process tests: a `moss-gateway` child on
//! free loopback ports (killed on drop), and a minimal HTTP GET.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `moss-gateway`: its HTTP address, UDP port and command line.
pub struct Gateway {
    pub child: Child,
    pub http: String,
    pub udp: u16,
    pub args: Vec<String>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 right now and never handed out before in this
/// process (a just-released port can come back from the next `bind(0)`,
/// and two gateways on one port would collide).
fn fresh_port(bind: impl Fn() -> std::io::Result<u16>) -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..50 {
        let port = bind().expect("bind a loopback port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no fresh loopback port found");
}

/// A UDP port free on 127.0.0.1 right now (never one given before).
pub fn free_udp_port() -> u16 {
    fresh_port(|| {
        UdpSocket::bind("127.0.0.1:0")?
            .local_addr()
            .map(|a| a.port())
    })
}

fn free_tcp_port() -> u16 {
    fresh_port(|| {
        std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()
            .map(|a| a.port())
    })
}

fn launch(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_moss-gateway"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn moss-gateway")
}

/// An offline gateway of mesh "local" subscribed to "chat", plus `extra`.
pub fn spawn<S: AsRef<str>>(extra: &[S]) -> Gateway {
    let udp = free_udp_port();
    let http = format!("127.0.0.1:{}", free_tcp_port());
    let mut args: Vec<String> = [
        "-mesh",
        "local",
        "-http",
        &http,
        "-listen-port",
        &udp.to_string(),
        "-trackers=false",
        "-dht=false",
        "-lan=false",
        "-subscribe",
        "chat",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.as_ref().to_string()));
    Gateway {
        child: launch(&args),
        http,
        udp,
        args,
    }
}

impl Gateway {
    /// `kill -9`, then the same command line again (same ports).
    pub fn kill_and_restart(&mut self) -> Instant {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let at = Instant::now();
        self.child = launch(&self.args);
        at
    }
}

/// A minimal HTTP/1.1 GET; returns (status, body).
pub fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// GET and parse JSON; `None` unless the status is 200.
pub fn json(addr: &str, path: &str) -> Option<serde_json::Value> {
    let (status, body) = get(addr, path)?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// Gateway `g`'s peer count (`/api/stats`).
pub fn peer_count(g: &Gateway) -> Option<u64> {
    json(&g.http, "/api/stats")?["node"]["peer_count"].as_u64()
}

/// Reads `/api/events` of `http` until the stream holds `needle` (at most
/// 60 s).
pub fn sse_until(http: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut s = TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle} on /api/events within 60 s"
        );
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "stream closed early");
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}
