//! Restart recovery as real processes on loopback (issue #17, finding 1):
//! gateway A dials gateway B; a client hangs off each. One gateway is
//! `kill -9`ed and restarted on the same ports (under a new identity, as a
//! gateway without a stored key does). Then each gateway must again show
//! messages the other side's client published after the restart, and both
//! must count the right peers. Before the fix this took the 30 s idle
//! timeout (dialled side) or left a phantom second peer for 30 s (dialling
//! side). The figures are printed (`RESTART …`) for BENCHMARKS.md; the
//! assertions only bound them loosely (a few seconds), far below 30 s.
//! `MOSS_RESTARTS=N` restarts N times per scenario and prints p50/p99.

mod common;

use common::{json, peer_count, spawn, Gateway};
use std::time::{Duration, Instant};

/// Gateway `g`'s own peer id and its peers' ids (`/api/stats`).
fn ids(g: &Gateway) -> Option<(String, Vec<String>)> {
    let v = json(&g.http, "/api/stats")?;
    let me = v["node"]["public_key"].as_str()?.to_string();
    let peers = v["node"]["peers"]
        .as_array()?
        .iter()
        .filter_map(|p| p["peer_id"].as_str().map(str::to_string))
        .collect();
    Some((me, peers))
}

/// Peer counts are right: each gateway holds the other gateway and its own
/// client, and no session of a dead identity (a peer may also hold direct
/// sessions with the other side's client: punches and NAT probes make
/// them on purpose).
fn counts_right(a: &Gateway, b: &Gateway, clients: &[String; 2]) -> bool {
    let (Some((ia, pa)), Some((ib, pb))) = (ids(a), ids(b)) else {
        return false;
    };
    let live = [
        ia.clone(),
        ib.clone(),
        clients[0].clone(),
        clients[1].clone(),
    ];
    let only_live = |ps: &[String]| ps.iter().all(|p| live.contains(p));
    pa.contains(&ib)
        && pa.contains(&clients[0])
        && pb.contains(&ia)
        && pb.contains(&clients[1])
        && only_live(&pa)
        && only_live(&pb)
}

/// True if gateway `g` shows a "chat" message whose text starts with
/// `prefix` and whose sequence (after the prefix) is at least `min`.
fn shows(g: &Gateway, prefix: &str, min: u64) -> bool {
    json(&g.http, "/api/messages?topic=chat")
        .and_then(|v| v.as_array().cloned())
        .is_some_and(|list| {
            list.iter().any(|m| {
                m["text"]
                    .as_str()
                    .and_then(|t| t.strip_prefix(prefix))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|n| n >= min)
            })
        })
}

fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {limit:?} waiting for: {what}");
}

