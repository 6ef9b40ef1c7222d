//! `moss-bench-libp2p`: two rust-libp2p gossipsub nodes in one process on
//! loopback, messages signed and checked (`ValidationMode::Strict`),
//! measured the way `moss-bench echo` and the one-hop latency rows measure
//! two Moss nodes: the publisher publishes flat out for the window and the
//! subscriber counts deliveries; then one message in flight at a time,
//! timed from `publish` to delivery. Prints one line per figure.

use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, PublishError, ValidationMode};
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, SwarmBuilder};
use std::error::Error;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Boxed error of the setup steps.
type BoxError = Box<dyn Error + Send + Sync>;

/// The topic both nodes use.
const TOPIC: &str = "bench";

/// Command-line options (`--duration S --sizes 64,1200 --transports tcp`).
struct Args {
    dur: Duration,
    sizes: Vec<usize>,
    transports: Vec<String>,
}

/// Parses the few flags this bench takes.
fn args() -> Result<Args, String> {
    let mut a = Args {
        dur: Duration::from_secs(1),
        sizes: vec![64, 1200],
        transports: vec!["tcp".into()],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--duration" => {
                let s: f64 = v.parse().map_err(|_| format!("bad --duration {v}"))?;
                if !(s > 0.0 && s <= 10.0) {
                    return Err("--duration must be in (0, 10] seconds".into());
                }
                a.dur = Duration::from_secs_f64(s);
            }
            "--sizes" => {
                a.sizes = v
                    .split(',')
                    .map(|x| x.parse().map_err(|_| format!("bad size {x}")))
                    .collect::<Result<_, _>>()?;
            }
            "--transports" => a.transports = v.split(',').map(str::to_string).collect(),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

/// One gossipsub node: signed messages, strict validation, the defaults
/// otherwise (flood publishing on, so the one subscribed peer gets every
/// message before any mesh exists).
fn node() -> Result<Swarm<gossipsub::Behaviour>, BoxError> {
    let swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| -> Result<gossipsub::Behaviour, BoxError> {
            let cfg = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Strict)
                .build()
                .map_err(|e| e.to_string())?;
            Ok(gossipsub::Behaviour::new(
                MessageAuthenticity::Signed(key.clone()),
                cfg,
            )?)
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    Ok(swarm)
}

/// A connected pair: `a` publishes, `b` is subscribed and `a` knows it.
async fn pair(transport: &str) -> Result<(Swarm<gossipsub::Behaviour>, Swarm<gossipsub::Behaviour>), BoxError> {
    let topic = IdentTopic::new(TOPIC);
    let mut a = node()?;
    let mut b = node()?;
    b.behaviour_mut().subscribe(&topic)?;
    let listen: Multiaddr = match transport {
        "tcp" => "/ip4/127.0.0.1/tcp/0".parse()?,
        other => return Err(format!("unknown transport {other}").into()),
    };
    b.listen_on(listen)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = loop {
        if Instant::now() > deadline {
            return Err("no listen address".into());
        }
        if let SwarmEvent::NewListenAddr { address, .. } = b.select_next_some().await {
            break address;
        }
    };
    a.dial(addr)?;
    // Drive both until `a` has seen `b`'s subscription.
    loop {
        if Instant::now() > deadline {
            return Err("the subscriber's subscription never arrived".into());
        }
        tokio::select! {
            ev = a.select_next_some() => {
                if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) = ev {
                    break;
                }
            }
            _ = b.select_next_some() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    Ok((a, b))
}

/// Drives the subscriber in its own task until `stop`: counts messages
/// and, when `tx` is set, reports each one.
fn subscriber(
    mut b: Swarm<gossipsub::Behaviour>,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    tx: Option<mpsc::UnboundedSender<()>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::select! {
                ev = b.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub::Event::Message { .. }) = ev {
                        count.fetch_add(1, Ordering::Relaxed);
                        if let Some(tx) = &tx {
                            let _ = tx.send(());
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    })
}

/// What the publisher's loop counted.
#[derive(Default)]
struct Published {
    /// Publishes the behaviour accepted.
    accepted: u64,
    /// Publishes refused because the peer's send queue was full.
    queue_full: u64,
    /// Messages the behaviour reported it dropped later (slow peer).
    failed: u64,
}

/// Publishes `data` flat out until `until`, driving the publisher's swarm
/// between bursts; a full queue yields (back-pressure, counted).
async fn publish_until(a: &mut Swarm<gossipsub::Behaviour>, data: &[u8], until: Instant) -> Published {
    let topic = IdentTopic::new(TOPIC);
    let mut p = Published::default();
    while Instant::now() < until {
        for _ in 0..64 {
            match a.behaviour_mut().publish(topic.clone(), data.to_vec()) {
                Ok(_) => p.accepted += 1,
                Err(PublishError::AllQueuesFull(_)) => {
                    p.queue_full += 1;
                    break;
                }
                Err(_) => break,
            }
        }
        while let Some(ev) = a.next().now_or_never().flatten() {
            if let SwarmEvent::Behaviour(gossipsub::Event::SlowPeer { failed_messages, .. }) = ev {
                p.failed += failed_messages.total() as u64;
            }
        }
        tokio::task::yield_now().await;
    }
    p
}

/// Delivered messages/s at `size` bytes over `transport`.
async fn echo(transport: &str, size: usize, dur: Duration) -> Result<String, BoxError> {
    let (mut a, b) = pair(transport).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let h = subscriber(b, stop.clone(), count.clone(), None);
    let data = vec![0x5Au8; size];
    publish_until(&mut a, &data, Instant::now() + Duration::from_millis(200)).await;
    // Let the warm-up backlog drain before the window.
    let settle = Instant::now() + Duration::from_millis(200);
    while Instant::now() < settle {
        tokio::select! {
            _ = a.select_next_some() => {}
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
    }
    let c0 = count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let p = publish_until(&mut a, &data, t0 + dur).await;
    let el = t0.elapsed().as_secs_f64();
    let c1 = count.load(Ordering::Relaxed);
    // What arrives after the window, to count what was lost.
    let tail = Instant::now() + Duration::from_secs(2);
    let mut last = c1;
    while Instant::now() < tail {
        tokio::select! {
            _ = a.select_next_some() => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let now = count.load(Ordering::Relaxed);
                if now == last { break; }
                last = now;
            }
        }
    }
    let total = count.load(Ordering::Relaxed) - c0;
    stop.store(true, Ordering::Relaxed);
    let _ = h.await;
    Ok(format!(
        "libp2p {transport} echo {size} B: delivered {:.0} msgs/s; accepted {:.0}/s; queue-full refusals {}; \
         delivered in total {} of {} accepted ({} lost, {} reported dropped)",
        (c1 - c0) as f64 / el,
        p.accepted as f64 / el,
        p.queue_full,
        total,
        p.accepted,
        p.accepted.saturating_sub(total),
        p.failed
    ))
}

/// One-hop publish→deliver latency at 64 B, one message in flight.
async fn latency(transport: &str, dur: Duration) -> Result<String, BoxError> {
    let (mut a, b) = pair(transport).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let h = subscriber(b, stop.clone(), count, Some(tx));
    let topic = IdentTopic::new(TOPIC);
    let data = vec![0xA5u8; 64];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3)?;
    let start = Instant::now();
    let mut lost = 0u32;
    while start.elapsed() < dur {
        let t = Instant::now();
        if a.behaviour_mut().publish(topic.clone(), data.clone()).is_err() {
            tokio::task::yield_now().await;
            continue;
        }
        let give_up = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(give_up);
        loop {
            tokio::select! {
                biased;
                r = rx.recv() => {
                    if r.is_some() {
                        let ns = t.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                        hist.saturating_record(ns.max(1));
                    }
                    break;
                }
                _ = a.select_next_some() => {}
                _ = &mut give_up => {
                    lost += 1;
                    break;
                }
            }
        }
        if lost > 3 {
            return Err("messages lost".into());
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = h.await;
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(format!(
        "libp2p {transport} one-hop 64 B: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us ({} samples)",
        us(0.5),
        us(0.99),
        us(0.999),
        hist.len()
    ))
}

/// Ed25519 verifications per second on one core (the same dalek crate as
/// Moss), so this run carries its own anchor.
fn verify_rate(dur: Duration) -> f64 {
    use ed25519_dalek::{Signer, SigningKey, Verifier};
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let msg = [0x11u8; 64];
    let sig = key.sign(&msg);
    let vk = key.verifying_key();
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < dur {
        for _ in 0..16 {
            if vk.verify(&msg, &sig).is_ok() {
                n += 1;
            }
        }
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("moss-bench-libp2p: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Every figure, one line each; false if any failed.
fn run() -> Result<bool, BoxError> {
    let a = args()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    println!(
        "libp2p Ed25519 verify: {:.0} /s (one core, ed25519-dalek)",
        verify_rate(Duration::from_secs(1))
    );
    let mut ok = true;
    for t in &a.transports {
        for &size in &a.sizes {
            match rt.block_on(echo(t, size, a.dur)) {
                Ok(line) => println!("{line}"),
                Err(e) => {
                    ok = false;
                    println!("libp2p {t} echo {size} B: failed: {e}");
                }
            }
        }
        match rt.block_on(latency(t, a.dur)) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                ok = false;
                println!("libp2p {t} one-hop: failed: {e}");
            }
        }
    }
    Ok(ok)
}
