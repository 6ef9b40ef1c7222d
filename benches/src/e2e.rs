//! Scenarios through real nodes (`moss::Node`, the engine thread, a real
//! backend) on 127.0.0.1: sealed-datagram throughput (`echo`), one-hop
//! latency, and delivery under a junk/handshake flood.

use hdrhistogram::Histogram;
use moss::{Config, Node, NodeError, Subscription};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Loopback-only nodes, otherwise the product defaults (since issue #15
/// the `security.rate_limit_*` relay buckets no longer throttle gossip, so
/// nothing needs raising).
const CONFIG: &str = r#"{"trackers":[],"lan_discovery_enabled":false,"dht_enabled":false}"#;

/// Largest payload on topic [`TOPIC`] that travels in one datagram (larger
/// ones are fragmented): the wire's plaintext budget minus the frame
/// header, signature and fixed publish fields and the topic.
pub fn single_datagram_payload() -> usize {
    use moss_mesh::wire::{FRAME_HEADER, MAX_PLAINTEXT, PUBLISH_FIXED, SIGNATURE_LEN};
    MAX_PLAINTEXT - FRAME_HEADER - SIGNATURE_LEN - PUBLISH_FIXED - TOPIC.len()
}
/// Mesh id of every bench node.
pub const MESH: &str = "moss-bench";
pub(crate) const TOPIC: &str = "bench";
/// Longest any setup step may take.
const SETUP: Duration = Duration::from_secs(10);

/// Starts a node on 127.0.0.1 with `backend`, `engine.busy_poll_us` =
/// `busy_poll` (`None`: the product default) and `engine.shards` = `shards`
/// (the scenarios other than `shards` keep the unsharded engine their
/// figures were measured with).
fn start_sharded(backend: &str, busy_poll: Option<u32>, shards: u32) -> Result<Node, String> {
    let mut c = Config::from_json(CONFIG).map_err(|e| e.to_string())?;
    c.engine.backend = backend.into();
    c.engine.shards = shards;
    if let Some(us) = busy_poll {
        c.engine.busy_poll_us = us;
    }
    Node::builder(MESH)
        .config(c)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .start()
        .map_err(|e| format!("{backend}: {e}"))
}

/// A publisher `a` connected to a subscriber `b` that `a` knows subscribes.
pub struct Pair {
    /// Publisher.
    pub a: Node,
    /// Subscriber.
    pub b: Node,
    /// `b`'s subscription to the bench topic.
    pub sub: Subscription,
}

/// Two nodes on `backend`, `b` subscribed, `a` connected and aware of it.
pub fn pair(backend: &str, busy_poll: Option<u32>) -> Result<Pair, String> {
    pair_sharded(backend, busy_poll, 1)
}

/// [`pair`] with both nodes running `shards` shards.
pub fn pair_sharded(backend: &str, busy_poll: Option<u32>, shards: u32) -> Result<Pair, String> {
    let a = start_sharded(backend, busy_poll, shards)?;
    let b = start_sharded(backend, busy_poll, shards)?;
    link(a, b)
}

/// `b` subscribed, `a` connected to it and aware of the subscription.
fn link(a: Node, b: Node) -> Result<Pair, String> {
    let sub = b.subscribe(TOPIC).map_err(|e| e.to_string())?;
    a.connect_wait(&b.local_addr().to_string(), SETUP)
        .map_err(|e| format!("connect: {e}"))?;
    let deadline = Instant::now() + SETUP;
    loop {
        let st = a.stats().map_err(|e| e.to_string())?;
        if st.peers.iter().any(|p| p.topics.iter().any(|t| t == TOPIC)) {
            break;
        }
        if Instant::now() > deadline {
            return Err("the subscription never reached the publisher".into());
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(Pair { a, b, sub })
}

/// Publishes until `until`, yielding on `Busy`; returns messages accepted.
pub(crate) fn publish_until(a: &Node, data: &[u8], until: Instant) -> Result<u64, String> {
    let mut n = 0u64;
    while Instant::now() < until {
        for _ in 0..64 {
            match a.publish(TOPIC, data) {
                Ok(()) => n += 1,
                Err(NodeError::Busy) => thread::yield_now(),
                Err(e) => return Err(format!("publish: {e}")),
            }
        }
    }
    Ok(n)
}

/// Counts messages of `sub` in a thread until `stop`.
pub(crate) fn counter(
    sub: Subscription,
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if sub.recv_timeout(Duration::from_millis(20)).is_some() {
                count.fetch_add(1, Ordering::Relaxed);
                while sub.try_recv().is_some() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

/// What the echo scenario measured for one backend and payload.
pub struct Echo {
    /// Messages delivered to the subscriber per second.
    pub delivered: f64,
    /// Messages the publisher's API accepted per second.
    pub accepted: f64,
    /// Datagrams the subscriber's node received per second.
    pub datagrams: f64,
    /// Average received datagram size in bytes (what the raw limit uses).
    pub avg_datagram: usize,
    /// Messages the host API dropped at the subscriber (channel full).
    pub host_dropped: u64,
    /// Messages the publisher's node published (signed and queued) per second.
    pub published: f64,
    /// Datagrams the publisher's node sent per second.
    pub sent: f64,
    /// Datagrams the publisher's kernel refused (send queue full) in the window.
    pub send_dropped: u64,
    /// Publishes the publisher's engine found no routed peer for.
    pub unrouted: u64,
    /// Input the subscriber's node dropped: (reason, count).
    pub node_drops: Vec<(&'static str, u64)>,
    /// Allocation calls in the whole process per delivered message
    /// (publisher API, both engines, the counting thread).
    pub allocs_per_msg: f64,
    /// Hand-offs between the subscriber's shards in the window.
    pub handoffs: u64,
    /// Queue-full drops at the subscriber's shards in the window.
    pub queue_drops: u64,
}

/// Sealed-datagram throughput: `a` publishes `size`-byte messages as fast as
/// the API accepts them for `dur`; `b` counts deliveries in that window.
pub fn echo(
    backend: &str,
    size: usize,
    dur: Duration,
    busy_poll: Option<u32>,
) -> Result<Echo, String> {
    echo_sharded(backend, size, dur, busy_poll, 1)
}

/// [`echo`] with both nodes running `shards` shards.
pub fn echo_sharded(
    backend: &str,
    size: usize,
    dur: Duration,
    busy_poll: Option<u32>,
    shards: u32,
) -> Result<Echo, String> {
    let p = pair_sharded(backend, busy_poll, shards)?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let h = counter(p.sub, stop.clone(), count.clone());
    let data = vec![0x5Au8; size];
    // Warm up: sessions, buffers, channels.
    publish_until(&p.a, &data, Instant::now() + Duration::from_millis(200))?;
    thread::sleep(Duration::from_millis(50));
    // Let the publisher's engine work off the warm-up backlog first.
    let p0 = stats(&p.a)?;
    let s0 = stats(&p.b)?;
    let c0 = count.load(Ordering::Relaxed);
    let a0 = crate::alloc::calls();
    let t0 = Instant::now();
    let accepted = publish_until(&p.a, &data, t0 + dur)?;
    let el = t0.elapsed();
    let c1 = count.load(Ordering::Relaxed);
    let a1 = crate::alloc::calls();
    let s1 = stats(&p.b)?;
    // The publisher's counters once its queue is worked off: what it
    // published and sent for the messages accepted in the window (its
    // send/publish rates are over the longer span until then).
    let p1 = stats(&p.a)?;
    let el_pub = t0.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    let dg = s1.counters.datagrams_in - s0.counters.datagrams_in;
    let bytes = s1.counters.bytes_in - s0.counters.bytes_in;
    Ok(Echo {
        delivered: (c1 - c0) as f64 / el.as_secs_f64(),
        accepted: accepted as f64 / el.as_secs_f64(),
        datagrams: dg as f64 / el.as_secs_f64(),
        avg_datagram: (bytes / dg.max(1)) as usize,
        host_dropped: s1.messages_dropped - s0.messages_dropped,
        node_drops: drops_between(&s0, &s1),
        published: (p1.counters.messages_published - p0.counters.messages_published) as f64
            / el_pub.as_secs_f64(),
        sent: (p1.counters.datagrams_out - p0.counters.datagrams_out) as f64 / el_pub.as_secs_f64(),
        send_dropped: p1.send_dropped - p0.send_dropped,
        unrouted: p1.publish_unrouted - p0.publish_unrouted,
        allocs_per_msg: (a1 - a0) as f64 / (c1 - c0).max(1) as f64,
        handoffs: s1.shard_stats.iter().map(|x| x.handoffs_out).sum::<u64>()
            - s0.shard_stats.iter().map(|x| x.handoffs_out).sum::<u64>(),
        queue_drops: s1.shard_stats.iter().map(|x| x.queue_drops).sum::<u64>()
            - s0.shard_stats.iter().map(|x| x.queue_drops).sum::<u64>(),
    })
}

/// `n.stats()`, waiting out a command queue that a flat-out publisher
/// filled (retried for at most 60 s).
fn stats(n: &Node) -> Result<moss::NodeStats, String> {
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match n.stats() {
            Ok(s) => return Ok(s),
            Err(NodeError::Busy) => thread::sleep(Duration::from_millis(20)),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("stats: {last}"))
}

/// Drop counters that grew between two stats snapshots.
fn drops_between(s0: &moss::NodeStats, s1: &moss::NodeStats) -> Vec<(&'static str, u64)> {
    moss_mesh::DropReason::ALL
        .iter()
        .map(|&r| {
            (
                r.as_str(),
                s1.counters.drops.get(r) - s0.counters.drops.get(r),
            )
        })
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// Ed25519 verifications per second on one core (every delivered message
/// is verified once by its receiver).
pub fn ed25519_verify_rate(dur: Duration) -> f64 {
    let id = moss_crypto::Identity::from_seed([3u8; 32]);
    let pk = id.public_key();
    let msg = [9u8; 48];
    let sig = id.sign(&msg);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..64 {
            std::hint::black_box(pk.verify(std::hint::black_box(&msg), &sig));
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Ed25519 signatures per second on one core (every publish signs once).
pub fn ed25519_sign_rate(dur: Duration) -> f64 {
    let id = moss_crypto::Identity::from_seed([3u8; 32]);
    let msg = [9u8; 48];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..64 {
            std::hint::black_box(id.sign(std::hint::black_box(&msg)));
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Median microseconds of one Ed25519 sign and of one verify, each timed
/// alone over `dur` (a median of single operations, so time slices lost
/// to other threads on a shared machine land in the tail, not the figure).
pub fn ed25519_sign_verify_us(dur: Duration) -> (f64, f64) {
    let id = moss_crypto::Identity::from_seed([3u8; 32]);
    let pk = id.public_key();
    let msg = [9u8; 48];
    let sig = id.sign(&msg);
    let mut signs = Vec::new();
    let mut verifies = Vec::new();
    let start = Instant::now();
    while start.elapsed() < dur && signs.len() < 1_000_000 {
        let t = Instant::now();
        std::hint::black_box(id.sign(std::hint::black_box(&msg)));
        signs.push(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        std::hint::black_box(pk.verify(std::hint::black_box(&msg), &sig));
        verifies.push(t.elapsed().as_nanos() as f64);
    }
    let median_us = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN) / 1000.0
    };
    (median_us(&mut signs), median_us(&mut verifies))
}

/// Ed25519 verifications per second on one core five ways, each over
/// `dur`: `PeerId::verify` as the node calls it (decompresses the key
/// every time), one by one with the key decompressed once,
/// `ed25519_dalek::verify_batch` over batches of `batch` messages by
/// `batch` distinct signers (a receive batch from many origins), and
/// `moss_crypto::BatchVerifier` over the same batch and over `batch`
/// messages of one signer (a first-hop batch from its origin).
pub fn ed25519_verify_variants(dur: Duration, batch: usize) -> VerifyVariants {
    use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
    let peer = moss_crypto::Identity::from_seed([3u8; 32]);
    let pk = peer.public_key();
    let msg = [9u8; 43];
    let sig = peer.sign(&msg);
    let rate = |f: &mut dyn FnMut() -> u64| {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < dur {
            n += f();
        }
        n as f64 / start.elapsed().as_secs_f64()
    };
    let as_node = rate(&mut || {
        for _ in 0..64 {
            std::hint::black_box(pk.verify(std::hint::black_box(&msg), &sig));
        }
        64
    });
    let vk = VerifyingKey::from_bytes(&pk.0).ok();
    let dsig = Signature::from_bytes(&sig);
    let cached = rate(&mut || {
        for _ in 0..64 {
            let ok = vk
                .as_ref()
                .is_some_and(|k| k.verify_strict(std::hint::black_box(&msg), &dsig).is_ok());
            std::hint::black_box(ok);
        }
        64
    });
    let batch = batch.max(1);
    let keys: Vec<SigningKey> = (0..batch)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
        .collect();
    let msgs: Vec<[u8; 43]> = (0..batch).map(|i| [i as u8; 43]).collect();
    let sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let publics: Vec<[u8; 32]> = keys.iter().map(|k| k.verifying_key().to_bytes()).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
    let mut vks: Vec<VerifyingKey> = Vec::with_capacity(batch);
    let batched = rate(&mut || {
        // Keys arrive as bytes, as in a received message.
        vks.clear();
        vks.extend(
            publics
                .iter()
                .filter_map(|p| VerifyingKey::from_bytes(p).ok()),
        );
        let ok = ed25519_dalek::verify_batch(&refs, &sigs, &vks).is_ok();
        std::hint::black_box(ok);
        batch as u64
    });
    let mut bv = moss_crypto::BatchVerifier::new([7; 32]);
    let raw_sigs: Vec<[u8; 64]> = sigs.iter().map(|s| s.to_bytes()).collect();
    let ours_distinct = rate(&mut || {
        let items = publics
            .iter()
            .zip(&refs)
            .zip(&raw_sigs)
            .map(|((k, m), s)| (k, *m, s));
        std::hint::black_box(bv.verify_all(items));
        batch as u64
    });
    // One signer: a first-hop batch from the message's origin.
    let one: Vec<[u8; 64]> = msgs.iter().map(|m| peer.sign(m)).collect();
    let ours_one = rate(&mut || {
        let items = refs.iter().zip(&one).map(|(m, s)| (&pk.0, *m, s));
        std::hint::black_box(bv.verify_all(items));
        batch as u64
    });
    VerifyVariants {
        single: as_node,
        cached,
        dalek_batch: batched,
        ours_distinct,
        ours_one,
    }
}

/// Ed25519 verifications per second, measured by [`ed25519_verify_variants`].
pub struct VerifyVariants {
    /// `PeerId::verify` one by one (the network's cofactored rule).
    pub single: f64,
    /// `ed25519_dalek` `verify_strict` with the key decompressed once.
    pub cached: f64,
    /// `ed25519_dalek::verify_batch` (cofactorless; not the network's rule).
    pub dalek_batch: f64,
    /// `moss_crypto::BatchVerifier`, distinct signers.
    pub ours_distinct: f64,
    /// `moss_crypto::BatchVerifier`, one signer for the whole batch.
    pub ours_one: f64,
}

/// One-hop latency percentiles in microseconds.
pub struct OneHop {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Samples.
    pub samples: u64,
}

/// Publish→deliver latency through two nodes: one message in flight at a
/// time, timed from `publish` to the subscriber's `recv`.
/// `gap`: pause after each delivery before the next publish (zero: a closed
/// loop, the next message chases the receiver's work on the last one).
pub fn latency(
    backend: &str,
    size: usize,
    dur: Duration,
    busy_poll: Option<u32>,
    gap: Duration,
) -> Result<OneHop, String> {
    let p = pair(backend, busy_poll)?;
    latency_on(&p, size, dur, gap)
}

/// [`latency`] through an existing pair (of any path).
pub fn latency_on(p: &Pair, size: usize, dur: Duration, gap: Duration) -> Result<OneHop, String> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).map_err(|e| e.to_string())?;
    let data = vec![0xA5u8; size];
    let start = Instant::now();
    let mut lost = 0u32;
    while start.elapsed() < dur {
        let t = Instant::now();
        match p.a.publish(TOPIC, &data) {
            Ok(()) => {}
            Err(NodeError::Busy) => continue,
            Err(e) => return Err(format!("publish: {e}")),
        }
        match p.sub.recv_timeout(Duration::from_secs(1)) {
            Some(_) => {
                let ns = t.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                h.saturating_record(ns.max(1));
                if !gap.is_zero() {
                    thread::sleep(gap);
                }
            }
            None => {
                lost += 1;
                if lost > 3 {
                    return Err("messages lost".into());
                }
            }
        }
    }
    let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok(OneHop {
        p50: us(0.5),
        p99: us(0.99),
        p999: us(0.999),
        samples: h.len(),
    })
}

/// How a fresh node finds the running one in [`first_session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// Its address is the new node's one static peer.
    Static,
    /// Only LAN beacons (product interval, multicast on 127.0.0.1, a mesh
    /// id and beacon port of this run's own, so no other node answers).
    Lan,
}

/// Milliseconds from `start()` of a fresh node until its `PeerJoined`
/// event, the peer being a node already running on 127.0.0.1 that the
/// new one finds as `how` says; `runs` times with fresh nodes; sorted.
pub fn first_session(backend: &str, runs: usize, how: Finding) -> Result<Vec<f64>, String> {
    let (mesh, json) = match how {
        Finding::Static => (MESH.to_string(), CONFIG.to_string()),
        Finding::Lan => {
            let port = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            (
                format!("moss-bench-lan-{}-{port}", std::process::id()),
                format!(
                    r#"{{"trackers":[],"dht_enabled":false,"lan_discovery_enabled":true,"lan_discovery_port":{port},"lan_interfaces":["127.0.0.1"]}}"#
                ),
            )
        }
    };
    let config = || -> Result<Config, String> {
        let mut c = Config::from_json(&json).map_err(|e| e.to_string())?;
        c.engine.backend = backend.into();
        c.engine.shards = 1;
        Ok(c)
    };
    let b = Node::builder(&mesh)
        .config(config()?)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .start()
        .map_err(|e| format!("{backend}: {e}"))?;
    let to = b.local_addr().to_string();
    let mut got = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut c = config()?;
        if how == Finding::Static {
            c.static_peers = vec![to.clone()];
        }
        let t0 = Instant::now();
        let a = Node::builder(&mesh)
            .config(c)
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .start()
            .map_err(|e| format!("{backend}: {e}"))?;
        loop {
            let left = SETUP.saturating_sub(t0.elapsed());
            match a.events().recv_timeout(left) {
                Ok(moss::Event::PeerJoined { .. }) => break,
                Ok(_) => {}
                Err(_) => return Err("no session within 10 s".into()),
            }
        }
        got.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    got.sort_by(f64::total_cmp);
    Ok(got)
}

/// What the flood scenario measured.
pub struct Flood {
    /// Legit messages offered per second.
    pub offered: f64,
    /// Delivered per second without the flood.
    pub calm: f64,
    /// Delivered per second during the flood.
    pub flooded: f64,
    /// Flood datagrams sent per second (junk + replayed message 1s).
    pub flood_rate: f64,
    /// Receiver drop counters that grew during the flood: (reason, count).
    pub drops: Vec<(&'static str, u64)>,
    /// Receiver input datagrams per second during the flood.
    pub received: f64,
    /// Receiver output datagrams per second during the flood (answers to
    /// replayed message 1s included).
    pub answered: f64,
    /// New clients that joined, without and with the flood (of [`JOINS`]).
    pub joined: [usize; 2],
    /// Median join time of those that did, without and with the flood.
    pub join_time: [Option<Duration>; 2],
}

/// Fresh clients that try to join per phase of the flood scenario.
pub const JOINS: usize = 5;
/// How long one join may take before it counts as failed.
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// [`JOINS`] fresh clients dial `to` one after another (each with up to
/// [`JOIN_TIMEOUT`]); returns how many got a session and their median
/// time to it.
fn joins(backend: &str, to: SocketAddr) -> Result<(usize, Option<Duration>), String> {
    let mut times = Vec::new();
    for _ in 0..JOINS {
        let c = start_sharded(backend, None, 1)?;
        let t0 = Instant::now();
        if c.connect_wait(&to.to_string(), JOIN_TIMEOUT).is_ok() {
            times.push(t0.elapsed());
        }
    }
    times.sort();
    Ok((times.len(), times.get(times.len() / 2).copied()))
}

/// A real handshake message 1 for `to` in this mesh, made by a sans-IO node.
fn message1(to: SocketAddr) -> Result<Vec<u8>, String> {
    let mut n = moss_mesh::Node::new(
        moss_mesh::Config::default(),
        moss_mesh::Identity::from_seed([0x66; 32]),
        MESH,
        None,
        [0x77; 32],
        Duration::ZERO,
    )
    .map_err(|e| e.to_string())?;
    n.connect(to);
    n.poll_transmit()
        .map(|t| t.bytes)
        .ok_or_else(|| "the sans-IO node produced no message 1".into())
}

/// Sends `size`-byte legit messages at `rate`/s for `dur`; returns how many
/// the subscriber delivered per second in that window.
fn paced(
    a: &Node,
    count: &AtomicU64,
    data: &[u8],
    rate: f64,
    dur: Duration,
) -> Result<f64, String> {
    let gap = Duration::from_secs_f64(1.0 / rate);
    let c0 = count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut next = t0;
    while t0.elapsed() < dur {
        let now = Instant::now();
        if now < next {
            thread::sleep((next - now).min(Duration::from_millis(1)));
            continue;
        }
        next += gap;
        match a.publish(TOPIC, data) {
            Ok(()) | Err(NodeError::Busy) => {}
            Err(e) => return Err(format!("publish: {e}")),
        }
    }
    // Count what was in flight at the end of the window too.
    thread::sleep(Duration::from_millis(50));
    Ok((count.load(Ordering::Relaxed) - c0) as f64 / t0.elapsed().as_secs_f64())
}

/// Idle nodes of other meshes beside the receiver when the flood runs on
/// a shared engine.
pub const SHARED_NEIGHBOURS: usize = 9;

/// Where the flood's receiver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// An engine thread of its own, like the publisher.
    Own,
    /// A [`moss::SharedEngine`], with [`SHARED_NEIGHBOURS`] idle nodes of
    /// other meshes on it (a gateway's on-demand meshes).
    Shared,
}

/// The flood's publisher on `backend` and receiver where `at` says; the
/// second item holds the shared engine's other nodes.
fn flood_pair(backend: &str, at: Receiver) -> Result<(Pair, Vec<Node>), String> {
    match at {
        Receiver::Own => Ok((pair(backend, None)?, Vec::new())),
        Receiver::Shared => {
            let engine = moss::SharedEngine::start().map_err(|e| e.to_string())?;
            let on_engine = |mesh: &str| {
                Node::builder(mesh)
                    .config(Config::from_json(CONFIG).map_err(|e| e.to_string())?)
                    .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .shared_engine(&engine)
                    .start()
                    .map_err(|e| format!("shared engine: {e}"))
            };
            let others = (0..SHARED_NEIGHBOURS)
                .map(|i| on_engine(&format!("{MESH}-idle-{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            let b = on_engine(MESH)?;
            Ok((link(start_sharded(backend, None, 1)?, b)?, others))
        }
    }
}

/// Legit delivery at `rate` msgs/s with and without a flood of junk
/// datagrams and replayed handshake message 1s from `ports` source ports,
/// to a receiver running where `at` says.
pub fn flood(
    backend: &str,
    at: Receiver,
    rate: f64,
    ports: usize,
    dur: Duration,
) -> Result<Flood, String> {
    let (Pair { a, b, sub }, _others) = flood_pair(backend, at)?;
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let to = b.local_addr();
    let h = counter(sub, stop.clone(), count.clone());
    let data = vec![0x42u8; 256];
    let calm = paced(&a, &count, &data, rate, dur)?;
    let (joined_calm, join_calm) = joins(backend, to)?;
    // The flooder: junk of varied sizes and one real message 1 replayed,
    // round-robin over many source ports, as fast as the kernel takes them.
    // It is one host of its own (127.0.0.2): cookie limits count per IP, and
    // the newcomers are other hosts (127.0.0.1).
    let m1 = message1(to)?;
    let socks: Vec<UdpSocket> = (0..ports)
        .map(|_| UdpSocket::bind("127.0.0.2:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    for s in &socks {
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    let fstop = Arc::new(AtomicBool::new(false));
    let fstop2 = fstop.clone();
    let flooder = thread::spawn(move || {
        let mut junk = [0u8; 1200];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut sent = 0u64;
        let mut i = 0usize;
        while !fstop2.load(Ordering::Relaxed) {
            for _ in 0..256 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let s = &socks[i % socks.len()];
                i += 1;
                let r = if x.is_multiple_of(2) {
                    junk[..8].copy_from_slice(&x.to_le_bytes());
                    s.send_to(&junk[..40 + (x as usize >> 8) % 1100], to)
                } else {
                    s.send_to(&m1, to)
                };
                if r.is_ok() {
                    sent += 1;
                }
            }
        }
        sent
    });
    thread::sleep(Duration::from_millis(100));
    let s0 = b.stats().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let flooded = paced(&a, &count, &data, rate, dur);
    let s1 = b.stats().map_err(|e| e.to_string());
    let el = t0.elapsed();
    // Newcomers while the flood still runs (its half-open slots full).
    let joined_flood = joins(backend, to);
    fstop.store(true, Ordering::Relaxed);
    let sent = flooder.join().map_err(|_| "flooder panicked".to_string())?;
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    let (flooded, s1) = (flooded?, s1?);
    let (joined_flood, join_flood) = joined_flood?;
    let drops = moss_mesh::DropReason::ALL
        .iter()
        .map(|&r| {
            (
                r.as_str(),
                s1.counters.drops.get(r) - s0.counters.drops.get(r),
            )
        })
        .filter(|&(_, n)| n > 0)
        .collect();
    Ok(Flood {
        offered: rate,
        calm,
        flooded,
        flood_rate: sent as f64 / (el.as_secs_f64() + 0.1),
        drops,
        received: (s1.counters.datagrams_in - s0.counters.datagrams_in) as f64 / el.as_secs_f64(),
        answered: (s1.counters.datagrams_out - s0.counters.datagrams_out) as f64 / el.as_secs_f64(),
        joined: [joined_calm, joined_flood],
        join_time: [join_calm, join_flood],
    })
}

/// What the fan-in scenario measured.
pub struct FanIn {
    /// Messages delivered at the hub per second.
    pub delivered: f64,
    /// Datagrams the hub received per second.
    pub datagrams: f64,
    /// Average received datagram size.
    pub avg_datagram: usize,
    /// Datagrams each hub shard received in the window.
    pub per_shard: Vec<u64>,
    /// Hand-offs between the hub's shards in the window.
    pub handoffs: u64,
    /// Queue-full drops at the hub's shards in the window.
    pub queue_drops: u64,
    /// Input the hub's node dropped: (reason, count).
    pub node_drops: Vec<(&'static str, u64)>,
}

/// Fan-in: `senders` unsharded nodes dial a hub running `shards` shards and
/// publish `size`-byte messages flat out for `dur` (one thread each); the
/// hub counts deliveries. Receive-side work (unmask, open, verify) is the
/// hub's.
pub fn fan_in(
    backend: &str,
    size: usize,
    dur: Duration,
    shards: u32,
    senders: usize,
) -> Result<FanIn, String> {
    let hub = start_sharded(backend, None, shards)?;
    let sub = hub.subscribe(TOPIC).map_err(|e| e.to_string())?;
    let mut pubs = Vec::new();
    for _ in 0..senders {
        let p = start_sharded(backend, None, 1)?;
        p.connect_wait(&hub.local_addr().to_string(), SETUP)
            .map_err(|e| format!("connect: {e}"))?;
        pubs.push(p);
    }
    let deadline = Instant::now() + SETUP;
    for p in &pubs {
        loop {
            let st = p.stats().map_err(|e| e.to_string())?;
            if st.peers.iter().any(|x| x.topics.iter().any(|t| t == TOPIC)) {
                break;
            }
            if Instant::now() > deadline {
                return Err("the subscription never reached a sender".into());
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let h = counter(sub, stop.clone(), count.clone());
    let data = vec![0x5Au8; size];
    let pubs = Arc::new(pubs);
    let run = |until: Instant| -> Result<(), String> {
        let hs: Vec<_> = (0..pubs.len())
            .map(|i| {
                let (pubs, data) = (pubs.clone(), data.clone());
                thread::spawn(move || publish_until(&pubs[i], &data, until))
            })
            .collect();
        for h in hs {
            h.join().map_err(|_| "publisher panicked".to_string())??;
        }
        Ok(())
    };
    run(Instant::now() + Duration::from_millis(200))?;
    thread::sleep(Duration::from_millis(50));
    let s0 = stats(&hub)?;
    let c0 = count.load(Ordering::Relaxed);
    let t0 = Instant::now();
    run(t0 + dur)?;
    let el = t0.elapsed();
    let c1 = count.load(Ordering::Relaxed);
    let s1 = stats(&hub)?;
    stop.store(true, Ordering::Relaxed);
    let _ = h.join();
    let dg = s1.counters.datagrams_in - s0.counters.datagrams_in;
    let bytes = s1.counters.bytes_in - s0.counters.bytes_in;
    let ho = |s: &moss::NodeStats| s.shard_stats.iter().map(|x| x.handoffs_out).sum::<u64>();
    let qd = |s: &moss::NodeStats| s.shard_stats.iter().map(|x| x.queue_drops).sum::<u64>();
    Ok(FanIn {
        delivered: (c1 - c0) as f64 / el.as_secs_f64(),
        datagrams: dg as f64 / el.as_secs_f64(),
        avg_datagram: (bytes / dg.max(1)) as usize,
        per_shard: s1
            .shard_stats
            .iter()
            .zip(&s0.shard_stats)
            .map(|(b, a)| b.datagrams_in - a.datagrams_in)
            .collect(),
        handoffs: ho(&s1) - ho(&s0),
        queue_drops: qd(&s1) - qd(&s0),
        node_drops: drops_between(&s0, &s1),
    })
}
