//! `moss-bench`: measures, in one run, the machine's own limits (raw
//! loopback UDP, raw AEAD) beside Moss' figures through the same paths, and
//! prints them as markdown tables with ratios (see `benches/README.md`).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod crypto;
mod machine;
mod ours;
mod raw;
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
    /// Sealed-datagram echo through a node: needs the node driver (not yet
    /// measured).
    Echo,
    /// Noise handshakes per second through a node (not yet measured).
    Handshakes,
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
    raw: HashMap<(Mode, usize), Result<f64, String>>,
    tables: Vec<Table>,
}

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
}

fn main() -> ExitCode {
    let args = Args::parse();
    if matches!(args.scenario, Scenario::Echo | Scenario::Handshakes) {
        eprintln!(
            "scenario {:?} is not measured yet: it needs the node driver in `moss` (sealed-datagram echo and \
             handshakes through a real node). No figure is printed rather than a made-up one.",
            args.scenario
        );
        return ExitCode::from(2);
    }
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
        raw: HashMap::new(),
        tables: Vec::new(),
    };
    match args.scenario {
        Scenario::All => {
            run.limits();
            run.crypto();
            run.backends();
            run.latency();
        }
        Scenario::Limits => run.limits(),
        Scenario::Crypto => run.crypto(),
        Scenario::Backends => run.backends(),
        Scenario::Latency => run.latency(),
        Scenario::Echo | Scenario::Handshakes => {}
    }
    let header = format!(
        "Run: `moss-bench {}` ({:.1} s per figure). Machine: {machine}. Not yet measured: \
         sealed-datagram echo through a node, handshakes/s (need the node driver).",
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
