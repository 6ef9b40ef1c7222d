//! A node hears its gateway announce itself (RFC 6887 §14.1 PCP ANNOUNCE,
//! multicast to 224.0.0.1:5350) and maps its port at once. The gateway is
//! the real miniupnpd (NAT-PMP and PCP) on the natlab's `mapped` router
//! (`nat/scripts/natlab`, namespaces prefixed `mpa<pid>-`), started after
//! two nodes of one host (both listen on 5350: SO_REUSEPORT) have failed
//! their first round and wait a 60 s retry: only the announcement can make
//! them map within 10 s. Before miniupnpd starts, an announcement from
//! another host on the LAN is counted and ignored. Then the router's WAN
//! address changes and miniupnpd is told (SIGUSR1, as a DHCP hook would):
//! it multicasts a NAT-PMP public-address notice and a PCP ANNOUNCE, and
//! both nodes must report the new external address within 10 s (their
//! renewal is 30 min away). The nodes run in a child
//! process (this test binary, re-run inside the host's namespace, where the
//! default route is the router). Needs root, `ip`, `nft`, `miniupnpd` and
//! `turnserver` (a visible skip otherwise, a failure under `CI=true`).

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::skip;

/// Set in the child process: it runs the nodes.
const CHILD_ENV: &str = "MOSS_PORTMAP_ANNOUNCE_CHILD";
/// The nodes' ports.
const PORTS: [u16; 2] = [4421, 4422];
/// The retry after the first failed round: far longer than the test waits.
const RETRY: Duration = Duration::from_secs(60);
/// How long after miniupnpd's start a mapping may take (the announcement
/// comes at once; 10 s leaves room for a loaded machine and is still far
/// below [`RETRY`]).
const WITHIN: Duration = Duration::from_secs(10);
/// The `mapped` router's WAN address (natlab).
const WAN: &str = "192.0.32.107";
/// The WAN address it moves to.
const NEW_WAN: &str = "192.0.32.108";
/// The router's LAN (natlab site 7).
const LAN: &str = "192.168.7.0/24";

fn natlab() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../nat/scripts/natlab").to_string()
}

/// The lab of this test; torn down on drop.
struct Lab {
    prefix: String,
}

impl Lab {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(natlab());
        c.args(args).env("NATLAB_PREFIX", &self.prefix);
        c
    }

    fn run(&self, args: &[&str]) -> Result<(), String> {
        let out = self
            .cmd(args)
            .output()
            .map_err(|e| format!("natlab: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "natlab {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

/// Why this machine cannot run the lab, if it cannot.
fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for network namespaces".into());
    }
    for tool in ["ip", "nft", "miniupnpd", "turnserver"] {
        let found = Command::new("sh")
            .args([
                "-c",
                &format!("command -v {tool} || test -x /usr/sbin/{tool}"),
            ])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} missing (nat/scripts/install-test-deps.sh)"));
        }
    }
    None
}

/// Lines from the child's stdout, on a channel.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line starting with `tag`, within `d`.
fn expect(rx: &mpsc::Receiver<String>, tag: &str, d: Duration) -> Option<String> {
    let end = Instant::now() + d;
    loop {
        let l = rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .ok()?;
        eprintln!("child: {l}");
        if l.starts_with(tag) {
            return Some(l);
        }
    }
}

