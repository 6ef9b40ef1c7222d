//! `moss-bench`: measures, in one run, the machine's own limits (raw
//! loopback UDP, raw AEAD) beside Moss' figures through the same paths, and
//! prints them as markdown tables with ratios (see `benches/README.md`).

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

mod alloc;
mod compare;
mod crypto;
mod e2e;
mod inproc;
mod machine;
mod opening;
mod ours;
mod raw;
mod reconnect;
mod relay;
mod report;
mod sock;
mod webrtc;

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
    /// Time from `start()` with a static peer to the peer-joined event.
    FirstSession,
    /// Heap bytes per idle established session (sans-IO, counting allocator).
    Idle,
    /// Engine shards: echo and fan-in throughput per `--shards` count.
    Shards,
    /// Reconnect to a known peer: Noise IK vs XX (round trips, CPU).
    Reconnect,
    /// The supernode's relay data plane: A → supernode → B vs raw UDP, and
    /// its state per relay session.
    Relay,
    /// The WebRTC DataChannel path beside UDP: msg/s and one-hop p50/p99.
    Webrtc,
    /// One table: the one-hop limit line, ours and rust-libp2p gossipsub
    /// (the `benches/libp2p` binary, run as a child process).
    Compare,
}

/// Moss benchmark harness.
#[derive(Debug, Parser)]
#[command(name = "moss-bench", version)]
struct Args {
    /// Scenarios to run, in this order, in one process and one report.
    #[arg(value_enum, default_values_t = vec![Scenario::All])]
    scenarios: Vec<Scenario>,
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
    /// `engine.busy_poll_us` values the one-hop latency rows compare.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0u32, 50])]
    busy_poll_us: Vec<u32>,
    /// Pause in µs after each delivery of the extra one-hop rows (open
    /// loop: the receiver finishes its work on one message before the next).
    #[arg(long, default_value_t = 200)]
    gap_us: u64,
    /// Sender nodes in the `shards` scenario's fan-in rows.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// A → B pairs blasting at once in each `relay` row (0: one per
    /// shard). More pairs than shards spread fairer over the shards'
    /// sockets (the kernel's `SO_REUSEPORT` hash picks a shard per pair).
    #[arg(long, default_value_t = 0)]
    relay_pairs: usize,
    /// The `benches/libp2p` binary the `compare` scenario runs.
    #[arg(long, default_value_os_t = compare::default_libp2p_bin())]
    libp2p: PathBuf,
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
    /// `--relay-pairs` (0: one per shard).
    relay_pairs: usize,
    busy_poll_us: Vec<u32>,
    gap: Duration,
    libp2p: PathBuf,
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
/// A duration in milliseconds, or "-".
fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "-".into())
}

