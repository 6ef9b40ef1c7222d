//! A sharded supernode relay host: a node on a public address with one
//! engine shard per core (or `SHARDS`), which promotes itself to supernode
//! once a stranger's dial proves it reachable and relays peers that cannot
//! reach each other. It prints the supernode events and, every 10 s, how
//! much it relayed.
//!
//! ```sh
//! # offline demo on loopback: promote after 5 s of uptime instead of 300
//! cargo run -p moss --example relay_host -- demo 0.0.0.0:41000 2 5
//! ```

use moss::{Config, Event, Node};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mesh = args.next().unwrap_or_else(|| "global".into());
    let bind = args.next().unwrap_or_else(|| "0.0.0.0:41000".into());
    let shards: u32 = args.next().map_or(Ok(0), |s| s.parse())?;
    let min_uptime: u32 = args.next().map_or(Ok(300), |s| s.parse())?;
    let mut cfg = Config::from_json(r#"{"trackers":[],"lan_discovery_enabled":false}"#)?;
    cfg.engine.shards = shards;
    cfg.nat.supernode_min_uptime_sec = min_uptime;
    let node = Node::builder(&mesh)
        .config(cfg)
        .bind(bind.parse()?)
        .start()?;
    let info = node.mesh_info()?;
    println!(
        "mesh {mesh} on {} ({} backend), supernode after {min_uptime} s once a stranger dials in",
        node.local_addr(),
        info.backend
    );
    let mut next_report = Instant::now() + Duration::from_secs(10);
    loop {
        match node.events().recv_timeout(Duration::from_millis(500)) {
            Ok(Event::SupernodePromoted) => println!("promoted to supernode (event 3)"),
            Ok(Event::SupernodeRevoked { reason }) => println!("supernode revoked: {reason}"),
            Ok(Event::PeerJoined { peer, addr }) => {
                println!("peer {} joined from {addr}", moss::short_id(&peer))
            }
            Ok(_) => {}
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(()),
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(10);
            let s = node.stats()?;
            println!(
                "{} peers, {} shards; relayed {} datagrams, {} bytes; {} over the buckets",
                s.peers.len(),
                s.shards,
                s.counters.relayed_datagrams,
                s.counters.relayed_bytes,
                s.counters
                    .drops
                    .get(moss_mesh::DropReason::RelayRateLimited)
            );
        }
    }
}
