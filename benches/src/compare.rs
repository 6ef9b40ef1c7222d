//! `compare`: the one-run table of issue #15. The one-hop latency limit
//! line, ours and rust-libp2p gossipsub (the `benches/libp2p` binary, run
//! as a child process in the same run), with throughput as ratios to the
//! Ed25519 verify rate measured seconds earlier in this process.

use crate::report::{rate, Table};
use crate::{e2e, median, node_backends, ours, Run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where `benches/libp2p/run.sh` builds the libp2p bench by default.
pub fn default_libp2p_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("libp2p/target/release/moss-bench-libp2p")
}

/// Per payload size: delivered msgs/s and its loss remark, or the error.
type EchoFigures = Vec<(usize, Result<(f64, String), String>)>;

/// What the libp2p binary printed for one transport.
#[derive(Debug, Default, PartialEq)]
struct Libp2pFigures {
    /// Its own Ed25519 verify rate (same `ed25519-dalek`), per second.
    verify: Option<f64>,
    /// Per payload size: delivered msgs/s and its loss remark, or the error.
    echo: EchoFigures,
    /// One-hop 64 B (p50, p99) in µs, or the error.
    one_hop: Option<Result<(f64, f64), String>>,
}

/// The number right after `key` in `line` (digits and one dot).
fn number_after(line: &str, key: &str) -> Option<f64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Parses the lines `moss-bench-libp2p` prints (see its `run`) for
/// `transport`; lines it does not know are ignored.
fn parse_libp2p(out: &str, transport: &str) -> Libp2pFigures {
    let mut f = Libp2pFigures::default();
    let echo = format!("libp2p {transport} echo ");
    let hop = format!("libp2p {transport} one-hop 64 B: ");
    for line in out.lines() {
        if let Some(v) = line
            .strip_prefix("libp2p Ed25519 verify: ")
            .and_then(|l| number_after(l, ""))
        {
            f.verify = Some(v);
        } else if let Some(rest) = line.strip_prefix(&echo) {
            let Some(size) = number_after(rest, "").map(|s| s as usize) else {
                continue;
            };
            let fig = match rest.split_once(" B: ").map(|(_, r)| r) {
                Some(r) if r.starts_with("failed") => Err(r.to_string()),
                Some(r) => match number_after(r, "delivered ") {
                    Some(d) => {
                        let loss = r
                            .rsplit_once('(')
                            .map(|(_, l)| l.trim_end_matches(')').to_string())
                            .unwrap_or_default();
                        Ok((d, loss))
                    }
                    None => Err(format!("unparsed: {r}")),
                },
                None => Err(format!("unparsed: {rest}")),
            };
            f.echo.push((size, fig));
        } else if let Some(r) = line.strip_prefix(&hop) {
            f.one_hop = Some(match (number_after(r, "p50 "), number_after(r, "p99 ")) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(r.to_string()),
            });
        }
    }
    f
}

