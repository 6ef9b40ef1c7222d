//! `moss-bench`: measures, in one run, the machine's own limits (raw
//! loopback UDP, raw AEAD) beside Moss' figures through the same paths, and
//! prints them as markdown tables with ratios (see `benches/README.md`).

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

mod alloc;
mod crypto;
mod e2e;
mod inproc;
mod machine;
mod ours;
mod raw;
mod relay;
mod report;
mod sock;

use clap::{Parser, ValueEnum};
use ours::Variant;
use raw::Mode;
use report::{gbits, rate, Table};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Everything measured so far: limits, crypto, backends, latency.
    All,
    /// Raw loopback UDP limits (one datagram per syscall, mmsg, GSO+GRO).
    Limits,
    /// Raw `ring` ChaCha20-Poly1305 seal+open on one core.
    Crypto,
    /// Each backend's throughput through the `Backend` trait vs the raw
    /// limit with the same batching.
    Backends,
    /// Ping-pong round-trip latency over each backend (hdrhistogram).
    Latency,
    /// Sealed-datagram throughput through two real nodes per backend vs
    /// raw UDP with the same batching, ring AEAD and Ed25519.
    Echo,
    /// Handshakes/s between sans-IO nodes vs a raw snow XX loop.
    Handshakes,
    /// Legit delivery with and without a junk + handshake flood.
    Flood,
    /// Heap bytes per idle established session (sans-IO, counting allocator).
    Idle,
    /// Engine shards: echo and fan-in throughput per `--shards` count.
    Shards,
    /// The supernode's relay data plane: A → supernode → B vs raw UDP, and
    /// its state per relay session.
    Relay,
}

/// Moss benchmark harness.
#[derive(Debug, Parser)]
#[command(name = "moss-bench", version)]
struct Args {
    /// Scenario to run.
    #[arg(value_enum, default_value = "all")]
    scenario: Scenario,
    /// Seconds per figure (at most 2 on shared machines).
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Datagram payload sizes in bytes.
    #[arg(long, value_delimiter = ',', default_values_t = vec![64usize, 1200])]
    sizes: Vec<usize>,
    /// Only measure backend variants whose label contains this text (e.g.
    /// `uring`, `GSO`).
    #[arg(long)]
    only: Option<String>,
    /// Rounds per backend figure (raw and ours interleaved, medians kept).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Sessions the `idle` scenario establishes.
    #[arg(long, default_value_t = 100_000)]
    sessions: u64,
    /// Legit messages per second in the `flood` scenario.
    #[arg(long, default_value_t = 2000.0)]
    flood_rate: f64,
    /// Shard counts the `shards` scenario compares.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1u32, 2])]
    shards: Vec<u32>,
    /// Sender nodes in the `shards` scenario's fan-in rows.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Also write the markdown section into this file (replacing an earlier
    /// `moss-bench` section in place).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Figures measured in this run, shared between scenarios.
struct Run {
    dur: Duration,
    sizes: Vec<usize>,
    rounds: usize,
    only: Option<String>,
    sessions: u64,
    flood_rate: f64,
    shards: Vec<u32>,
    senders: usize,
    raw: HashMap<(Mode, usize), Result<f64, String>>,
    tables: Vec<Table>,
}

/// Backends the node scenarios run on (each skipped with its reason if it
/// does not start here).
const NODE_BACKENDS: [&str; 3] = ["portable", "mmsg", "uring"];

/// The node backends this run measures (`--only` filters them too).
fn node_backends(only: Option<&str>) -> Vec<&'static str> {
    NODE_BACKENDS
        .into_iter()
        .filter(|b| only.is_none_or(|o| b.contains(o)))
        .collect()
}

/// Source ports the flooder rotates through.
const FLOOD_PORTS: usize = 512;

/// Median of a non-empty list (NaN-free rates).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

impl Run {
    fn wanted(&self, v: Variant) -> bool {
        self.only.as_deref().is_none_or(|o| v.label().contains(o))
    }

    fn raw(&mut self, mode: Mode, size: usize) -> Result<f64, String> {
        if let Some(r) = self.raw.get(&(mode, size)) {
            return r.clone();
        }
        eprintln!("measuring raw {} {size} B ...", mode.label());
        let r = raw::loopback_rate(mode, size, self.dur).map_err(|e| e.to_string());
        self.raw.insert((mode, size), r.clone());
        r
    }

