//! An end for the real-NAT relay suite (`nat/scripts/relay-lab.sh`): joins
//! mesh `natlab` with the supernodes as static peers, subscribes to `chat`
//! (the supernodes carry it, so ends learn of each other and ask for
//! introductions) and to `e2e` (only ends subscribe: its messages travel on
//! the ends' own sessions, relayed or direct, never through a supernode's
//! pub/sub), publishes its id on both every second, and rewrites a JSON
//! status file every second: peers with their paths, for each topic when
//! each origin was last heard, and the host events seen (ids 1–7 with
//! their details); times are Unix seconds, comparable across processes.
//!
//! `relay_peer --port P --static ADDR [--static ADDR...] --seconds N --status FILE [--map]`
//!
//! `--map`: ask the gateway for a port mapping (PCP, NAT-PMP), also when its
//! mapping service starts mid-run; the status then carries `mapped`, the
//! external address.

use moss::Event;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The topics: introductions through the supernodes, and end to end.
const TOPICS: [&str; 2] = ["chat", "e2e"];

/// Now as Unix seconds.
fn unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut port, mut seconds, mut status, mut statics) = (None, None, None, Vec::new());
    let mut map = false;
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        if x == "--map" {
            map = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{x} needs a value"))?;
        match x.as_str() {
            "--port" => port = Some(v.parse::<u16>()?),
            "--seconds" => seconds = Some(v.parse::<u64>()?),
            "--status" => status = Some(v),
            "--static" => statics.push(v),
            _ => return Err(format!("unknown option {x}").into()),
        }
    }
    let (port, seconds, status) = (
        port.ok_or("--port missing")?,
        seconds.ok_or("--seconds missing")?,
        status.ok_or("--status missing")?,
    );
    let cfg = json!({
        "trackers": [],
        "dht_enabled": false,
        "lan_discovery_enabled": false,
        "listen_port": port,
        "static_peers": statics,
        "nat": { "pcp_enabled": map, "natpmp_enabled": map },
    });
    let node = moss::Node::builder("natlab")
        .config_json(&cfg.to_string())?
        .start()?;
    let subs = TOPICS
        .iter()
        .map(|t| node.subscribe(t))
        .collect::<Result<Vec<_>, _>>()?;
    let me = node.public_key().to_hex();
    let started = Instant::now();
    let mut heard: [BTreeMap<String, f64>; 2] = Default::default();
    let mut events: Vec<Value> = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        for t in TOPICS {
            // No subscriber yet is normal at the start.
            let _ = node.publish(t, me.as_bytes());
        }
        let tick = Instant::now() + Duration::from_secs(1);
        while Instant::now() < tick {
            for (sub, h) in subs.iter().zip(heard.iter_mut()) {
                while let Some(m) = sub.try_recv() {
                    h.insert(m.from.to_hex(), unix());
                }
            }
            while let Ok(e) = node.events().try_recv() {
                if !matches!(e, Event::Overflow { .. }) {
                    let detail: Value = serde_json::from_str(&e.detail_json())?;
                    events.push(json!({"id": e.id(), "t": unix(), "detail": detail}));
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let st = node.stats()?;
        let mut h = Map::new();
        for (t, m) in TOPICS.iter().zip(&heard) {
            h.insert((*t).into(), json!(m));
        }
        let doc = json!({
            "id": me,
            "t": unix(),
            "nat_type": st.nat_type,
            "peers": st.peers.iter().map(|p| json!({"id": p.peer_id, "addr": p.addr})).collect::<Vec<_>>(),
            "heard": h,
            "events": events,
            "relay_forged": st.counters.drops.get(moss_mesh::DropReason::RelayForged),
            "mapped": st.port_mapping.external,
        });
        let tmp = format!("{status}.tmp");
        std::fs::write(&tmp, doc.to_string())?;
        std::fs::rename(&tmp, &status)?;
    }
    Ok(())
}
