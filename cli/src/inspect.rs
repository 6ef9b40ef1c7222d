//! `moss peers` and `moss info`: what a node sees of its mesh.

use crate::error::CliError;
use moss::Node;
use std::time::{Duration, Instant};

/// How often the wait loop looks again.
const POLL: Duration = Duration::from_millis(50);

/// Waits up to `wait` for a first peer; true if one came.
pub fn wait_for_peer(node: &Node, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while node.peer_count() == 0 {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
    true
}

/// Prints the connected peers (a table, or JSON); `NoPeer` if none came
/// within `wait`.
pub fn peers(node: &Node, wait: Duration, json: bool) -> Result<(), CliError> {
    if !wait_for_peer(node, wait) {
        return Err(CliError::NoPeer(format!(
            "no peer connected within {}s",
            wait.as_secs_f32()
        )));
    }
    let stats = node.stats()?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&stats.peers).map_err(|e| CliError::Output(e.into()))?
        );
        return Ok(());
    }
    println!(
        "{:<64}  {:<22}  {:<8}  topics",
        "peer", "address", "dialled"
    );
    for p in &stats.peers {
        println!(
            "{:<64}  {:<22}  {:<8}  {}",
            p.peer_id,
            p.addr,
            if p.outbound { "out" } else { "in" },
            p.topics.join(",")
        );
    }
    Ok(())
}

/// Prints the mesh info (id, peer id, NAT type, backend, addresses) and a
/// discovery summary, after waiting up to `wait` for a first peer.
pub fn info(node: &Node, wait: Duration, json: bool) -> Result<(), CliError> {
    wait_for_peer(node, wait);
    let info = node.mesh_info()?;
    let discovery = node.discovery_stats();
    if json {
        let doc = serde_json::json!({
            "mesh": info,
            "local_addr": node.local_addr().to_string(),
            "discovery": discovery,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| CliError::Output(e.into()))?
        );
        return Ok(());
    }
    println!("mesh:        {}", info.mesh_id);
    println!("peer id:     {}", info.public_key);
    println!("listening:   {} (UDP)", node.local_addr());
    println!("backend:     {}", info.backend);
    println!("NAT type:    {}", info.nat_type);
    println!("peers:       {} {}", info.peer_count, info.peers.join(" "));
    match discovery {
        None => println!("discovery:   off"),
        Some(d) => {
            let ok = d.trackers.iter().filter(|t| t.announces_ok > 0).count();
            println!("trackers:    {} of {} answered", ok, d.trackers.len());
            match d.dht {
                Some(h) => println!(
                    "dht:         {:?}, {} peers found{}",
                    h.state,
                    h.peers_found,
                    h.last_error
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                ),
                None => println!("dht:         off"),
            }
            match d.lan {
                Some(l) => println!(
                    "lan:         {} beacons sent, {} from this mesh",
                    l.beacons_sent, l.beacons_accepted
                ),
                None => println!("lan:         off"),
            }
        }
    }
    Ok(())
}