/// Runs the libp2p binary with this run's window and sizes; its stdout.
fn run_libp2p(bin: &Path, dur: Duration, sizes: &[usize]) -> Result<String, String> {
    if !bin.is_file() {
        return Err(format!(
            "no libp2p binary at {} (build it with `benches/libp2p/run.sh`)",
            bin.display()
        ));
    }
    let sizes: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    let out = Command::new(bin)
        .args(["--duration", &format!("{}", dur.as_secs_f64())])
        .args(["--sizes", &sizes.join(",")])
        .args(["--transports", "tcp"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.trim().is_empty() {
        return Err(format!(
            "{} printed nothing ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(text)
}

/// Ours on one backend: one-hop (p50, p99) medians of the rounds, and
/// delivered msgs/s with counted drops per size.
struct OursFigures {
    backend: &'static str,
    one_hop: Result<(f64, f64), String>,
    echo: EchoFigures,
}

/// Ends a row whose figure is missing: the reason, then "-" for the
/// three cells that would have followed from it.
fn failed(row: &mut Vec<String>, why: String) {
    row.push(why);
    row.extend(std::iter::repeat_n("-".to_string(), 3));
}

/// "a ÷ b" to two places, or "-".
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

impl Run {
    /// The one-run table: limit line, ours per backend, rust-libp2p.
    pub(crate) fn compare(&mut self) {
        let mut t = Table::new(
            "Ours beside rust-libp2p gossipsub, one run: the one-hop limit line, p50/p99, msgs/s ÷ Ed25519 verify/s",
            vec![
                "peer",
                "one-hop p50, 64 B",
                "p50 ÷ limit",
                "p99",
                "p99 ÷ p50",
                "payload",
                "delivered msgs/s",
                "÷ verify/s (this run)",
                "lost or dropped",
                "ours ÷ libp2p (msgs/s; p50)",
            ],
        );
        let probe = self.dur.min(Duration::from_secs(1));
        eprintln!("compare: measuring sign, verify and the busy-polled raw datagram ...");
        let (sign_us, verify_us) = e2e::ed25519_sign_verify_us(probe);
        let verify = e2e::ed25519_verify_rate(probe);
        let limit = ours::raw_busy_ping_pong(64, probe).map(|l| {
            let one_way = l.p50 / 2.0;
            (sign_us + verify_us + one_way + 10.0, one_way)
        });
        match &limit {
            Ok((lim, one_way)) => t.rows.push(vec![
                "limit: sign + verify + raw busy-polled one-way + 10 µs".into(),
                format!("{lim:.1} µs = {sign_us:.1} + {verify_us:.1} + {one_way:.1} + 10"),
                "1.00".into(),
                "goal ≤ 3 × p50".into(),
                "≤ 3".into(),
                "any".into(),
                format!("{} (`PeerId::verify`, one core)", rate(verify)),
                "goal ≥ 0.90".into(),
                "goal: none silently".into(),
                "-".into(),
            ]),
            Err(e) => t.rows.push(
                std::iter::once("limit".to_string())
                    .chain(std::iter::once(format!("failed: {e}")))
                    .chain(std::iter::repeat_n("-".to_string(), 8))
                    .collect(),
            ),
        }
        let lim = limit.as_ref().ok().map(|l| l.0);
        let mut mine = Vec::new();
        for b in node_backends(self.only.as_deref()) {
            let mut hops = Vec::new();
            let mut err = None;
            for _ in 0..self.rounds {
                eprintln!("compare: one-hop latency through nodes on {b} ...");
                match e2e::latency(b, 64, self.dur, None, Duration::ZERO) {
                    Ok(l) => hops.push(l),
                    Err(e) => err = Some(e),
                }
            }
            let one_hop = if hops.is_empty() {
                Err(err.unwrap_or_else(|| "no rounds".into()))
            } else {
                Ok((
                    median(&hops.iter().map(|l| l.p50).collect::<Vec<_>>()),
                    median(&hops.iter().map(|l| l.p99).collect::<Vec<_>>()),
                ))
            };
            let mut echo = Vec::new();
            for &size in &self.sizes {
                eprintln!("compare: echo through nodes on {b}, {size} B ...");
                let fig = e2e::echo(b, size, self.dur, None).map(|e| {
                    let node: u64 = e.node_drops.iter().map(|(_, n)| n).sum();
                    let lost = format!(
                        "counted: host {}, node {node}, send {}",
                        e.host_dropped, e.send_dropped
                    );
                    (e.delivered, lost)
                });
                echo.push((size, fig));
            }
            mine.push(OursFigures {
                backend: b,
                one_hop,
                echo,
            });
        }
        eprintln!("compare: rust-libp2p gossipsub (TCP) ...");
        let libp2p = run_libp2p(&self.libp2p, self.dur, &self.sizes);
        let theirs = libp2p.as_ref().ok().map(|o| parse_libp2p(o, "tcp"));
        let their_p50 = theirs
            .as_ref()
            .and_then(|f| f.one_hop.as_ref())
            .and_then(|r| r.as_ref().ok())
            .map(|x| x.0);
        let their_rate = |size: usize| {
            theirs
                .as_ref()
                .and_then(|f| f.echo.iter().find(|(s, _)| *s == size))
                .and_then(|(_, r)| r.as_ref().ok())
                .map(|x| x.0)
        };
        for o in &mine {
            let p50 = o.one_hop.as_ref().ok().map(|x| x.0);
            for (i, (size, fig)) in o.echo.iter().enumerate() {
                let mut row = vec![format!("ours, {}", o.backend)];
                if i == 0 {
                    match &o.one_hop {
                        Ok((p50, p99)) => row.extend([
                            format!("{p50:.1} µs"),
                            ratio(Some(*p50), lim),
                            format!("{p99:.1} µs"),
                            format!("{:.1}", p99 / p50),
                        ]),
                        Err(e) => failed(&mut row, format!("failed: {e}")),
                    }
                } else {
                    row.extend(std::iter::repeat_n("".to_string(), 4));
                }
                row.push(format!("{size} B"));
                match fig {
                    Ok((d, lost)) => row.extend([
                        rate(*d),
                        format!("{:.2}", d / verify),
                        lost.clone(),
                        format!(
                            "{}{}",
                            ratio(Some(*d), their_rate(*size)),
                            if i == 0 {
                                format!("; {}", ratio(p50, their_p50))
                            } else {
                                String::new()
                            }
                        ),
                    ]),
                    Err(e) => failed(&mut row, format!("failed: {e}")),
                }
                t.rows.push(row);
            }
        }
        match (&libp2p, &theirs) {
            (Ok(_), Some(f)) => {
                for (i, size) in self.sizes.iter().enumerate() {
                    let mut row = vec![
                        "rust-libp2p gossipsub 0.49, TCP (noise, yamux), signed, strict"
                            .to_string(),
                    ];
                    if i == 0 {
                        match &f.one_hop {
                            Some(Ok((p50, p99))) => row.extend([
                                format!("{p50:.1} µs"),
                                ratio(Some(*p50), lim),
                                format!("{p99:.1} µs"),
                                format!("{:.1}", p99 / p50),
                            ]),
                            Some(Err(e)) => failed(&mut row, format!("failed: {e}")),
                            None => failed(&mut row, "not printed".into()),
                        }
                    } else {
                        row.extend(std::iter::repeat_n("".to_string(), 4));
                    }
                    row.push(format!("{size} B"));
                    match f.echo.iter().find(|(s, _)| s == size).map(|(_, r)| r) {
                        Some(Ok((d, lost))) => row.extend([
                            rate(*d),
                            format!("{:.2}", d / verify),
                            lost.clone(),
                            "1.00".into(),
                        ]),
                        Some(Err(e)) => failed(&mut row, format!("failed: {e}")),
                        None => failed(&mut row, "not printed".into()),
                    }
                    t.rows.push(row);
                }
            }
            _ => {
                let e = match &libp2p {
                    Err(e) => e.clone(),
                    Ok(_) => "no figures".into(),
                };
                t.rows.push(
                    std::iter::once("rust-libp2p gossipsub, TCP".to_string())
                        .chain(std::iter::once(format!("skipped: {e}")))
                        .chain(std::iter::repeat_n("-".to_string(), 8))
                        .collect(),
                );
            }
        }
        t.notes.push(format!(
            "One process, one run, {:.1} s per figure: first the limits (median Ed25519 sign and verify, the p50 round \
             trip of a raw 64 B datagram between two threads busy-polling non-blocking sockets, halved), then ours \
             per backend (one-hop: one 64 B message in flight, closed loop, `--rounds` rounds, medians; echo: the \
             publisher publishes flat out, drops counted by the nodes), then the `benches/libp2p` binary as a child \
             process with the same window and sizes (two gossipsub nodes in one process over TCP, \
             `MessageAuthenticity::Signed`, `ValidationMode::Strict`, flood publishing; lost = accepted by \
             `publish` but never delivered within 2 s after the window). Ratios to verify/s use this process's \
             `PeerId::verify` rate{}. Ours ÷ libp2p: delivered msgs/s at the same size (higher is better) and \
             one-hop p50 (lower is better). Nodes run the product's default config (trackers, LAN discovery and \
             the DHT off).",
            self.dur.as_secs_f64(),
            match theirs.as_ref().and_then(|f| f.verify) {
                Some(v) => format!(
                    " ({}); the libp2p process measured {} with `ed25519-dalek`'s cofactorless verify",
                    rate(verify),
                    rate(v)
                ),
                None => String::new(),
            }
        ));
        self.tables.push(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_libp2p_binary_prints() {
        let out = "libp2p Ed25519 verify: 11876 /s (one core, ed25519-dalek)\n\
            libp2p tcp echo 64 B: delivered 13812 msgs/s; accepted 14000/s; queue-full refusals 3; \
            delivered in total 14000 of 14000 accepted (0 lost, 0 reported dropped)\n\
            libp2p tcp echo 1200 B: failed: the subscriber's subscription never arrived\n\
            libp2p tcp one-hop 64 B: p50 187.5 us, p99 301.0 us, p99.9 420.0 us (5000 samples)\n\
            libp2p quic echo 64 B: delivered 1 msgs/s; x (0 lost)\n";
        let f = parse_libp2p(out, "tcp");
        assert_eq!(f.verify, Some(11876.0));
        assert_eq!(f.echo.len(), 2);
        assert_eq!(
            f.echo[0],
            (64, Ok((13812.0, "0 lost, 0 reported dropped".into())))
        );
        assert_eq!(f.echo[1].0, 1200);
        assert!(f.echo[1].1.is_err());
        assert_eq!(f.one_hop, Some(Ok((187.5, 301.0))));
        assert_eq!(parse_libp2p("garbage\n", "tcp"), Libp2pFigures::default());
    }
}
