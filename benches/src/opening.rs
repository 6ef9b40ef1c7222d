//! Session opening on an engine node, 1 vs N shards: sans-IO ends (each on
//! its own loopback socket) dial one engine node at once and complete
//! Noise XX with it. Reported: sessions/s by the wall clock (the ends run
//! on the same cores) and the node's CPU time per session opened (its
//! engine and shard threads, `/proc` schedstat), the figure that says
//! whether more shards open sessions faster.

use crate::relay::{pump_until, start_supernode, threads_cpu_ns, End};
use crate::report::{rate, Table};
use std::time::Instant;

/// Ends dialling at once.
const ENDS: usize = 120;

/// One row: sessions opened, wall-clock rate, node CPU per session (ns).
fn measure(backend: &str, shards: u32) -> Result<(usize, f64, f64), String> {
    let node = start_supernode(backend, shards)?;
    let addr = node.local_addr();
    let id = node.public_key();
    let mut ends = Vec::with_capacity(ENDS);
    for i in 0..ENDS {
        ends.push(End::new(100 + i as u8)?);
    }
    let cpu = || threads_cpu_ns("moss-shard") + threads_cpu_ns("moss-engine");
    let (t0, c0) = (Instant::now(), cpu());
    for e in &mut ends {
        e.core.add_static_peer(addr);
    }
    pump_until(
        &mut ends,
        t0,
        |e| {
            Ok(e.iter()
                .all(|x| x.core.peers().iter().any(|p| p.peer == id)))
        },
        "every end's session with the node",
    )?;
    let elapsed = t0.elapsed();
    let used = cpu().saturating_sub(c0);
    Ok((
        ENDS,
        ENDS as f64 / elapsed.as_secs_f64(),
        used as f64 / ENDS as f64,
    ))
}

/// The session-opening table for `shards` counts on every node backend.
pub fn table(shards: &[u32]) -> Table {
    let mut t = Table::new(
        "Ours: session opening on an engine node, by shard count",
        vec![
            "backend",
            "shards",
            "sessions",
            "sessions/s (wall clock, ends on the same cores)",
            "node CPU per session opened",
        ],
    );
    for b in crate::node_backends(None) {
        for &n in shards {
            eprintln!("measuring session opening {b}, {n} shard(s) ...");
            let row = match measure(b, n) {
                Ok((k, r, cpu)) => vec![
                    b.to_string(),
                    n.to_string(),
                    k.to_string(),
                    rate(r),
                    format!("{:.0} µs", cpu / 1e3),
                ],
                Err(e) => vec![
                    b.to_string(),
                    n.to_string(),
                    format!("failed: {e}"),
                    "-".into(),
                    "-".into(),
                ],
            };
            t.rows.push(row);
        }
    }
    t.notes.push(format!(
        "{ENDS} sans-IO ends, each on its own loopback socket, dial one engine node (the bench config: \
         no trackers, DHT or LAN) at once and pump until each holds an established session with it. \
         The node's handshakes run on its core thread whatever the shard count (shards own the \
         established sessions' ciphers, `ARCHITECTURE.md`, \"Shards\"), so more shards are not expected \
         to open sessions faster; the CPU column is the node's engine and shard threads' time on CPU \
         (`/proc/self/task/*/schedstat`) divided by the sessions."
    ));
    t
}
