//! Builds `examples/c/relay_events.c` and runs it in a network namespace
//! of this test's own (`unshare -n`, loopback up) whose nftables input
//! hook drops UDP between A's and B's ports both ways. When the program
//! prints `RELAYED` (A and B relayed through supernode S), this test
//! deletes the rule from outside (`nsenter -t <pid> -n nft delete table
//! …`); the program then sees event 7 and, once A and B stop, event 4 at
//! S. Events 3, 7 and 4 must reach the C callbacks in that order. Needs
//! root, `unshare`, `nsenter`, `ip` and `nft` (a visible skip otherwise, a
//! failure under `CI=true`).

#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// UDP ports of S, A and B (the namespace is fresh: nothing else binds).
const PORTS: [u16; 3] = [41001, 41002, 41003];
/// The nftables table holding the cut.
const TABLE: &str = "moss_cut";
/// The whole run: the program's own waits add up to less than this.
const DEADLINE: Duration = Duration::from_secs(150);

/// The ruleset that cuts the direct path between A and B (dropped on
/// input, so the sender's `sendmsg` still succeeds).
fn cut_rules() -> String {
    let (a, b) = (PORTS[1], PORTS[2]);
    format!(
        "table inet {TABLE} {{\n  chain input {{\n    type filter hook input priority 0; policy accept;\n    \
         udp sport {a} udp dport {b} drop\n    udp sport {b} udp dport {a} drop\n  }}\n}}\n"
    )
}

/// Why this machine cannot run the test, if it cannot: a namespace of our
/// own with loopback up and an nftables table in it must be possible.
fn unsupported() -> Option<String> {
    let probe = format!("ip link set lo up && nft add table inet {TABLE}");
    match Command::new("unshare")
        .args(["-n", "--", "sh", "-c", &probe])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "no network namespace with nftables here: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("unshare: {e}")),
    }
}

/// The valgrind run of `c_example.rs`: no invalid accesses, no use of
/// uninitialised memory, no definite leaks, the `mmsg` backend (valgrind
/// does not model io_uring ring memory).
const VALGRIND: &str = "valgrind --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=definite --track-origins=yes";

/// Starts `exe` (under valgrind with `valgrind`) in a fresh network
/// namespace with the cut in place. `sh` execs the program (or valgrind,
/// which runs it in its own process), and `unshare` (no `--fork`) execs
/// `sh`: the child's pid names the namespace.
fn spawn_cut(exe: &Path, rules: &Path, valgrind: bool) -> Child {
    let ports = PORTS.map(|p| p.to_string()).join(" ");
    let wrapper = if valgrind { VALGRIND } else { "" };
    let script = format!("ip link set lo up && nft -f \"$1\" && exec {wrapper} \"$0\" {ports}");
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "--", "sh", "-c", &script])
        .arg(exe)
        .arg(rules)
        .env("LD_LIBRARY_PATH", common::lib_dir());
    if valgrind {
        cmd.env("MOSS_BACKEND", "mmsg");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn unshare")
}

/// Deletes the cut in the namespace of process `pid`.
fn heal(pid: u32) -> Result<(), String> {
    let o = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "nft",
            "delete",
            "table",
            "inet",
            TABLE,
        ])
        .output()
        .map_err(|e| format!("nsenter: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

/// Runs the program (built as `name`, under valgrind with `valgrind`),
/// healing the cut when it prints `RELAYED`; its stdout, stderr, whether
/// it exited 0, and whether the cut was healed.
fn run(name: &str, valgrind: bool) -> (String, String, bool, bool) {
    let exe = common::compile_c("relay_events.c", name, false);
    let rules = common::scratch("relay_events").join(format!("{name}.nft"));
    std::fs::write(&rules, cut_rules()).expect("write the ruleset");
    let mut child = spawn_cut(&exe, &rules, valgrind);
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let errs = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let end = Instant::now() + DEADLINE;
    let mut out = String::new();
    let mut healed = false;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                if line.starts_with("RELAYED") && !healed {
                    healed = true;
                    if let Err(e) = heal(pid) {
                        out.push_str(&format!("(test) healing failed: {e}\n"));
                    }
                }
                out.push_str(&line);
                out.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                out.push_str("(test) deadline passed: killed\n");
                let _ = child.kill();
                break;
            }
        }
    }
    let status = child.wait().expect("wait for the program");
    let _ = reader.join();
    let err = errs.join().unwrap_or_default();
    (out, err, status.success(), healed)
}

/// Where `needle` first occurs in `out` (`usize::MAX` if it does not).
fn at(out: &str, needle: &str) -> usize {
    out.find(needle).unwrap_or(usize::MAX)
}

/// Runs the program (see [`run`]) and checks what it printed: events 3
/// (at S), 7 (at A or B, after `RELAYED`) and 4 (at S, naming the failed
/// condition) reached the C event callbacks in that order, after a failed
/// direct dial (the cut held); messages went both ways through S before
/// event 7 and direct after it; the program's own checks passed. Its
/// stderr, or `None` when the machine cannot run it (a visible skip).
fn run_and_check(name: &str, valgrind: bool) -> Option<String> {
    if let Some(why) = unsupported() {
        common::skip(&why);
        return None;
    }
    let (out, err, success, healed) = run(name, valgrind);
    let all = format!("stdout:\n{out}\nstderr:\n{err}");
    assert!(success, "the example failed\n{all}");
    assert!(out.ends_with("\nOK\n"), "{all}");
    assert!(healed, "RELAYED printed, the cut healed\n{all}");
    let dial = format!("A: Moss_Connect(127.0.0.1:{}) = -", PORTS[2]);
    let promoted = at(&out, "S: event 3 (supernode promoted) {}");
    let failed_dial = at(&out, &dial);
    let through_s = at(&out, "\"relayed\" delivered both ways: 1");
    let relayed = at(&out, "\nRELAYED");
    let migrated = at(
        &out,
        ": event 7 (relay migrated to a direct path) {\"peer_id\":",
    );
    let direct = at(&out, "\"direct\" delivered both ways: 1");
    let revoked = at(&out, "S: event 4 (supernode revoked) {\"reason\":");
    let order = [
        promoted,
        failed_dial,
        through_s,
        relayed,
        migrated,
        direct,
        revoked,
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]) && revoked < out.len(),
        "event 3, a failed direct dial, pub/sub through S, RELAYED, event 7, pub/sub \
         direct, event 4, in that order\n{all}"
    );
    Some(err)
}

/// Events 3, 7 and 4 reach the C callbacks in order ([`run_and_check`]).
#[test]
fn c_relay_events_3_7_4_in_order() {
    run_and_check("relay_events", false);
}

/// The same under valgrind (as `c_example.rs` runs `two_nodes.c`): no
/// memory errors, no definite leaks.
#[test]
fn c_relay_events_under_valgrind() {
    let Some(err) = run_and_check("relay_events_valgrind", true) else {
        return;
    };
    assert!(
        err.contains("definitely lost: 0 bytes") || err.contains("All heap blocks were freed"),
        "{err}"
    );
    assert!(err.contains("ERROR SUMMARY: 0 errors"), "{err}");
}