#[test]
fn nodes_map_at_once_when_the_gateway_announces_itself() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    if let Some(why) = missing() {
        skip(&format!("gateway announcement lab: {why}"));
        return;
    }
    let lab = Lab {
        prefix: format!("mpa{}-", std::process::id() % 100_000),
    };
    let _ = lab.run(&["down"]);
    lab.run(&["up", "--kinds", "mapped", "--no-twins"])
        .expect("natlab up");
    let exe = std::env::current_exe().expect("test binary");
    let exe = exe.to_str().expect("utf-8 path");
    let mut child = lab
        .cmd(&[
            "exec",
            "h-mapped",
            exe,
            "child_nodes",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .expect("child");
    let rx = lines(&mut child);
    let started = expect(&rx, "started", Duration::from_secs(30));
    assert!(started.is_some(), "the child's nodes did not start");
    // A stranger's announcement is counted and ignored.
    let ignored = expect(&rx, "ignored", Duration::from_secs(10));
    assert!(
        ignored.is_some(),
        "an announcement from another host was not counted as ignored"
    );
    // Both nodes' first round (PCP, NAT-PMP) fails without miniupnpd; they
    // now wait the 60 s retry.
    expect(&rx, "waiting", Duration::from_secs(20)).expect("first round");
    let t0 = Instant::now();
    lab.run(&["portmap", "nat-mapped", LAN]).expect("miniupnpd");
    for _ in PORTS {
        let Some(l) = expect(&rx, "mapped", WITHIN.saturating_sub(t0.elapsed())) else {
            let _ = child.kill();
            panic!(
                "not every node mapped within {WITHIN:?} of miniupnpd's start (the retry is {RETRY:?})"
            );
        };
        eprintln!(
            "{:.2} s after miniupnpd started: {l}",
            t0.elapsed().as_secs_f64()
        );
        assert!(l.contains(&format!(" {WAN}:")), "mapped elsewhere: {l}");
        assert!(
            !l.contains("announcements=0 "),
            "mapped without an announcement: {l}"
        );
        assert!(
            l.contains(" protocol=pcp "),
            "PCP (asked first) should map: {l}"
        );
    }
    // The WAN address changes; miniupnpd announces it.
    std::thread::sleep(Duration::from_millis(500));
    // (Deleting the old address first: a primary's deletion takes its
    // secondaries with it; the default route goes with it too.)
    let (old, new) = (format!("{WAN}/24"), format!("{NEW_WAN}/24"));
    for args in [
        ["addr", "del", &old, "dev", "wan0"],
        ["addr", "add", &new, "dev", "wan0"],
        ["route", "add", "default", "via", "192.0.32.1"],
    ] {
        let mut a = vec!["exec", "nat-mapped", "ip"];
        a.extend(args);
        lab.run(&a).expect("readdress the WAN");
    }
    let pid_file = format!(
        "/run/moss-natlab-{}/miniupnpd-nat-mapped.self.pid",
        lab.prefix.trim_end_matches('-')
    );
    let pid = std::fs::read_to_string(&pid_file).expect("miniupnpd's pid");
    let t1 = Instant::now();
    let ok = Command::new("kill")
        .args(["-USR1", pid.trim()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "SIGUSR1 to miniupnpd");
    for _ in PORTS {
        let Some(l) = expect(&rx, "moved", WITHIN.saturating_sub(t1.elapsed())) else {
            expect(&rx, "unchanged", Duration::from_secs(40));
            panic!("not every node took the announced address {NEW_WAN} within {WITHIN:?}");
        };
        eprintln!(
            "{:.2} s after the address change: {l}",
            t1.elapsed().as_secs_f64()
        );
        assert!(l.contains(&format!(" {NEW_WAN}:")), "moved elsewhere: {l}");
    }
    let _ = child.wait();
}

/// The child: two nodes in the lab host's namespace (run by the test above).
#[test]
#[ignore = "run by nodes_map_at_once_when_the_gateway_announces_itself inside the lab"]
fn child_nodes() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let nodes: Vec<moss::Node> = PORTS
        .iter()
        .map(|&p| {
            let mut c = common::cfg("portable", None);
            c.nat.pcp_enabled = true;
            c.nat.natpmp_enabled = true;
            moss::Node::builder("portmap-announce")
                .config(c)
                .bind(format!("0.0.0.0:{p}").parse().unwrap())
                .port_mapping_retry(RETRY)
                .start()
                .expect("node")
        })
        .collect();
    let pm = |n: &moss::Node| n.stats().expect("stats").port_mapping;
    for n in &nodes {
        assert_eq!(pm(n).announce_error, None, "not listening");
    }
    println!("started");
    // miniupnpd's ANNOUNCE, sent by this host (192.168.7.2), not the gateway.
    let stranger = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let announce = moss_nat::announce::Announcement::Restarted { epoch: 0 }.encode();
    stranger
        .send_to(
            &announce,
            (moss_nat::announce::GROUP, moss_nat::announce::CLIENT_PORT),
        )
        .unwrap();
    assert!(common::wait_for(|| nodes
        .iter()
        .all(|n| pm(n).announcements_ignored >= 1)));
    assert!(nodes.iter().all(|n| pm(n).announcements == 0));
    println!("ignored");
    assert!(common::wait_for(|| nodes
        .iter()
        .all(|n| pm(n).failures >= 2)));
    println!("waiting");
    // Each node's first external address, then a different one.
    for tag in ["mapped", "moved"] {
        let mut left: Vec<(&moss::Node, Option<std::net::SocketAddr>)> =
            nodes.iter().map(|n| (n, pm(n).external)).collect();
        let end = Instant::now() + Duration::from_secs(40);
        while !left.is_empty() && Instant::now() < end {
            left.retain(|(n, before)| {
                let s = pm(n);
                let Some(ext) = s.external.filter(|e| Some(*e) != *before) else {
                    return true;
                };
                println!(
                    "{tag} {ext} protocol={} announcements={} failures={} renewed={} ",
                    s.protocol.unwrap_or("-"),
                    s.announcements,
                    s.failures,
                    s.renewed
                );
                false
            });
            std::thread::sleep(Duration::from_millis(20));
        }
        for (n, _) in left {
            println!("unchanged {:?}", pm(n));
        }
    }
}
