//! Profiling aid: the 500-node telemetry network of `tests/telemetry.rs`,
//! printing per simulated second the wall time, events, queue length,
//! datagrams and deltas published. Arguments: `epoch_sec seconds
//! origin_shift degree_cap` (defaults 20 75 0 256), e.g.
//! `cargo run --release -p moss-sim --example telemetry_probe -- 10 33 0 1`.

use moss_mesh::Config;
use moss_sim::overlay::telemetry_network;
use moss_sim::LinkModel;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let epoch: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(75);
    let dcap: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(256);
    let back: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let seed = 7;
    let n = 500;
    let json = r#"{"trackers":[],"dht_enabled":false,"lan_discovery_enabled":false}"#;
    let mut cfg = match Config::from_json(json) {
        Ok(c) => c,
        Err(e) => return eprintln!("config: {e}"),
    };
    cfg.telemetry.enabled = true;
    cfg.telemetry.epoch_sec = epoch;
    cfg.telemetry.k_anon = 5;
    cfg.telemetry.degree_cap = dcap;
    let mut sim = telemetry_network(
        seed,
        n,
        LinkModel {
            loss: 0.05,
            ..LinkModel::default()
        },
        &cfg,
        1_800_000_000 - back,
    );
    let t0 = Instant::now();
    for s in 1..=secs {
        sim.run_for(Duration::from_secs(1));
        let st = sim.total_stats();
        println!(
            "t={s:3} wall={:7.1}s events={} queue={} dgrams={} bytes={} pubs={} dup={}",
            t0.elapsed().as_secs_f64(),
            sim.events,
            sim.queue_len(),
            sim.datagrams.0,
            sim.datagrams.2,
            st.messages_published,
            st.messages_duplicate
        );
    }
    let chain = |i: usize| sim.node(i).map(|x| x.telemetry_chain(8));
    let chain0 = chain(0).unwrap_or_default();
    let differing = (0..n).filter(|&i| chain(i) != Some(chain0.clone())).count();
    let snap = sim
        .node(0)
        .and_then(|x| serde_json::to_value(x.network_stats()).ok())
        .unwrap_or_default();
    println!(
        "chain {} differing {} contributors {} est {} kanon {}",
        chain0.len(),
        differing,
        snap["contributors"],
        snap["node_count_estimate"],
        snap["k_anon_ok"]
    );
}