    fn limits(&mut self) {
        let mut t = Table::new(
            "Machine limits: raw loopback UDP (one sender thread, one receiver thread)",
            vec!["path", "payload", "received", "payload rate"],
        );
        for mode in [Mode::Single, Mode::Mmsg, Mode::GsoGro] {
            for &size in &self.sizes.clone() {
                let row = match self.raw(mode, size) {
                    Ok(r) => vec![
                        mode.label().into(),
                        format!("{size} B"),
                        rate(r),
                        gbits(r, size),
                    ],
                    Err(e) => vec![
                        mode.label().into(),
                        format!("{size} B"),
                        format!("failed: {e}"),
                        "-".into(),
                    ],
                };
                t.rows.push(row);
            }
        }
        t.notes.push(format!(
            "Datagrams counted at the receiver over {:.1} s; sockets with {} KiB buffers; batches of {} datagrams.",
            self.dur.as_secs_f64(),
            sock::SOCKET_BUFFER / 1024,
            raw::BATCH
        ));
        self.tables.push(t);
    }

    fn crypto(&mut self) {
        let mut t = Table::new(
            "Machine limits: ring ChaCha20-Poly1305, one core",
            vec!["payload", "seal+open", "payload rate"],
        );
        for &size in &self.sizes {
            eprintln!("measuring ring seal+open {size} B ...");
            let row = match crypto::seal_open_rate(size, self.dur) {
                Ok(r) => vec![format!("{size} B"), rate(r), gbits(r, size)],
                Err(e) => vec![format!("{size} B"), format!("failed: {e}"), "-".into()],
            };
            t.rows.push(row);
        }
        self.tables.push(t);
    }

    fn backends(&mut self) {
        let mut t = Table::new(
            "Ours: backends through the `Backend` trait vs the raw limit with the same batching",
            vec![
                "backend",
                "payload",
                "ours",
                "raw limit (same batching)",
                "limit",
                "ratio",
                "ratio per round",
            ],
        );
        let rounds = self.rounds.max(1);
        let sub = self.dur / rounds as u32;
        let mut per_dgram_ns: HashMap<(Variant, usize), f64> = HashMap::new();
        for v in Variant::ALL {
            if !self.wanted(v) {
                continue;
            }
            for &size in &self.sizes.clone() {
                eprintln!(
                    "measuring {} {size} B against its raw limit, {rounds} rounds ...",
                    v.label()
                );
                let mode = v.raw_mode();
                // Interleave raw and ours so drifting background load hits
                // both alike; report medians and each round's ratio.
                let mut ours_r = Vec::new();
                let mut raw_r = Vec::new();
                let mut failed = None;
                for _ in 0..rounds {
                    match raw::loopback_rate(mode, size, sub) {
                        Ok(r) => raw_r.push(r),
                        Err(e) => failed = Some(format!("raw limit failed: {e}")),
                    }
                    match ours::throughput(v, size, sub) {
                        Ok(r) => ours_r.push(r),
                        Err(e) => failed = Some(format!("unavailable: {e}")),
                    }
                    if failed.is_some() {
                        break;
                    }
                }
                let mut row = vec![v.label().to_string(), format!("{size} B")];
                match failed {
                    Some(e) => {
                        row.extend([e, mode.label().into(), "-".into(), "-".into(), "-".into()])
                    }
                    None => {
                        let ratios: Vec<f64> =
                            ours_r.iter().zip(&raw_r).map(|(o, l)| o / l).collect();
                        let o = median(&ours_r);
                        let l = median(&raw_r);
                        per_dgram_ns.insert((v, size), 1e9 / o);
                        row.extend([
                            rate(o),
                            mode.label().into(),
                            rate(l),
                            format!("{:.2}", median(&ratios)),
                            ratios
                                .iter()
                                .map(|r| format!("{r:.2}"))
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]);
                    }
                }
                t.rows.push(row);
            }
        }
        t.notes.push(format!(
            "Same threads, socket buffers, payloads and 64-datagram batches as the raw figures. \
             Each row: {rounds} rounds of {:.2} s, raw and ours interleaved; figures are medians, \
             ratio = median of the per-round ours/raw ratios. The GSO+GRO rows send equal-size \
             datagrams to one peer, the best case for coalescing.",
            sub.as_secs_f64()
        ));
        for &size in &self.sizes {
            let copy = ours::slot_copy_ns(size, self.dur.min(Duration::from_millis(500)));
            let share = per_dgram_ns
                .get(&(Variant::UringOffload, size))
                .map(|ns| {
                    format!(
                        "{:.0}% of the {:.0} ns per datagram of uring (GSO+GRO)",
                        copy / ns * 100.0,
                        ns
                    )
                })
                .unwrap_or_else(|| "uring (GSO+GRO) not measured".into());
            t.notes.push(format!(
                "Copy forced by the owned `RecvBatch` slots (uring always, mmsg with GRO), {size} B: {copy:.1} ns per datagram = {share}."
            ));
        }
        self.tables.push(t);
    }

