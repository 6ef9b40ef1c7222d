//! `moss-sim`: runs one scenario and prints its report.

use clap::Parser;
use moss_sim::{Attack, LinkModel, NatKind, NatModel, Scenario};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live heap bytes, for the memory-per-node figure.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Deterministic Moss network simulation.
#[derive(Parser, Debug)]
#[command(name = "moss-sim")]
struct Args {
    /// Seed (same seed, same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Honest nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Topics.
    #[arg(long, default_value_t = 20)]
    topics: usize,
    /// Topics per node.
    #[arg(long, default_value_t = 3)]
    topics_per_node: usize,
    /// Messages per topic.
    #[arg(long, default_value_t = 3)]
    messages_per_topic: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Datagram loss probability.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Fraction of nodes leaving during the publish window.
    #[arg(long, default_value_t = 0.0)]
    churn: f64,
    /// Fraction (of nodes) joining during the publish window.
    #[arg(long, default_value_t = 0.0)]
    join: f64,
    /// Uplink of every node in Mbit/s (0 = unlimited).
    #[arg(long, default_value_t = 50)]
    uplink_mbps: u64,
    /// Turn IDONTWANT off.
    #[arg(long)]
    no_idontwant: bool,
    /// Warm-up seconds.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Publish window seconds.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// Drain seconds.
    #[arg(long, default_value_t = 15)]
    drain: u64,
    /// Attack: none, sybil, eclipse, spam.
    #[arg(long, default_value = "none")]
    attack: String,
    /// Fraction of honest nodes behind a NAT (one NAT each).
    #[arg(long, default_value_t = 0.0)]
    nat_fraction: f64,
    /// NAT kind: full-cone, address-restricted, port-restricted,
    /// symmetric, or mixed (each NATed node draws one of the four).
    #[arg(long, default_value = "mixed")]
    nat_kind: String,
    /// NAT mapping timeout in seconds (mappings lapse without outbound
    /// traffic).
    #[arg(long, default_value_t = 30)]
    nat_timeout: u64,
}

fn main() {
    let a = Args::parse();
    let attack = match a.attack.as_str() {
        "sybil" => Attack::Sybil {
            identities: a.nodes / 2,
            ips: 4,
            dials: 20,
        },
        "eclipse" => Attack::Eclipse { attackers: 100 },
        "spam" => Attack::InvalidSpam {
            spammers: 10,
            dials: 20,
            messages: 100,
        },
        _ => Attack::None,
    };
    let nat_kind = match a.nat_kind.as_str() {
        "mixed" => None,
        k => match k.parse::<NatKind>() {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(2);
            }
        },
    };
    let sc = Scenario {
        seed: a.seed,
        nodes: a.nodes,
        topics: a.topics,
        topics_per_node: a.topics_per_node,
        messages_per_topic: a.messages_per_topic,
        message_size: a.size,
        link: LinkModel {
            loss: a.loss,
            uplink_bps: a.uplink_mbps * 1_000_000,
            ..LinkModel::default()
        },
        churn_leave: a.churn,
        churn_join: a.join,
        idontwant: !a.no_idontwant,
        warmup: Duration::from_secs(a.warmup),
        publish_window: Duration::from_secs(a.window),
        drain: Duration::from_secs(a.drain),
        attack,
        nat: NatModel {
            fraction: a.nat_fraction,
            kind: nat_kind,
            timeout: Duration::from_secs(a.nat_timeout),
        },
        ..Scenario::default()
    };
    let base = LIVE.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut live_end = 0;
    let report = sc.run_inspect(|_| live_end = LIVE.load(Ordering::Relaxed));
    let wall = t0.elapsed();
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    println!("{report}");
    let nodes = (a.nodes as f64).max(1.0);
    println!(
        "memory per node           {:.1} KiB live at the end, {:.1} KiB peak (heap / nodes)",
        live_end.saturating_sub(base) as f64 / 1024.0 / nodes,
        peak as f64 / 1024.0 / nodes
    );
    println!("wall clock                {:.1} s", wall.as_secs_f64());
}
