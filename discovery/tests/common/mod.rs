//! Helpers shared by the integration tests: the real tracker process, free
//! loopback ports, and bounded waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use moss_discovery::{Candidate, DiscoveryConfig};

/// Upper bound for any wait in these tests (a guard against hangs, not a timing assertion).
pub const WAIT: Duration = Duration::from_secs(45);

/// A free port on 127.0.0.1 for both TCP and UDP at the time of the call,
/// never one this process was handed before: the kernel may give a port that
/// was just released to the next `bind(0)`, and two runners announcing the same
/// port look like one peer to a tracker.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind tcp 127.0.0.1:0");
        let port = tcp.local_addr().expect("local addr").port();
        if !given.contains(&port)
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("::1", port)).is_ok()
        {
            given.push(port);
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// A base config for tests: no default trackers, short interval, loopback only.
pub fn test_config(infohash: [u8; 20], listen_port: u16) -> DiscoveryConfig {
    let mut c = DiscoveryConfig::new(infohash, listen_port);
    c.trackers = Vec::new();
    c.announce_interval = Duration::from_secs(1);
    c
}

/// A random infohash so concurrent tests never share a swarm.
pub fn random_infohash() -> [u8; 20] {
    let mut h = [0u8; 20];
    getrandom::getrandom(&mut h).expect("os randomness");
    h
}

/// Polls `cond` every 20 ms until it holds or [`WAIT`] passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("gave up waiting for: {what}");
}

/// Reads candidates until one has address `addr`; returns it and everything seen before.
pub fn expect_candidate(rx: &Receiver<Candidate>, addr: SocketAddr) -> (Candidate, Vec<Candidate>) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(c) = rx.recv_timeout(Duration::from_millis(100)) {
            if c.addr == addr {
                return (c, seen);
            }
            seen.push(c);
        }
    }
    panic!("no candidate {addr} within {WAIT:?}; saw {seen:?}");
}

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("js")
}

/// A real `bittorrent-tracker` server (UDP + HTTP on one port, 127.0.0.1), killed on drop.
pub struct RealTracker {
    child: Child,
    /// The port of both its UDP and its HTTP listener.
    pub port: u16,
    ipv6_http: bool,
}

impl RealTracker {
    /// Starts the tracker (UDP and HTTP on 127.0.0.1); panics with install
    /// instructions if it is missing.
    pub fn start() -> RealTracker {
        Self::start_with(false)
    }

    /// Starts the tracker with UDP on 127.0.0.1 and HTTP on [::1].
    pub fn start_ipv6_http() -> RealTracker {
        Self::start_with(true)
    }

    fn start_with(ipv6_http: bool) -> RealTracker {
        let dir = js_dir();
        if !dir.join("node_modules").join("bittorrent-tracker").is_dir() {
            panic!(
                "the real BitTorrent tracker is not installed: run `bash discovery/scripts/install-test-deps.sh` \
                 (needs node + npm) before these tests"
            );
        }
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new("node")
                .arg(dir.join("tracker-server.mjs"))
                .arg(port.to_string())
                .arg("1")
                .arg(if ipv6_http { "ipv6" } else { "ipv4" })
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run `node` ({e}): install nodejs"));
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = crossbeam_channel::bounded(1);
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.trim() == format!("READY {port}") => {
                    return RealTracker {
                        child,
                        port,
                        ipv6_http,
                    };
                }
                other => {
                    last = format!("{other:?}");
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("bittorrent-tracker did not start: {last}");
    }

    /// `udp://127.0.0.1:port/announce`
    pub fn udp_url(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.port)
    }

    /// `http://127.0.0.1:port/announce` (or `http://[::1]:port/announce`)
    pub fn http_url(&self) -> String {
        let host = if self.ipv6_http { "[::1]" } else { "127.0.0.1" };
        format!("http://{host}:{}/announce", self.port)
    }
}

impl Drop for RealTracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
