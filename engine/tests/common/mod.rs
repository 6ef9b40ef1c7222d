//! Helpers shared by the engine's loopback tests: offline nodes on
//! 127.0.0.1, the backends this machine has, bounded waits.

#![allow(dead_code)]

use moss::{Config, Node};
use std::time::{Duration, Instant};

/// An offline config (no trackers, LAN beacons or DHT) on `backend`;
/// `shards` overrides `engine.shards` when given.
pub fn cfg(backend: &str, shards: Option<u32>) -> Config {
    let mut c =
        Config::from_json(r#"{"trackers":[],"lan_discovery_enabled":false,"dht_enabled":false}"#)
            .unwrap();
    c.engine.backend = backend.into();
    if let Some(n) = shards {
        c.engine.shards = n;
    }
    c
}

/// A started node of mesh `mesh` on an ephemeral 127.0.0.1 port.
pub fn node(mesh: &str, backend: &str, shards: Option<u32>) -> Node {
    Node::builder(mesh)
        .config(cfg(backend, shards))
        .bind("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap()
}

/// The backends this machine can run.
pub fn backends() -> Vec<&'static str> {
    let mut v = vec!["portable"];
    if cfg!(target_os = "linux") {
        v.push("mmsg");
        if moss::backend::open(
            moss::backend::BackendKind::Uring,
            "127.0.0.1:0".parse().unwrap(),
        )
        .is_ok()
        {
            v.push("uring");
        }
    }
    v
}

/// Polls `cond` every 10 ms for at most 10 s.
pub fn wait_for(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Reports that a test cannot run its real component on this machine:
/// prints `SKIP: reason`, and panics when `CI=true` (CI must run it).
pub fn skip(reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "SKIP refused under CI=true: {reason}"
    );
    eprintln!("SKIP: {reason}");
}