/// `/proc/loadavg`'s three load averages, or "unknown".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

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
        let mut v = Table::new(
            "Machine limits: Ed25519 verification, one core (single vs cached key vs batch)",
            vec!["method", "verifies/s", "ratio to `PeerId::verify`"],
        );
        let probe = self.dur.min(Duration::from_secs(1));
        for batch in [8usize, 64] {
            eprintln!("measuring Ed25519 verify variants, batch {batch} ...");
            let r = e2e::ed25519_verify_variants(probe, batch);
            if batch == 8 {
                v.rows.push(vec![
                    "`PeerId::verify` (the network's cofactored rule, one by one, as a node's single check)".into(),
                    rate(r.single),
                    "1.00".into(),
                ]);
                v.rows.push(vec![
                    "one by one, key decompressed once (`ed25519_dalek` `verify_strict`)".into(),
                    rate(r.cached),
                    format!("{:.2}", r.cached / r.single),
                ]);
            }
            v.rows.push(vec![
                format!("`ed25519_dalek::verify_batch`, {batch} signers per batch (cofactorless: not the network's rule)"),
                rate(r.dalek_batch),
                format!("{:.2}", r.dalek_batch / r.single),
            ]);
            v.rows.push(vec![
                format!("`moss_crypto::BatchVerifier`, {batch} signers per batch"),
                rate(r.ours_distinct),
                format!("{:.2}", r.ours_distinct / r.single),
            ]);
            v.rows.push(vec![
                format!("`moss_crypto::BatchVerifier`, {batch} messages of one signer (a first-hop batch)"),
                rate(r.ours_one),
                format!("{:.2}", r.ours_one / r.single),
            ]);
        }
        v.notes.push(
            "Each figure over the same window on one thread, seconds apart; the batch rows sign with distinct keys \
             (a receive batch from many origins) and include each key's decompression, as a node's batch would."
                .into(),
        );
        self.tables.push(v);
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

    /// One-hop publish→deliver latency through two real nodes, beside the
    /// limit line measured in the same run: sign + verify + a busy-polled
    /// raw one-way datagram + 10 µs.
    fn one_hop(&mut self) {
        let mut t = Table::new(
            "Ours: one-hop publish→deliver latency through two nodes (64 B, one message in flight, hdrhistogram)",
            vec![
                "backend",
                "engine.busy_poll_us",
                "gap after delivery",
                "p50, median (per round)",
                "p99 (median)",
                "p99.9 (median)",
                "messages",
                "p50 ÷ limit",
                "p99 ÷ p50",
            ],
        );
        let probe = self.dur.min(Duration::from_secs(1));
        eprintln!("measuring the one-hop limit (sign, verify, busy-polled raw datagram) ...");
        let (sign_us, verify_us) = e2e::ed25519_sign_verify_us(probe);
        let limit = match ours::raw_busy_ping_pong(64, probe) {
            Ok(l) => {
                let one_way = l.p50 / 2.0;
                let limit = sign_us + verify_us + one_way + 10.0;
                t.rows.push(vec![
                    "limit: sign + verify + raw busy-polled one-way + 10 µs".into(),
                    "-".into(),
                    "-".into(),
                    format!("{limit:.1} µs = {sign_us:.1} + {verify_us:.1} + {one_way:.1} + 10"),
                    "-".into(),
                    "-".into(),
                    l.samples.to_string(),
                    "1.00".into(),
                    "-".into(),
                ]);
                Some(limit)
            }
            Err(e) => {
                t.rows.push(vec![
                    "limit".into(),
                    "-".into(),
                    "-".into(),
                    format!("failed: {e}"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
                None
            }
        };
        // Rounds interleave every (backend, busy_poll_us) pair; each row
        // keeps the medians of its rounds and lists the p50 per round.
        let gap = self.gap;
        let pairs: Vec<(&str, u32, Duration)> = node_backends(self.only.as_deref())
            .into_iter()
            .flat_map(|b| {
                let closed = self
                    .busy_poll_us
                    .iter()
                    .map(move |&us| (b, us, Duration::ZERO));
                closed.chain((!gap.is_zero()).then_some((b, 0, gap)))
            })
            .collect();
        let mut got: Vec<Vec<e2e::OneHop>> = pairs.iter().map(|_| Vec::new()).collect();
        let mut failed: Vec<Option<String>> = pairs.iter().map(|_| None).collect();
        for _ in 0..self.rounds {
            for (i, &(b, us, gap)) in pairs.iter().enumerate() {
                eprintln!("measuring one-hop latency through nodes on {b}, busy_poll_us {us}, gap {gap:?} ...");
                match e2e::latency(b, 64, self.dur, Some(us), gap) {
                    Ok(l) => got[i].push(l),
                    Err(e) => failed[i] = Some(e),
                }
            }
        }
        for (i, &(b, us, gap)) in pairs.iter().enumerate() {
            let mut row = vec![
                b.to_string(),
                us.to_string(),
                format!("{} µs", gap.as_micros()),
            ];
            let r = &got[i];
            if r.is_empty() {
                row.push(format!(
                    "failed: {}",
                    failed[i].as_deref().unwrap_or("no rounds")
                ));
                row.extend(std::iter::repeat_n("-".to_string(), 5));
            } else {
                let p50 = median(&r.iter().map(|l| l.p50).collect::<Vec<_>>());
                let p99 = median(&r.iter().map(|l| l.p99).collect::<Vec<_>>());
                let p999 = median(&r.iter().map(|l| l.p999).collect::<Vec<_>>());
                let per: Vec<String> = r.iter().map(|l| format!("{:.1}", l.p50)).collect();
                row.extend([
                    format!("{p50:.1} µs ({})", per.join(" / ")),
                    format!("{p99:.1} µs"),
                    format!("{p999:.1} µs"),
                    r.iter().map(|l| l.samples).sum::<u64>().to_string(),
                    limit.map_or("-".into(), |lim| format!("{:.2}", p50 / lim)),
                    format!("{:.1}", p99 / p50),
                ]);
            }
            t.rows.push(row);
        }
        t.notes.push(
            "Timed from `Node::publish` on the publisher to `Subscription::recv` on the subscriber: host channel, \
             engine thread, Ed25519 signing, sealing, the backend, loopback, unsealing, delivery (a message that comes \
             straight from its origin is delivered before its signature check, which runs before it is forwarded). \
             The limit row is measured in this run: the median time of one Ed25519 sign and of one verify, half the p50 \
             round trip of a raw 64 B datagram between two threads that busy-poll non-blocking sockets (no \
             wake-up), plus 10 µs. `engine.busy_poll_us` 0 (the default) parks every engine thread and the \
             subscriber at once; N polls (yielding) for up to N µs after work before parking. With a gap of 0 \
             the publisher sends the next message as soon as the last one is delivered (closed loop: it can \
             catch the receiver still checking the last signature); with a gap it pauses that long first. Rounds \
             interleave all rows; figures are medians of the rounds."
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
        // smallest size once more with busy-polling off (threads park at
        // once, as before issue #15).
        let single = e2e::single_datagram_payload();
        let mut cases: Vec<(usize, Option<u32>)> = self.sizes.iter().map(|&s| (s, None)).collect();
        if !self.sizes.contains(&single) {
            cases.push((single, None));
        }
        if let Some(&s) = self.sizes.iter().min() {
            for &us in &self.busy_poll_us {
                if us != moss_mesh::config::DEFAULT_BUSY_POLL_US {
                    cases.push((s, Some(us)));
                }
            }
        }
        for b in node_backends(self.only.as_deref()) {
            for (size, busy_poll) in cases.clone() {
                eprintln!("measuring echo through nodes on {b}, {size} B ...");
                let label = match busy_poll {
                    Some(us) => format!("{size} B, busy_poll_us {us}"),
                    None => format!("{size} B"),
                };
                let mut row = vec![b.to_string(), label];
                match e2e::echo(b, size, dur, busy_poll) {
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
             The nodes run the product's default config (trackers, LAN discovery and DHT off; the \
             `security.rate_limit_*` relay buckets no longer apply to gossip), with `engine.busy_poll_us` at its \
             default except in the \"busy_poll_us N\" rows (0: every thread parks at once). The wire's \
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
            vec![
                "path",
                "handshakes/s",
                "ratio to raw snow XX",
                "ratio to snow XX + one verify per side",
            ],
        );
        eprintln!("measuring raw snow XX ...");
        let raw = inproc::raw_snow_xx(self.dur);
        eprintln!("measuring Ed25519 verify for the handshake limit ...");
        let verify = e2e::ed25519_verify_rate(self.dur.min(Duration::from_secs(1)));
        eprintln!("measuring node handshakes ...");
        let ours = inproc::node_handshakes(self.dur);
        // Each side of a fresh pair checks the other's identity binding
        // once: two verifications per handshake that raw snow does not do.
        let with_verify = raw.as_ref().ok().map(|r| 1.0 / (1.0 / r + 2.0 / verify));
        let ratio = |x: f64, of: Option<f64>| of.map_or("-".into(), |l| format!("{:.2}", x / l));
        match &raw {
            Ok(r) => t.rows.push(vec![
                "raw snow `Noise_XX_25519_ChaChaPoly_BLAKE2s` (limit)".into(),
                rate(*r),
                "1.00".into(),
                ratio(*r, with_verify),
            ]),
            Err(e) => t.rows.push(vec![
                "raw snow".into(),
                format!("failed: {e}"),
                "-".into(),
                "-".into(),
            ]),
        }
        if let Some(l) = with_verify {
            t.rows.push(vec![
                format!(
                    "limit: raw snow XX + 2 × `PeerId::verify` ({} verifies/s in this run)",
                    rate(verify)
                ),
                rate(l),
                ratio(l, raw.as_ref().ok().copied()),
                "1.00".into(),
            ]);
        }
        match &ours {
            Ok(o) => t.rows.push(vec![
                format!(
                    "moss_mesh::Node pair ({:.1} datagrams each)",
                    o.datagrams_per_handshake
                ),
                rate(o.rate),
                ratio(o.rate, raw.as_ref().ok().copied()),
                ratio(o.rate, with_verify),
            ]),
            Err(e) => t.rows.push(vec![
                "moss_mesh::Node pair".into(),
                format!("failed: {e}"),
                "-".into(),
                "-".into(),
            ]),
        }
        t.notes.push(
            "Both loops run initiator and responder in one thread. Raw: static keys made once, fresh ephemerals, \
             three messages, split. Node: a fresh initiator `Node` (built outside the timed region, which \
             signs its identity binding once) dials one responder; timed from `connect` until both sides are \
             quiet (session established, subscriptions exchanged), including the scramble codec, the check \
             of the peer's Ed25519 identity binding on each side and session set-up. The second limit adds \
             those two checks (a fresh peer's binding cannot be known in advance; raw snow authenticates no \
             identity), at the verify rate measured in this run. The virtual clock advances 1 ms per \
             handshake, inside the responder's budget of 2000 initiations/s."
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
                        e2e::echo_sharded(b, size, dur, None, n).map(|e| {
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
            "Same nodes and config as the echo table, with `engine.shards` set on the measured nodes \
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
                "new clients joined, calm / flooded",
                "median join, calm / flooded",
                "join time ratio",
            ],
        );
        let own = node_backends(self.only.as_deref())
            .into_iter()
            .map(|b| (b, e2e::Receiver::Own));
        // The receiver on a shared engine (portable, as on-demand meshes run).
        let shared = (self.only.as_deref().is_none_or(|o| "shared".contains(o)))
            .then_some(("portable", e2e::Receiver::Shared));
        for (b, at) in own.chain(shared) {
            let name = match at {
                e2e::Receiver::Own => b.to_string(),
                e2e::Receiver::Shared => {
                    format!("shared engine (+{} idle meshes)", e2e::SHARED_NEIGHBOURS)
                }
            };
            eprintln!("measuring flood on {name} ...");
            let mut row = vec![name];
            match e2e::flood(b, at, self.flood_rate, FLOOD_PORTS, self.dur) {
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
                    format!("{} / {} of {}", f.joined[0], f.joined[1], e2e::JOINS),
                    format!("{} / {}", ms(f.join_time[0]), ms(f.join_time[1])),
                    match f.join_time {
                        [Some(c), Some(x)] => format!("{:.2}", x.as_secs_f64() / c.as_secs_f64()),
                        _ => "-".into(),
                    },
                ]),
                Err(e) => {
                    row.push(format!("failed: {e}"));
                    row.extend(std::iter::repeat_n("-".to_string(), 10));
                }
            }
            t.rows.push(row);
        }
        t.notes.push(format!(
            "256 B legit messages paced at the offered rate for {:.1} s, first alone, then while one thread sends, \
             round-robin from {FLOOD_PORTS} source ports on 127.0.0.2 (legit nodes and newcomers are on 127.0.0.1), random junk (40-1139 B) and one real \
             handshake message 1 of this mesh replayed, as fast as the kernel accepts. Drops are the receiver's \
             `Node::stats()` counters over the flooded window. Joins: {} fresh clients dial the receiver one \
             after another (timeout {} s each), after the calm window and again while the flood still runs. The shared engine \
             row: the receiver is one of {} nodes of different meshes on one `moss::SharedEngine` (the portable backend, \
             as a gateway's on-demand meshes), the publisher and newcomers on engines of their own.",
            self.dur.as_secs_f64(),
            e2e::JOINS,
            e2e::JOIN_TIMEOUT.as_secs(),
            e2e::SHARED_NEIGHBOURS + 1
        ));
        self.tables.push(t);
    }

    /// Reconnect round trips and CPU, IK vs XX.
    fn reconnect(&mut self) {
        let mut t = Table::new(
            "Ours: reconnect to a known peer, Noise IK vs XX (sans-IO nodes, virtual link)",
            vec![
                "pattern",
                "RTTs until the dialler holds the session",
                "RTTs until it knows the responder's topics",
                "RTTs until the responder counts the peer",
                "datagrams",
                "handshakes/s of CPU",
                "ratio to XX",
            ],
        );
        eprintln!("measuring reconnects ...");
        match reconnect::reconnect(self.dur) {
            Ok((xx, ik)) => {
                for (name, f) in [
                    ("XX (first contact)", xx),
                    ("IK (held the responder's key)", ik),
                ] {
                    t.rows.push(vec![
                        name.into(),
                        format!("{:.2}", f.rtt_dialler),
                        format!("{:.2}", f.rtt_topics),
                        format!("{:.2}", f.rtt_both),
                        format!("{:.1}", f.datagrams),
                        rate(f.per_sec),
                        format!("{:.2}", f.per_sec / xx.per_sec),
                    ]);
                }
            }
            Err(e) => t.rows.push(vec![
                "reconnect".into(),
                format!("failed: {e}"),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]),
        }
        t.notes.push(format!(
            "Two `moss_mesh::Node`s over an in-memory link with {} ms one-way latency (RTTs are virtual time / \
             {} ms). XX: a fresh dialler each time; IK: one dialler that hung up (CLOSE) and dials again, \
             holding the responder's static key from its first session. Both subscribe to one topic. CPU: wall \
             time of both sides in one thread over the whole exchange, including the SUBSCRIBE datagrams.",
            reconnect::LATENCY.as_millis(),
            2 * reconnect::LATENCY.as_millis()
        ));
        self.tables.push(t);
    }

    /// Heap bytes per idle session.
    /// Time to the first session from `start()` with one static peer.
    fn first_session(&mut self) {
        let mut t = Table::new(
            "Ours: time from `start()` to the `PeerJoined` event, static peer and LAN beacon (127.0.0.1)",
            vec!["backend", "found by", "runs", "p50", "min", "max", "goal"],
        );
        const RUNS: usize = 20;
        for b in node_backends(self.only.as_deref()) {
            for (how, label, goal) in [
                (e2e::Finding::Static, "static peer", "< 5 ms"),
                (e2e::Finding::Lan, "LAN beacon", "< 100 ms"),
            ] {
                eprintln!("measuring time to first session on {b}, {label} ...");
                let mut row = vec![b.to_string(), label.to_string(), RUNS.to_string()];
                match e2e::first_session(b, RUNS, how) {
                    Ok(v) => row.extend([
                        format!("{:.2} ms", median(&v)),
                        format!("{:.2} ms", v.first().copied().unwrap_or(f64::NAN)),
                        format!("{:.2} ms", v.last().copied().unwrap_or(f64::NAN)),
                        goal.into(),
                    ]),
                    Err(e) => {
                        row.push(format!("failed: {e}"));
                        row.extend(std::iter::repeat_n("-".to_string(), 3));
                    }
                }
                t.rows.push(row);
            }
        }
        t.notes.push(
            "A fresh node per run (socket, engine thread, Noise XX with the identity binding, subscription \
             exchange) meets one node that is already running; timed from before `NodeBuilder::start` until \
             `Node::events` yields `PeerJoined`. Static peer: the running node's address is the new node's \
             static peer. LAN beacon: no address given; both nodes have LAN discovery on (product beacon \
             interval, multicast sent on 127.0.0.1 only, a mesh id and beacon port of this run's own): the new \
             node's first beacon at start makes the running node dial it. The original takes 2.5–4.3 ms with a \
             static peer (measured elsewhere on this machine, issue #15)."
                .into(),
        );
        self.tables.push(t);
    }

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
                let records: Vec<String> = moss_mesh::record_sizes()
                    .iter()
                    .map(|(name, size)| format!("{name} {size} B"))
                    .collect();
                t.notes.push(format!(
                    "Where the growth is (live allocations by requested size, largest first): {}. \
                     Inline record sizes (hash-map entries hold them, at about 1.3 slots per entry at \
                     this count): {}. For scale: `ring::aead::LessSafeKey` is {} B (a transport cipher \
                     holds the raw keys instead).",
                    parts.join("; "),
                    records.join(", "),
                    std::mem::size_of::<ring::aead::LessSafeKey>()
                ));
                t.rows.push(vec![
                    c.sessions.to_string(),
                    format!("{:.1} MiB", (c.after - c.before) as f64 / (1 << 20) as f64),
                    format!("{:.0} B", c.per_session()),
                    "≤ 768 B".into(),
                    format!("{:.1} s", c.elapsed.as_secs_f64()),
                ]);
            }
            Err(e) => t.rows.push(vec![
                self.sessions.to_string(),
                format!("failed: {e}"),
                "-".into(),
                "≤ 768 B".into(),
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
        relay_pairs: args.relay_pairs.min(64),
        busy_poll_us: args
            .busy_poll_us
            .iter()
            .map(|&u| u.min(moss_mesh::config::MAX_BUSY_POLL_US))
            .collect(),
        gap: Duration::from_micros(args.gap_us.min(1_000_000)),
        libp2p: args.libp2p.clone(),
        raw: HashMap::new(),
        tables: Vec::new(),
    };
    let load_before = load_average();
    for &scenario in &args.scenarios {
        match scenario {
            Scenario::All => {
                run.limits();
                run.crypto();
                run.backends();
                run.latency();
                run.one_hop();
                run.echo();
                run.compare();
                run.handshakes();
                run.flood();
                run.first_session();
                run.idle();
                run.shards();
                run.reconnect();
                run.relay();
                run.webrtc_in_all();
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
            Scenario::FirstSession => run.first_session(),
            Scenario::Idle => run.idle(),
            Scenario::Shards => run.shards(),
            Scenario::Reconnect => run.reconnect(),
            Scenario::Relay => run.relay(),
            Scenario::Webrtc => run.webrtc(),
            Scenario::Compare => run.compare(),
        }
    }
    let names: Vec<String> = args
        .scenarios
        .iter()
        .map(|s| format!("{s:?}").to_lowercase())
        .collect();
    let header = format!(
        "Run: `moss-bench {}` ({:.1} s per figure). Machine: {machine}. Load average (1, 5, 15 min) at the start {load_before}, at the end {}.",
        names.join(" "),
        args.duration,
        load_average()
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