    fn latency(&mut self) {
        let mut t = Table::new(
            "Round-trip latency, ping-pong of one 64 B datagram (hdrhistogram)",
            vec!["path", "p50", "p99", "p99.9", "round trips"],
        );
        let fmt = |l: ours::Latency| {
            vec![
                format!("{:.1} µs", l.p50),
                format!("{:.1} µs", l.p99),
                format!("{:.1} µs", l.p999),
                l.samples.to_string(),
            ]
        };
        eprintln!("measuring raw ping-pong ...");
        let mut row = vec!["raw blocking sockets (limit)".to_string()];
        match ours::raw_ping_pong(64, self.dur) {
            Ok(l) => row.extend(fmt(l)),
            Err(e) => row.extend([format!("failed: {e}"), "-".into(), "-".into(), "-".into()]),
        }
        t.rows.push(row);
        for v in [
            Variant::Portable,
            Variant::MmsgOffload,
            Variant::UringOffload,
        ] {
            if !self.wanted(v) {
                continue;
            }
            eprintln!("measuring {} ping-pong ...", v.label());
            let mut row = vec![v.label().to_string()];
            match ours::ping_pong(v, 64, self.dur) {
                Ok(l) => row.extend(fmt(l)),
                Err(e) => row.extend([
                    format!("unavailable: {e}"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]),
            }
            t.rows.push(row);
        }
        t.notes.push(
            "Both ends block in `wait` (backends) or `recv` (raw) between datagrams; the machine is shared, so tails are noisy."
                .into(),
        );
        self.tables.push(t);
    }

    /// One-hop publish→deliver latency through two real nodes.
    fn one_hop(&mut self) {
        let mut t = Table::new(
            "Ours: one-hop publish→deliver latency through two nodes (64 B, one message in flight, hdrhistogram)",
            vec!["backend", "p50", "p99", "p99.9", "messages"],
        );
        for b in node_backends(self.only.as_deref()) {
            eprintln!("measuring one-hop latency through nodes on {b} ...");
            let mut row = vec![b.to_string()];
            match e2e::latency(b, 64, self.dur) {
                Ok(l) => row.extend([
                    format!("{:.1} µs", l.p50),
                    format!("{:.1} µs", l.p99),
                    format!("{:.1} µs", l.p999),
                    l.samples.to_string(),
                ]),
                Err(e) => row.extend([format!("failed: {e}"), "-".into(), "-".into(), "-".into()]),
            }
            t.rows.push(row);
        }
        t.notes.push(
            "Timed from `Node::publish` on the publisher to `Subscription::recv` on the subscriber: host channel, \
             engine thread, Ed25519 signing, sealing, the backend, loopback, unsealing, verification, delivery. \
             Compare with the raw ping-pong above (a round trip of two plain datagrams)."
                .into(),
        );
        self.tables.push(t);
    }

    /// Sealed-datagram throughput through two real nodes per backend.
    fn echo(&mut self) {
        let mut t = Table::new(
            "Ours: sealed-datagram throughput through two nodes (publisher → subscriber) vs the limits",
            vec![
                "backend",
                "payload",
                "delivered msgs/s",
                "datagrams/s (avg size)",
                "raw UDP, same batching, same size",
                "ratio (datagrams)",
                "ring seal+open, same size",
                "ratio (msgs)",
                "ratio to Ed25519 verify/s",
                "publisher: API accepted / engine published / sent (per s)",
                "allocs/msg (process)",
                "drops at the subscriber",
            ],
        );
        let dur = self.dur;
        eprintln!("measuring Ed25519 sign and verify ...");
        let sign = e2e::ed25519_sign_rate(dur.min(Duration::from_secs(1)));
        let verify = e2e::ed25519_verify_rate(dur.min(Duration::from_secs(1)));
        // The asked sizes, the largest single-datagram payload, and the
        // smallest size once more under the product's default limiter.
        let single = e2e::single_datagram_payload();
        let mut cases: Vec<(usize, bool)> = self.sizes.iter().map(|&s| (s, false)).collect();
        if !self.sizes.contains(&single) {
            cases.push((single, false));
        }
        if let Some(&s) = self.sizes.iter().min() {
            cases.push((s, true));
        }
        for b in node_backends(self.only.as_deref()) {
            for (size, policy) in cases.clone() {
                eprintln!("measuring echo through nodes on {b}, {size} B ...");
                let label = if policy {
                    format!("{size} B, default limiter")
                } else {
                    format!("{size} B")
                };
                let mut row = vec![b.to_string(), label];
                match e2e::echo(b, size, dur, policy) {
                    Ok(e) => {
                        let mode = if b == "portable" {
                            Mode::Single
                        } else {
                            Mode::GsoGro
                        };
                        let dsize = e.avg_datagram.clamp(1, 1472);
                        let raw = self.raw(mode, dsize);
                        let aead = crypto::seal_open_rate(dsize, dur).map_err(|e| e.to_string());
                        row.extend([
                            rate(e.delivered),
                            format!("{} ({} B)", rate(e.datagrams), e.avg_datagram),
                        ]);
                        match raw {
                            Ok(r) => row.extend([
                                format!("{} ({})", rate(r), mode.label()),
                                format!("{:.3}", e.datagrams / r),
                            ]),
                            Err(x) => row.extend([format!("failed: {x}"), "-".into()]),
                        }
                        match aead {
                            Ok(r) => row.extend([rate(r), format!("{:.3}", e.delivered / r)]),
                            Err(x) => row.extend([format!("failed: {x}"), "-".into()]),
                        }
                        row.push(format!("{:.2}", e.delivered / verify));
                        row.push(format!(
                            "{} / {} / {} dgrams (send drops {}, unrouted {})",
                            rate(e.accepted),
                            rate(e.published),
                            rate(e.sent),
                            e.send_dropped,
                            e.unrouted
                        ));
                        row.push(format!("{:.1}", e.allocs_per_msg));
                        let node: Vec<String> = e
                            .node_drops
                            .iter()
                            .map(|(r, n)| format!("{r} {n}"))
                            .collect();
                        row.push(format!(
                            "host {}; node: {}",
                            e.host_dropped,
                            node.join(", ")
                        ));
                    }
                    Err(e) => {
                        row.push(format!("failed: {e}"));
                        row.extend(std::iter::repeat_n("-".to_string(), 9));
                    }
                }
                t.rows.push(row);
            }
        }
        for &size in &self.sizes.clone() {
            eprintln!("measuring the in-process pipeline, {size} B ...");
            let mut row = vec![
                "sans-IO, one thread (no I/O)".to_string(),
                format!("{size} B"),
            ];
            match inproc::pipeline(size, dur) {
                Ok(p) => {
                    row.push(rate(p.rate));
                    row.push(format!("{:.2} per message", p.datagrams_per_msg));
                    row.extend(["-".into(), "-".into()]);
                    match crypto::seal_open_rate(size, dur) {
                        Ok(r) => row.extend([rate(r), format!("{:.3}", p.rate / r)]),
                        Err(x) => row.extend([format!("failed: {x}"), "-".into()]),
                    }
                    // One thread signs and verifies every message.
                    let bound = 1.0 / (1.0 / sign + 1.0 / verify);
                    row.push(format!(
                        "{:.2} of sign+verify ({})",
                        p.rate / bound,
                        rate(bound)
                    ));
                    row.push("-".into());
                    row.push(format!("{:.1}", p.allocs_per_msg));
                    row.push("-".into());
                }
                Err(e) => {
                    row.push(format!("failed: {e}"));
                    row.extend(std::iter::repeat_n("-".to_string(), 9));
                }
            }
            t.rows.push(row);
        }
        t.notes.push(format!(
            "One publisher thread publishes as fast as `Node::publish` accepts (yielding on `Busy`) for {:.1} s; \
             a thread counts what the subscriber's `Subscription` delivers in that window. Every message is \
             Ed25519-signed by the publisher's engine and verified by the subscriber's: on this machine one \
             core signs {} and verifies {} per second, the bound on messages/s through one engine thread. \
             Raw UDP and AEAD limits are measured in this run at the average datagram size the subscriber \
             received (small messages share datagrams); mmsg/uring nodes run with GSO/GRO on, so their raw \
             limit is GSO send + GRO receive. 2 cores are shared by publisher, two engine threads and the counter. \
             The nodes run with the per-peer inbound limiter raised (`security.rate_limit_*` = 4e9) except in the \
             \"default limiter\" rows, which keep the product default of 64 000 B/s sustained per peer. The wire's \
             datagram is at most {} B, so a payload above {single} B on this topic is fragmented (the 1200 B rows \
             take two datagrams per message); the {single} B rows are the largest single-datagram messages. \
             allocs/msg counts allocation calls in the whole process (publisher API, both engines, the counter \
             thread) per delivered message.",
            dur.as_secs_f64(),
            rate(sign),
            rate(verify),
            moss_mesh::wire::MAX_DATAGRAM,
        ));
        self.tables.push(t);
    }

    /// Handshakes/s of sans-IO nodes vs raw snow XX.
    fn handshakes(&mut self) {
        let mut t = Table::new(
            "Ours: Noise XX handshakes/s, both sides in one thread (sans-IO nodes) vs raw snow",
            vec!["path", "handshakes/s", "ratio to raw snow XX"],
        );
        eprintln!("measuring raw snow XX ...");
        let raw = inproc::raw_snow_xx(self.dur);
        eprintln!("measuring node handshakes ...");
        let ours = inproc::node_handshakes(self.dur);
        match &raw {
            Ok(r) => t.rows.push(vec![
                "raw snow `Noise_XX_25519_ChaChaPoly_BLAKE2s` (limit)".into(),
                rate(*r),
                "1.00".into(),
            ]),
            Err(e) => t
                .rows
                .push(vec!["raw snow".into(), format!("failed: {e}"), "-".into()]),
        }
        match (&ours, &raw) {
            (Ok(o), Ok(r)) => t.rows.push(vec![
                format!(
                    "moss_mesh::Node pair ({:.1} datagrams each)",
                    o.datagrams_per_handshake
                ),
                rate(o.rate),
                format!("{:.2}", o.rate / r),
            ]),
            (Ok(o), Err(_)) => t.rows.push(vec![
                "moss_mesh::Node pair".into(),
                rate(o.rate),
                "-".into(),
            ]),
            (Err(e), _) => t.rows.push(vec![
                "moss_mesh::Node pair".into(),
                format!("failed: {e}"),
                "-".into(),
            ]),
        }
        t.notes.push(
            "Both loops run initiator and responder in one thread. Raw: static keys made once, fresh ephemerals, \
             three messages, split. Node: a fresh initiator `Node` (built outside the timed region) dials one \
             responder; timed from `connect` until both sides are quiet (session established, subscriptions \
             exchanged), including the scramble codec, the Ed25519 identity binding (sign + verify per side) \
             and session set-up. The virtual clock advances 1 ms per handshake, inside the responder's budget \
             of 2000 initiations/s."
                .into(),
        );
        self.tables.push(t);
    }

    /// Legit delivery under a flood.
    /// Echo (two nodes) and fan-in (senders → one hub) per shard count.
    fn shards(&mut self) {
        let mut t = Table::new(
            "Ours: engine shards — echo and fan-in throughput per shard count vs the limits",
            vec![
                "backend",
                "shards",
                "workload",
                "delivered msgs/s",
                "datagrams/s (avg size)",
                "datagrams per shard",
                "hand-offs",
                "raw UDP, same batching, same size",
                "ratio (datagrams)",
                "ring seal+open, same size",
                "ratio (msgs)",
                "ratio to Ed25519 verify/s",
                "drops at the receiver",
            ],
        );
        let dur = self.dur;
        eprintln!("measuring Ed25519 verify ...");
        let verify = e2e::ed25519_verify_rate(dur.min(Duration::from_secs(1)));
        let size = self.sizes.iter().copied().min().unwrap_or(64);
        for b in node_backends(self.only.as_deref()) {
            let mode = if b == "portable" {
                Mode::Single
            } else {
                Mode::GsoGro
            };
            for &n in &self.shards.clone() {
                for fan in [false, true] {
                    let workload = if fan {
                        format!("fan-in, {} senders, {size} B", self.senders)
                    } else {
                        format!("echo, {size} B")
                    };
                    eprintln!("measuring {workload} on {b} with {n} shard(s) ...");
                    let mut row = vec![b.to_string(), n.to_string(), workload];
                    let r = if fan {
                        e2e::fan_in(b, size, dur, n, self.senders).map(|f| {
                            (
                                f.delivered,
                                f.datagrams,
                                f.avg_datagram,
                                f.per_shard
                                    .iter()
                                    .map(|x| x.to_string())
                                    .collect::<Vec<_>>()
                                    .join(" / "),
                                f.handoffs,
                                f.node_drops,
                                f.queue_drops,
                            )
                        })
                    } else {
                        e2e::echo_sharded(b, size, dur, false, n).map(|e| {
                            (
                                e.delivered,
                                e.datagrams,
                                e.avg_datagram,
                                "-".to_string(),
                                e.handoffs,
                                e.node_drops,
                                e.queue_drops,
                            )
                        })
                    };
                    match r {
                        Ok((delivered, dgrams, avg, per, handoffs, drops, qd)) => {
                            let dsize = avg.clamp(1, 1472);
                            row.extend([
                                rate(delivered),
                                format!("{} ({} B)", rate(dgrams), avg),
                                per,
                                handoffs.to_string(),
                            ]);
                            match self.raw(mode, dsize) {
                                Ok(r) => row.extend([
                                    format!("{} ({})", rate(r), mode.label()),
                                    format!("{:.3}", dgrams / r),
                                ]),
                                Err(x) => row.extend([format!("failed: {x}"), "-".into()]),
                            }
                            match crypto::seal_open_rate(dsize, dur) {
                                Ok(r) => row.extend([rate(r), format!("{:.3}", delivered / r)]),
                                Err(x) => row.extend([format!("failed: {x}"), "-".into()]),
                            }
                            row.push(format!("{:.2}", delivered / verify));
                            let d: Vec<String> =
                                drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
                            row.push(format!("queues {qd}; node: {}", d.join(", ")));
                        }
                        Err(e) => {
                            row.push(format!("failed: {e}"));
                            row.extend(std::iter::repeat_n("-".to_string(), 9));
                        }
                    }
                    t.rows.push(row);
                }
            }
        }
        t.notes.push(format!(
            "Same nodes and limiter as the echo table, with `engine.shards` set on the measured nodes \
             (echo: both nodes; fan-in: the hub, senders unsharded). A shard is a pinned thread with its \
             own SO_REUSEPORT socket and backend that unmasks, opens (AEAD + replay), verifies the Ed25519 \
             signatures of the messages it opened (once per message id across shards) and seals; the \
             core thread keeps handshakes, the router and signing. {} cores are \
             shared by every node, publisher and counter thread of the run. Ed25519 verify on one core: {}.",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            rate(verify),
        ));
        self.tables.push(t);
    }

    fn flood(&mut self) {
        let mut t = Table::new(
            "Ours: legit delivery under a flood of junk and replayed handshake message 1s",
            vec![
                "backend",
                "legit offered",
                "delivered, calm",
                "delivered, flooded",
                "ratio",
                "flood sent/s",
                "receiver datagrams in/s",
                "receiver datagrams out/s",
                "receiver drops during the flood",
            ],
        );
        for b in node_backends(self.only.as_deref()) {
            eprintln!("measuring flood on {b} ...");
            let mut row = vec![b.to_string()];
            match e2e::flood(b, self.flood_rate, FLOOD_PORTS, self.dur) {
                Ok(f) => row.extend([
                    rate(f.offered),
                    rate(f.calm),
                    rate(f.flooded),
                    format!("{:.2}", f.flooded / f.calm),
                    rate(f.flood_rate),
                    rate(f.received),
                    rate(f.answered),
                    f.drops
                        .iter()
                        .map(|(r, n)| format!("{r} {n}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ]),
                Err(e) => {
                    row.push(format!("failed: {e}"));
                    row.extend(std::iter::repeat_n("-".to_string(), 7));
                }
            }
            t.rows.push(row);
        }
        t.notes.push(format!(
            "256 B legit messages paced at the offered rate for {:.1} s, first alone, then while one thread sends, \
             round-robin from {FLOOD_PORTS} source ports on 127.0.0.1, random junk (40-1139 B) and one real \
             handshake message 1 of this mesh replayed, as fast as the kernel accepts. Drops are the receiver's \
             `Node::stats()` counters over the flooded window.",
            self.dur.as_secs_f64()
        ));
        self.tables.push(t);
    }

    /// Heap bytes per idle session.
    fn idle(&mut self) {
        let mut t = Table::new(
            "Ours: heap per idle established session (sans-IO node, counting allocator)",
            vec![
                "sessions",
                "heap growth",
                "per session",
                "goal",
                "setup time",
            ],
        );
        eprintln!("establishing {} sessions in process ...", self.sessions);
        match inproc::idle_sessions(self.sessions) {
            Ok(c) => {
                let n = c.sessions.max(1) as f64;
                let parts: Vec<String> = c
                    .growth
                    .iter()
                    .take(8)
                    .map(|&(size, count, bytes)| {
                        let label = if size >= alloc::EXACT_SIZES {
                            format!("≥{} B blocks", alloc::EXACT_SIZES)
                        } else {
                            format!("{size} B blocks")
                        };
                        format!(
                            "{label}: {:.2} per session, {:.0} B per session",
                            count as f64 / n,
                            bytes as f64 / n
                        )
                    })
                    .collect();
                t.notes.push(format!(
                    "Where the growth is (live allocations by requested size, largest first): {}. \
                     For scale: `ring::aead::LessSafeKey` is {} B (a transport cipher holds two).",
                    parts.join("; "),
                    std::mem::size_of::<ring::aead::LessSafeKey>()
                ));
                t.rows.push(vec![
                    c.sessions.to_string(),
                    format!("{:.1} MiB", (c.after - c.before) as f64 / (1 << 20) as f64),
                    format!("{:.0} B", c.per_session()),
                    "≤ 1024 B".into(),
                    format!("{:.1} s", c.elapsed.as_secs_f64()),
                ]);
            }
            Err(e) => t.rows.push(vec![
                self.sessions.to_string(),
                format!("failed: {e}"),
                "-".into(),
                "≤ 1024 B".into(),
                "-".into(),
            ]),
        }
        t.notes.push(
            "One `moss_mesh::Node` (default config, `max_peers` raised from 200) completes a handshake with each of N generated peers (distinct \
             identities from seeds, each dropped after its handshake). Growth of live heap bytes (requested sizes, \
             counted by the bench's global allocator wrapper around mimalloc) from after a first warm-up session \
             to after the last, divided by N: session state, the three lookup maps, the router's peer state. \
             Hash-map capacity grows in steps, so the figure depends a little on N."
                .into(),
        );
        self.tables.push(t);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.duration > 0.0 && args.duration <= 10.0)
        || args.sizes.iter().any(|&s| s == 0 || s > 1472)
    {
        eprintln!("--duration must be in (0, 10] seconds and --sizes in 1..=1472 bytes");
        return ExitCode::from(2);
    }
    let machine = machine::Machine::probe();
    let mut run = Run {
        dur: Duration::from_secs_f64(args.duration),
        sizes: args.sizes.clone(),
        rounds: args.rounds.clamp(1, 20),
        only: args.only.clone(),
        sessions: args.sessions.clamp(1, 1_000_000),
        flood_rate: args.flood_rate.clamp(1.0, 1e6),
        shards: args.shards.iter().map(|&n| n.clamp(1, 16)).collect(),
        senders: args.senders.clamp(1, 32),
        raw: HashMap::new(),
        tables: Vec::new(),
    };
    match args.scenario {
        Scenario::All => {
            run.limits();
            run.crypto();
            run.backends();
            run.latency();
            run.one_hop();
            run.echo();
            run.handshakes();
            run.flood();
            run.idle();
            run.shards();
            run.relay();
        }
        Scenario::Limits => run.limits(),
        Scenario::Crypto => run.crypto(),
        Scenario::Backends => run.backends(),
        Scenario::Latency => {
            run.latency();
            run.one_hop();
        }
        Scenario::Echo => run.echo(),
        Scenario::Handshakes => run.handshakes(),
        Scenario::Flood => run.flood(),
        Scenario::Idle => run.idle(),
        Scenario::Shards => run.shards(),
        Scenario::Relay => run.relay(),
    }
    let header = format!(
        "Run: `moss-bench {}` ({:.1} s per figure). Machine: {machine}.",
        format!("{:?}", args.scenario).to_lowercase(),
        args.duration
    );
    let section = report::render(&header, &run.tables);
    println!("{section}");
    if let Some(path) = args.out {
        if let Err(e) = report::write_section(&path, &section) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote the moss-bench section of {}", path.display());
    }
    ExitCode::SUCCESS
}
