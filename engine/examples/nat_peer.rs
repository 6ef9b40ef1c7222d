//! A chat peer for the real-NAT suite (`nat/scripts/punch-lab.sh`): joins
//! mesh `natlab` with one static peer, subscribes to `chat`, publishes its
//! name every second, and rewrites a JSON status file each second: its NAT
//! class, its peer id, its direct peers and the origins it heard on `chat`.
//!
//! `nat_peer --port P [--static ADDR] --seconds N --status FILE`

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn arg(args: &[String], name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = arg(&args, "--port").ok_or("--port missing")?.parse()?;
    let seconds: u64 = arg(&args, "--seconds")
        .ok_or("--seconds missing")?
        .parse()?;
    let status = arg(&args, "--status").ok_or("--status missing")?;
    let statics: Vec<String> = arg(&args, "--static").into_iter().collect();
    let cfg = serde_json::json!({
        "trackers": [],
        "dht_enabled": false,
        "lan_discovery_enabled": false,
        "listen_port": port,
        "static_peers": statics,
        "nat": { "natpmp_enabled": true },
    });
    let node = moss::Node::builder("natlab")
        .config_json(&cfg.to_string())?
        .start()?;
    let chat = node.subscribe("chat")?;
    let me = node.public_key().to_hex();
    let mut heard = BTreeSet::new();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        // No subscriber yet is normal at the start.
        let _ = node.publish("chat", me.as_bytes());
        let tick = Instant::now() + Duration::from_secs(1);
        while let Some(m) = chat.recv_timeout(tick.saturating_duration_since(Instant::now())) {
            heard.insert(m.from.to_hex());
        }
        let st = node.stats()?;
        let doc = serde_json::json!({
            "id": me,
            "nat_type": st.nat_type,
            "peers": st.peers.iter().map(|p| p.peer_id.clone()).collect::<Vec<_>>(),
            "heard": heard,
            "punch": st.counters.nat,
        });
        std::fs::write(&status, doc.to_string())?;
    }
    Ok(())
}
