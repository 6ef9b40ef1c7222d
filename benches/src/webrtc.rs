//! `moss-bench webrtc`: the DataChannel path beside UDP. Two real engine
//! nodes meet only through a `moss-signal` server (in process, loopback)
//! and a str0m DataChannel (ICE host candidates on 127.0.0.1, DTLS, SCTP
//! unordered with no retransmits); in the same run two nodes of the same
//! build meet over plain UDP. For each: messages/s delivered with the
//! publisher flat out, and publish→deliver one-hop latency (p50/p99, one
//! message in flight). The ratio DataChannel/UDP is the figure to read.

use crate::e2e::{self, Pair, TOPIC};
use crate::report::{rate, Table};
use moss::{Config, Node};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const MESH: &str = "moss-bench-webrtc";
const SETUP: Duration = Duration::from_secs(30);

fn start(signal: Option<SocketAddr>) -> Result<Node, String> {
    let mut c =
        Config::from_json(r#"{"trackers":[],"lan_discovery_enabled":false,"dht_enabled":false}"#)
            .map_err(|e| e.to_string())?;
    c.engine.shards = 1;
    c.transport.tcp_enabled = false;
    if let Some(s) = signal {
        c.webrtc.enabled = true;
        c.webrtc.signal = vec![format!("ws://{s}")];
        c.webrtc.ice_ips = vec!["127.0.0.1".into()];
    }
    Node::builder(MESH)
        .config(c)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .start()
        .map_err(|e| e.to_string())
}

/// A pair over a DataChannel (`signal` given) or over UDP (dialled).
fn pair(signal: Option<SocketAddr>) -> Result<Pair, String> {
    let a = start(signal)?;
    let b = start(signal)?;
    let sub = b.subscribe(TOPIC).map_err(|e| e.to_string())?;
    if signal.is_none() {
        a.connect_wait(&b.local_addr().to_string(), SETUP)
            .map_err(|e| format!("connect: {e}"))?;
    }
    a.wait_for_subscriber(TOPIC, SETUP)
        .map_err(|e| format!("subscriber: {e}"))?;
    let st = a.stats().map_err(|e| e.to_string())?;
    let want = if signal.is_some() {
        "channel:"
    } else {
        "127.0.0.1:"
    };
    if !st.peers.iter().all(|p| p.addr.starts_with(want)) {
        return Err(format!(
            "unexpected path: {:?}",
            st.peers.iter().map(|p| &p.addr).collect::<Vec<_>>()
        ));
    }
    Ok(Pair { a, b, sub })
}

/// Messages/s delivered while `p.a` publishes `size`-byte messages flat out for `dur`.
fn throughput(p: Pair, size: usize, dur: Duration) -> Result<f64, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let h = e2e::counter(p.sub, stop.clone(), count.clone());
    let data = vec![0x5Au8; size];
    e2e::publish_until(&p.a, &data, Instant::now() + Duration::from_millis(200))?;
    thread::sleep(Duration::from_millis(100));
    let c0 = count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    e2e::publish_until(&p.a, &data, t0 + dur)?;
    let el = t0.elapsed();
    let c1 = count.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    Ok((c1 - c0) as f64 / el.as_secs_f64())
}

impl crate::Run {
    /// `moss-bench all`'s WebRTC part: the scenario when this build has
    /// the `webrtc` feature, else a table that says it was skipped and how
    /// to include it.
    pub(crate) fn webrtc_in_all(&mut self) {
        if cfg!(feature = "webrtc") {
            return self.webrtc();
        }
        let why = "skipped: this moss-bench was built without the `webrtc` feature \
                   (`cargo run --release -p moss-bench --features webrtc -- all` includes it)";
        eprintln!("moss-bench all: webrtc {why}");
        let mut t = Table::new("WebRTC DataChannel path vs UDP", vec!["scenario", "result"]);
        t.rows.push(vec!["webrtc".into(), why.into()]);
        self.tables.push(t);
    }

    /// DataChannel vs UDP: messages/s and one-hop p50/p99.
    pub(crate) fn webrtc(&mut self) {
        let mut t = Table::new(
            "WebRTC DataChannel path vs UDP (two real nodes on 127.0.0.1)",
            vec![
                "path",
                "size",
                "delivered msg/s",
                "ratio to UDP",
                "one-hop p50 µs",
                "p99 µs",
                "samples",
            ],
        );
        let signal = moss_signal::background::Background::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            moss_signal::limits::Limits::default(),
        )
        .map_err(|e| format!("signal server: {e}"));
        for &size in &self.sizes {
            let mut udp_rate = None;
            for (name, path) in [("UDP", None), ("DataChannel", Some(()))] {
                let sig = match (&signal, path) {
                    (Ok(s), Some(())) => Some(s.addr()),
                    (Err(e), Some(())) => {
                        t.rows.push(failed_row(name, size, e));
                        continue;
                    }
                    _ => None,
                };
                // Latency first, on the fresh pair: a flood's backlog would
                // answer the first receives.
                let r = pair(sig).and_then(|p| {
                    let l = e2e::latency_on(&p, size, self.dur, Duration::ZERO)?;
                    throughput(p, size, self.dur).map(|r| (r, l))
                });
                match r {
                    Ok((r, l)) => {
                        if path.is_none() {
                            udp_rate = Some(r);
                        }
                        t.rows.push(vec![
                            name.into(),
                            format!("{size} B"),
                            rate(r),
                            udp_rate.map_or("-".into(), |u| format!("{:.3}", r / u)),
                            format!("{:.0}", l.p50),
                            format!("{:.0}", l.p99),
                            l.samples.to_string(),
                        ]);
                    }
                    Err(e) => t.rows.push(failed_row(name, size, &e)),
                }
            }
        }
        t.notes.push(
            "Both pairs: unsharded engines, same build and run; latency first on the fresh pair, then the flood. DataChannel: signal server in process, \
             str0m (OpenSSL DTLS), SCTP unordered with maxRetransmits 0; UDP: the portable/auto backend."
                .into(),
        );
        self.tables.push(t);
    }
}

/// A table row for a path whose run failed with `e`.
fn failed_row(name: &str, size: usize, e: &str) -> Vec<String> {
    let mut row = vec![
        name.to_string(),
        format!("{size} B"),
        format!("failed: {e}"),
    ];
    row.resize(7, "-".into());
    row
}
