//! Events 3 (supernode promoted) and 4 (revoked) reach `/api/events`, as
//! real processes on loopback: gateway A may promote after 1 s of uptime
//! (`-config`), gateway B dials it (a stranger's inbound probe), A promotes;
//! B stops (SIGTERM: it closes its session), A is left without a peer and
//! revokes at once, naming the failed condition. Event 7 (relay migrated)
//! needs a relayed pair that later gets a direct path: real NATs,
//! `nat/scripts/relay-lab.sh`.

mod common;

use common::{peer_count, spawn, sse_until};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn supernode_promotion_and_revocation_reach_api_events() {
    let cfg = std::env::temp_dir().join(format!("moss-gw-supernode-{}.json", std::process::id()));
    std::fs::write(&cfg, r#"{"nat":{"supernode_min_uptime_sec":1}}"#).unwrap();
    let a = spawn(&["-config", cfg.to_str().unwrap()]);
    let up = Instant::now() + Duration::from_secs(20);
    while peer_count(&a).is_none() {
        assert!(Instant::now() < up, "gateway A up");
        std::thread::sleep(Duration::from_millis(50));
    }
    let peer = format!("127.0.0.1:{}", a.udp);
    let b = spawn(&["-static", &peer]);
    let text = sse_until(&a.http, "\"id\":3,");
    assert!(text.contains("event: node"), "{text}");
    let term = Command::new("kill")
        .args(["-TERM", &b.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let text = sse_until(&a.http, "\"id\":4,");
    let line = text
        .lines()
        .find(|l| l.contains("\"id\":4,"))
        .unwrap_or_default();
    assert!(line.contains("standing"), "{line}");
    drop(b);
    let _ = std::fs::remove_file(&cfg);
}
