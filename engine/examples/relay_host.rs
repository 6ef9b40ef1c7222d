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
//!
//! Options after the positional ones (the real-NAT relay suite,
//! `nat/scripts/relay-lab.sh`, uses them): `--subscribe TOPIC` (repeatable;
//! a supernode that carries a topic's messages lets its users find each
//! other and ask it for introductions), `--seconds N` (exit after N s) and
//! `--status FILE` (a JSON status rewritten every second: supernode flag,
//! peers with their paths, relay counters, event ids seen).
//!
//! SIGTERM or SIGINT stops it cleanly: the node tells its peers it is
//! leaving, and the relay counters are printed one last time.

use moss::{Config, Event, Node};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Set by SIGTERM or SIGINT: the event loop ends and the node stops.
static TERM: AtomicBool = AtomicBool::new(false);

/// Routes SIGTERM and SIGINT to [`TERM`] instead of ending the process.
fn catch_term() -> std::io::Result<()> {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the action only stores to an atomic, which is
        // async-signal-safe.
        unsafe { signal_hook_registry::register(sig, || TERM.store(true, Ordering::SeqCst)) }?;
    }
    Ok(())
}

/// The command line: `MESH BIND SHARDS MIN_UPTIME` then options.
struct Args {
    mesh: String,
    bind: String,
    shards: u32,
    min_uptime: u32,
    subscribe: Vec<String>,
    seconds: Option<u64>,
    status: Option<String>,
}

fn parse() -> Result<Args, Box<dyn std::error::Error>> {
    let mut pos = Vec::new();
    let mut a = Args {
        mesh: String::new(),
        bind: String::new(),
        shards: 0,
        min_uptime: 300,
        subscribe: Vec::new(),
        seconds: None,
        status: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{x} needs a value"));
        match x.as_str() {
            "--subscribe" => a.subscribe.push(value()?),
            "--seconds" => a.seconds = Some(value()?.parse()?),
            "--status" => a.status = Some(value()?),
            _ => pos.push(x),
        }
    }
    let mut pos = pos.into_iter();
    a.mesh = pos.next().unwrap_or_else(|| "global".into());
    a.bind = pos.next().unwrap_or_else(|| "0.0.0.0:41000".into());
    a.shards = pos.next().map_or(Ok(0), |s| s.parse())?;
    a.min_uptime = pos.next().map_or(Ok(300), |s| s.parse())?;
    Ok(a)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    catch_term()?;
    let mut cfg = Config::from_json(r#"{"trackers":[],"lan_discovery_enabled":false}"#)?;
    cfg.engine.shards = args.shards;
    cfg.nat.supernode_min_uptime_sec = args.min_uptime;
    let mut node = Node::builder(&args.mesh)
        .config(cfg)
        .bind(args.bind.parse()?)
        .start()?;
    // Held for the node's life: the topics stay subscribed.
    let _subs = args
        .subscribe
        .iter()
        .map(|t| node.subscribe(t))
        .collect::<Result<Vec<_>, _>>()?;
    let info = node.mesh_info()?;
    println!(
        "mesh {} on {} ({} backend), supernode after {} s once a stranger dials in",
        args.mesh,
        node.local_addr(),
        info.backend,
        args.min_uptime
    );
    let events = serve(&node, &args)?;
    // The last status and counters, then a clean stop: peers are told.
    if let Some(file) = &args.status {
        write_status(&node, file, &events)?;
    }
    print!("final: ");
    report(&node)?;
    node.stop();
    println!("stopped");
    Ok(())
}

/// Prints events and reports until `--seconds` ran out, a signal arrived
/// or the node's event channel closed; returns the event ids seen.
fn serve(node: &Node, args: &Args) -> Result<Vec<i32>, Box<dyn std::error::Error>> {
    let started = Instant::now();
    let mut next_report = started + Duration::from_secs(10);
    let mut next_status = started;
    let mut events: Vec<i32> = Vec::new();
    loop {
        if TERM.load(Ordering::SeqCst) {
            println!("signal: stopping");
            return Ok(events);
        }
        if args
            .seconds
            .is_some_and(|s| started.elapsed().as_secs() >= s)
        {
            return Ok(events);
        }
        match node.events().recv_timeout(Duration::from_millis(200)) {
            Ok(e) => {
                events.push(e.id());
                match e {
                    Event::SupernodePromoted => println!("promoted to supernode (event 3)"),
                    Event::SupernodeRevoked { reason } => {
                        println!("supernode revoked (event 4): {reason}")
                    }
                    Event::PeerJoined { peer, addr } => {
                        println!("peer {} joined from {addr}", moss::short_id(&peer))
                    }
                    _ => {}
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return Ok(events),
        }
        let now = Instant::now();
        if let Some(file) = &args.status {
            if now >= next_status {
                next_status = now + Duration::from_secs(1);
                write_status(node, file, &events)?;
            }
        }
        if now >= next_report {
            next_report += Duration::from_secs(10);
            report(node)?;
        }
    }
}

/// One line of relay counters: peers, shards, datagrams and bytes relayed,
/// datagrams over the token buckets.
fn report(node: &Node) -> Result<(), Box<dyn std::error::Error>> {
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
    Ok(())
}

/// The status file: written whole to a temporary name, then renamed, so a
/// reader never sees half of it.
fn write_status(node: &Node, file: &str, events: &[i32]) -> Result<(), Box<dyn std::error::Error>> {
    let s = node.stats()?;
    let info = node.mesh_info()?;
    let doc = serde_json::json!({
        "id": node.public_key().to_hex(),
        "nat_type": s.nat_type,
        "supernode": info.supernode_ready,
        "peers": s.peers.iter().map(|p| serde_json::json!({"id": p.peer_id, "addr": p.addr})).collect::<Vec<_>>(),
        "relayed_datagrams": s.counters.relayed_datagrams,
        "relayed_bytes": s.counters.relayed_bytes,
        "relay_rate_limited": s.counters.drops.get(moss_mesh::DropReason::RelayRateLimited),
        "events": events,
    });
    let tmp = format!("{file}.tmp");
    std::fs::write(&tmp, doc.to_string())?;
    std::fs::rename(&tmp, file)?;
    Ok(())
}