fn client(gw: &Gateway) -> moss::Node {
    let cfg = format!(
        r#"{{"trackers":[],"lan_discovery_enabled":false,"dht_enabled":false,"static_peers":["127.0.0.1:{}"]}}"#,
        gw.udp
    );
    let c = moss::Node::builder("local")
        .config(moss::Config::from_json(&cfg).unwrap())
        .bind("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap();
    c.join("chat").unwrap();
    c
}

/// A client publishing `prefix<k>` every 50 ms on a thread until `stop`.
fn publisher(
    c: std::sync::Arc<moss::Node>,
    prefix: &'static str,
    seq: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let k = seq.fetch_add(1, Ordering::Relaxed);
            let _ = c.publish("chat", format!("{prefix}{k}").as_bytes());
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// Restarts gateway `who` (0 = A, the dialler; 1 = B, the dialled) and
/// measures recovery.
fn scenario(who: usize) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let b = spawn::<&str>(&[]);
    let a = spawn(&["-static".into(), format!("127.0.0.1:{}", b.udp)]);
    let settle = Duration::from_secs(20);
    eventually("gateways connected", settle, || {
        peer_count(&a) == Some(1) && peer_count(&b) == Some(1)
    });
    let ca = Arc::new(client(&a));
    let cb = Arc::new(client(&b));
    eventually("clients connected", settle, || {
        peer_count(&a) == Some(2) && peer_count(&b) == Some(2)
    });
    let clients = [ca.public_key().to_hex(), cb.public_key().to_hex()];
    let stop = Arc::new(AtomicBool::new(false));
    let (sa, sb) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let ta = publisher(ca.clone(), "a-", sa.clone(), stop.clone());
    let tb = publisher(cb.clone(), "b-", sb.clone(), stop.clone());
    eventually("messages flow before the restart", settle, || {
        shows(&b, "a-", 0) && shows(&a, "b-", 0)
    });
    let mut gws = [a, b];
    let mut flows = Vec::new();
    let mut counted = Vec::new();
    for round in 0..rounds() {
        let (flow, counts) = restart_once(&mut gws, who, &clients, &sa, &sb);
        eprintln!(
            "RESTART {} #{round}: messages both ways {flow:.3} s, peer counts right {counts:.3} s",
            side(who)
        );
        flows.push(flow);
        counted.push(counts);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = (ta.join(), tb.join());
    flows.sort_by(f64::total_cmp);
    counted.sort_by(f64::total_cmp);
    eprintln!(
        "RESTART {} over {} restarts: messages both ways p50 {:.3} s p99 {:.3} s max {:.3} s; peer counts right p50 {:.3} s p99 {:.3} s max {:.3} s",
        side(who),
        flows.len(),
        quantile(&flows, 0.5),
        quantile(&flows, 0.99),
        flows.last().copied().unwrap_or(0.0),
        quantile(&counted, 0.5),
        quantile(&counted, 0.99),
        counted.last().copied().unwrap_or(0.0),
    );
}

/// Restarts per scenario: `MOSS_RESTARTS` (for BENCHMARKS.md), else 1.
fn rounds() -> usize {
    std::env::var("MOSS_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn side(who: usize) -> &'static str {
    if who == 0 {
        "dialling"
    } else {
        "dialled"
    }
}

/// The `q` quantile of sorted `v` (nearest rank).
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Kills and restarts gateway `who` once; returns the seconds from the
/// restart until messages flowed both ways and until the peer counts were
/// right, after checking that they stay right (no phantom peer later).
fn restart_once(
    gws: &mut [Gateway; 2],
    who: usize,
    clients: &[String; 2],
    sa: &std::sync::atomic::AtomicU64,
    sb: &std::sync::atomic::AtomicU64,
) -> (f64, f64) {
    use std::sync::atomic::Ordering;
    let restarted = gws[who].kill_and_restart();
    // Only messages published after the restart count.
    let (min_a, min_b) = (sa.load(Ordering::Relaxed), sb.load(Ordering::Relaxed));
    let [a, b] = &*gws;
    let limit = Duration::from_secs(5);
    let (mut up, mut flow, mut counts) = (None, None, None);
    while restarted.elapsed() < limit && (flow.is_none() || counts.is_none()) {
        let t = restarted.elapsed();
        if up.is_none() && peer_count(&gws[who]).is_some() {
            up = Some(t);
        }
        if flow.is_none() && shows(b, "a-", min_a) && shows(a, "b-", min_b) {
            flow = Some(t);
        }
        if counts.is_none() && counts_right(a, b, clients) {
            counts = Some(t);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = |d: Option<Duration>| d.map(|d| format!("{:.3}", d.as_secs_f64()));
    eprintln!(
        "RESTART {}: after kill -9 + restart, HTTP up {:?} s, messages both ways {:?} s, peer counts right {:?} s",
        side(who),
        secs(up),
        secs(flow),
        secs(counts)
    );
    for (n, g) in [("A", a), ("B", b)]
        .into_iter()
        .filter(|_| flow.is_none() || counts.is_none())
    {
        let st = json(&g.http, "/api/stats");
        let node = st.as_ref().map(|v| v["node"].clone());
        eprintln!(
            "{n}: peers {:?} shows a {} b {} stats {}",
            peer_count(g),
            shows(g, "a-", min_a),
            shows(g, "b-", min_b),
            node.map(|v| v.to_string()).unwrap_or_default()
        );
    }
    let (Some(flow), Some(counts)) = (flow, counts) else {
        panic!("within {limit:?}: messages both ways {flow:?}, peer counts right {counts:?}");
    };
    // Stays right: no phantom peer appears later either.
    std::thread::sleep(Duration::from_millis(500));
    assert!(counts_right(a, b, clients), "a phantom peer appeared");
    (flow.as_secs_f64(), counts.as_secs_f64())
}

#[test]
fn dialled_gateway_restart_recovers_in_seconds() {
    scenario(1);
}

#[test]
fn dialling_gateway_restart_recovers_in_seconds() {
    scenario(0);
}
