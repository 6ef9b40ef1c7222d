//! On-demand meshes of a real `moss-gateway` run on its one shared engine:
//! 30 new `?meshid=` meshes add one file descriptor each (their sockets)
//! and no thread, counted in `/proc/<pid>`. With `-shared-engine=false`
//! each mesh adds an engine thread and its backend's descriptors.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

/// On-demand meshes requested, one after another.
const MESHES: usize = 30;

/// (threads, fds) of process `pid`.
fn usage(pid: u32) -> (usize, usize) {
    let count = |d: String| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    (
        count(format!("/proc/{pid}/task")),
        count(format!("/proc/{pid}/fd")),
    )
}

/// Starts a gateway with `flags`, requests [`MESHES`] new meshes; returns
/// its (threads, fds) growth.
fn growth(flags: &[&str]) -> (usize, usize) {
    let mut args = vec!["-max-meshes", "64", "-telemetry=false"];
    args.extend(flags);
    let g = common::spawn(&args);
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::get(&g.http, "/api/stats").map(|r| r.0) != Some(200) {
        assert!(Instant::now() < deadline, "gateway did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The first request's HTTP worker threads exist from here on.
    let base = usage(g.child.id());
    for i in 0..MESHES {
        let got = common::json(&g.http, &format!("/api/stats?meshid=od-{i}"));
        assert!(got.is_some(), "mesh od-{i} did not come up");
    }
    // Closed HTTP connections leave the table a moment later: the
    // smallest count seen within a second.
    let mut least = usage(g.child.id());
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        let u = usage(g.child.id());
        least = (least.0.min(u.0), least.1.min(u.1));
    }
    (
        least.0.saturating_sub(base.0),
        least.1.saturating_sub(base.1),
    )
}

#[test]
fn on_demand_meshes_cost_one_socket_and_no_thread() {
    let (threads, fds) = growth(&[]);
    let (own_threads, own_fds) = growth(&["-shared-engine=false"]);
    eprintln!(
        "{MESHES} on-demand meshes: shared engine +{threads} threads +{fds} fds; \
         own engines +{own_threads} threads +{own_fds} fds"
    );
    // The engine's thread, once, plus the HTTP server's blocking threads
    // (they linger 10 s after a request; 1-3 here): far below one a mesh.
    assert!(
        threads < MESHES / 3,
        "+{threads} threads for {MESHES} meshes"
    );
    assert!(
        (MESHES..=MESHES + 2).contains(&fds),
        "+{fds} fds for {MESHES} meshes (want one socket each + 2)"
    );
    // The comparison shows what the shared engine saves.
    assert!(
        own_threads >= MESHES,
        "+{own_threads} threads with own engines"
    );
    assert!(own_fds >= 2 * MESHES, "+{own_fds} fds with own engines");
}
