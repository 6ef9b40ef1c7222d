//! A chat peer for the real-NAT suite (`nat/scripts/punch-lab.sh`,
//! `portmap-lab.sh`, `punch-timings.sh`): joins mesh `natlab` with one
//! static peer, subscribes to `chat` (or the comma-separated `--topics`),
//! publishes its name on each every second, and rewrites a JSON status file
//! each second: its NAT
//! class, its peer id, its direct peers, the origins it heard on `chat`
//! and its port mapping, and per peer the sessions that came up and how
//! each ended (reason and second). `--map` picks the port-mapping protocols
//! (comma-separated `pcp`, `natpmp`, `upnp`, or `none`; default `natpmp`),
//! `--map-lifetime` the lifetime asked for in seconds. `--supernode-after S`
//! sets `supernode_min_uptime_sec` (a public node then relays, from S
//! seconds in); the status then also says whether the node is a supernode,
//! the host events 3, 4 and 7 (id, second, peer), and per peer the second
//! its path was first seen relayed and first seen direct.
//!
//! `nat_peer --port P [--static ADDR] [--topics LIST] [--map LIST] [--map-lifetime S] [--supernode-after S] --seconds N --status FILE`

use std::collections::{BTreeMap, BTreeSet};
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
    let map = arg(&args, "--map").unwrap_or_else(|| "natpmp".into());
    let on = |p: &str| map.split(',').any(|m| m == p);
    let lifetime: u64 = arg(&args, "--map-lifetime")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3600);
    let supernode_after: u64 = arg(&args, "--supernode-after")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(300);
    let cfg = serde_json::json!({
        "trackers": [],
        "dht_enabled": false,
        "lan_discovery_enabled": false,
        "listen_port": port,
        "static_peers": statics,
        "nat": {
            "natpmp_enabled": on("natpmp"),
            "pcp_enabled": on("pcp"),
            "upnp_enabled": on("upnp"),
            "supernode_min_uptime_sec": supernode_after,
        },
    });
    let mut node = moss::Node::builder("natlab")
        .config_json(&cfg.to_string())?
        .port_mapping_lifetime(Duration::from_secs(lifetime))
        .start()?;
    // SIGTERM ends the loop so that stop() deletes the port mapping.
    let term = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook_flag(&term);
    let topics: Vec<String> = arg(&args, "--topics")
        .unwrap_or_else(|| "chat".into())
        .split(',')
        .map(String::from)
        .collect();
    let subs = topics
        .iter()
        .map(|t| node.subscribe(t))
        .collect::<Result<Vec<_>, _>>()?;
    let me = node.public_key().to_hex();
    let mut heard = BTreeSet::new();
    // Per peer: sessions that came up, and how (and when, s since start)
    // each last session ended.
    let mut joined: BTreeMap<String, u32> = BTreeMap::new();
    let mut left: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // Host events 3, 4 and 7, and per peer the second its path was first
    // seen relayed and first seen direct.
    let mut events: Vec<serde_json::Value> = Vec::new();
    let mut relayed_at: BTreeMap<String, f64> = BTreeMap::new();
    let mut direct_at: BTreeMap<String, f64> = BTreeMap::new();
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(seconds);
    while Instant::now() < end && !term.load(std::sync::atomic::Ordering::SeqCst) {
        for t in &topics {
            // No subscriber yet is normal at the start.
            let _ = node.publish(t, me.as_bytes());
        }
        let tick = Instant::now() + Duration::from_secs(1);
        while Instant::now() < tick {
            for s in &subs {
                while let Some(m) = s.try_recv() {
                    heard.insert(m.from.to_hex());
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        while let Ok(ev) = node.events().try_recv() {
            match ev {
                moss::Event::PeerJoined { peer, .. } => {
                    *joined.entry(peer.to_hex()).or_default() += 1
                }
                moss::Event::PeerLeft { peer, reason, .. } => left
                    .entry(peer.to_hex())
                    .or_default()
                    .push(format!("{reason}@{:.1}", t0.elapsed().as_secs_f64())),
                moss::Event::RelayMigrated { ref peer, .. } => events.push(serde_json::json!({
                    "id": ev.id(), "t": t0.elapsed().as_secs_f64(), "peer": peer.to_hex(),
                })),
                moss::Event::SupernodePromoted | moss::Event::SupernodeRevoked { .. } => {
                    events.push(serde_json::json!({"id": ev.id(), "t": t0.elapsed().as_secs_f64()}))
                }
                _ => {}
            }
        }
        let st = node.stats()?;
        let t = t0.elapsed().as_secs_f64();
        for p in &st.peers {
            let seen = if p.addr.starts_with("relay:") {
                &mut relayed_at
            } else {
                &mut direct_at
            };
            seen.entry(p.peer_id.clone()).or_insert(t);
        }
        let doc = serde_json::json!({
            "id": me,
            "nat_type": st.nat_type,
            "peers": st.peers.iter().map(|p| p.peer_id.clone()).collect::<Vec<_>>(),
            // The path of each: an address (direct), `channel:N` (a spray
            // socket: direct too) or `relay:…` (through a supernode).
            "paths": st.peers.iter().map(|p| (p.peer_id.clone(), serde_json::json!(p.addr))).collect::<serde_json::Map<_, _>>(),
            "heard": heard,
            "punch": st.counters.nat,
            "spray": st.spray,
            "punched": st
                .peers
                .iter()
                .filter_map(|p| Some((p.peer_id.clone(), serde_json::json!({"ms": p.punch_ms?, "offers": p.punch_offers}))))
                .collect::<serde_json::Map<_, _>>(),
            "port_mapping": st.port_mapping,
            "joined": joined,
            "left": left,
            "supernode": node.mesh_info()?.supernode_ready,
            "events": events,
            "relayed_at": relayed_at,
            "direct_at": direct_at,
        });
        // Written whole, then renamed: a reader never sees half a file.
        let tmp = format!("{status}.tmp");
        std::fs::write(&tmp, doc.to_string())?;
        std::fs::rename(&tmp, &status)?;
    }
    drop(subs);
    node.stop();
    let st = serde_json::json!({ "stopped": true });
    std::fs::write(format!("{status}.stopped"), st.to_string())?;
    Ok(())
}

static TERM: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>> =
    std::sync::OnceLock::new();

extern "C" fn on_term(_: libc::c_int) {
    if let Some(t) = TERM.get() {
        t.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Sets `flag` on SIGTERM and SIGINT.
fn signal_hook_flag(flag: &std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let _ = TERM.set(flag.clone());
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
}
