//! In-process scenarios on the sans-IO `moss_mesh::Node` (no sockets, a
//! virtual clock): handshakes/s against a raw `snow` XX loop, and the heap
//! cost of an idle established session.

use crate::alloc;
use moss_mesh::{Config, Identity, Node};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The Noise pattern the mesh runs.
const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// Handshake initiations per second the responder's budget allows
/// (`mesh/src/node.rs` HANDSHAKE_RATE); the virtual clock advances by
/// twice the refill period per handshake so the budget never refuses one.
const STEP: Duration = Duration::from_micros(1_000);

/// Why an in-process scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum InprocError {
    /// snow refused the pattern or a message.
    #[error("snow: {0}")]
    Snow(String),
    /// A handshake between two nodes did not complete.
    #[error("handshake {0} did not establish a session")]
    NoSession(u64),
}

/// A 32-byte seed from a tag and an index.
fn seed(tag: u8, i: u64) -> [u8; 32] {
    let mut s = [tag; 32];
    s[..8].copy_from_slice(&i.to_le_bytes());
    s
}

/// A distinct address per generated peer (never used as a socket).
fn peer_addr(i: u64) -> SocketAddr {
    let b = (i as u32).to_be_bytes();
    SocketAddr::from(([10, b[1], b[2], b[3]], 1024 + ((i >> 24) % 60_000) as u16))
}

const RESPONDER_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 255, 255, 255),
    9,
));

/// A node with the default config except `max_peers` (200 by default),
/// raised so the responder accepts every generated peer.
fn node(tag: u8, i: u64, now: Duration) -> Node {
    let cfg = Config {
        max_peers: 2_000_000,
        ..Config::default()
    };
    Node::new(
        cfg,
        Identity::from_seed(seed(tag, i)),
        "bench",
        None,
        seed(tag ^ 0xFF, i),
        now,
    )
    .expect("the default router configuration is valid")
}

/// Moves datagrams between `r` (at [`RESPONDER_ADDR`]) and `i` (at `i_addr`)
/// until both are quiet; events are drained and dropped. Returns the number
/// of datagrams moved.
fn exchange(r: &mut Node, i: &mut Node, i_addr: SocketAddr, now: Duration) -> usize {
    let mut moved = 0;
    for _ in 0..64 {
        let mut any = false;
        while let Some(mut t) = i.poll_transmit() {
            if t.to == RESPONDER_ADDR {
                r.handle_datagram(now, i_addr, &mut t.bytes);
                moved += 1;
            }
            i.recycle(t.bytes);
            any = true;
        }
        while let Some(mut t) = r.poll_transmit() {
            if t.to == i_addr {
                i.handle_datagram(now, RESPONDER_ADDR, &mut t.bytes);
                moved += 1;
            }
            r.recycle(t.bytes);
            any = true;
        }
        while r.poll_event().is_some() {}
        while i.poll_event().is_some() {}
        if !any {
            break;
        }
    }
    moved
}

/// One handshake of a fresh initiator with `r`; true if both sides hold an
/// established session afterwards.
fn handshake(r: &mut Node, init: &mut Node, k: u64, now: Duration) -> bool {
    let a = peer_addr(k);
    init.connect(RESPONDER_ADDR);
    exchange(r, init, a, now);
    init.peer_count() == 1
}

/// Result of the node handshake scenario.
pub struct HandshakeRate {
    /// Complete handshakes per second (both sides in this thread).
    pub rate: f64,
    /// Datagrams moved per handshake (messages 1-3 plus what rides after).
    pub datagrams_per_handshake: f64,
}

/// Handshakes/s between sans-IO nodes in one thread: both sides' CPU,
/// message 1 to established session plus whatever the nodes exchange right
/// after (subscription announcements). Initiator construction (identity and
/// static key derivation) happens outside the timed region.
pub fn node_handshakes(dur: Duration) -> Result<HandshakeRate, InprocError> {
    let mut now = Duration::ZERO;
    let mut r = node(0xA0, 0, now);
    let mut timed = Duration::ZERO;
    let mut done: u64 = 0;
    let mut moved = 0usize;
    while timed < dur {
        let mut init = node(0xB0, done + 1, now);
        now += STEP;
        let a = peer_addr(done + 1);
        let t0 = Instant::now();
        init.connect(RESPONDER_ADDR);
        moved += exchange(&mut r, &mut init, a, now);
        timed += t0.elapsed();
        if init.peer_count() != 1 {
            return Err(InprocError::NoSession(done + 1));
        }
        done += 1;
    }
    Ok(HandshakeRate {
        rate: done as f64 / timed.as_secs_f64(),
        datagrams_per_handshake: moved as f64 / done.max(1) as f64,
    })
}

/// snow's defaults (X25519, BLAKE2s, OS RNG) with ring's ChaCha20-Poly1305,
/// as the mesh resolves them.
struct RawResolver;

impl CryptoResolver for RawResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        RingResolver
            .resolve_cipher(choice)
            .or_else(|| DefaultResolver.resolve_cipher(choice))
    }
}

/// Raw `snow` XX handshakes/s (both sides in one thread, static keys made
/// once, a fresh ephemeral per handshake, split into transport mode).
pub fn raw_snow_xx(dur: Duration) -> Result<f64, InprocError> {
    let e = |e: snow::Error| InprocError::Snow(e.to_string());
    let params: snow::params::NoiseParams = PATTERN.parse().map_err(e)?;
    let ki = snow::Builder::with_resolver(params.clone(), Box::new(RawResolver))
        .generate_keypair()
        .map_err(e)?;
    let kr = snow::Builder::with_resolver(params.clone(), Box::new(RawResolver))
        .generate_keypair()
        .map_err(e)?;
    let prologue = [7u8; 32];
    let mut m = [0u8; 1024];
    let mut p = [0u8; 1024];
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < dur {
        let mut i = snow::Builder::with_resolver(params.clone(), Box::new(RawResolver))
            .local_private_key(&ki.private)
            .prologue(&prologue)
            .build_initiator()
            .map_err(e)?;
        let mut r = snow::Builder::with_resolver(params.clone(), Box::new(RawResolver))
            .local_private_key(&kr.private)
            .prologue(&prologue)
            .build_responder()
            .map_err(e)?;
        let len = i.write_message(&[], &mut m).map_err(e)?;
        r.read_message(&m[..len], &mut p).map_err(e)?;
        let len = r.write_message(&[], &mut m).map_err(e)?;
        i.read_message(&m[..len], &mut p).map_err(e)?;
        let len = i.write_message(&[], &mut m).map_err(e)?;
        r.read_message(&m[..len], &mut p).map_err(e)?;
        black_box(i.into_transport_mode().map_err(e)?);
        black_box(r.into_transport_mode().map_err(e)?);
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Heap cost of idle established sessions on one node.
pub struct IdleCost {
    /// Sessions established on the measured node.
    pub sessions: u64,
    /// Live heap bytes of the whole process before the first handshake.
    pub before: i64,
    /// Live heap bytes after the last one (every initiator dropped).
    pub after: i64,
    /// Wall time the setup took.
    pub elapsed: Duration,
    /// Live allocations that grew: (requested size, count, bytes), largest
    /// byte growth first (size [`alloc::EXACT_SIZES`] = that or larger).
    pub growth: Vec<(usize, i64, i64)>,
}

impl IdleCost {
    /// Heap growth divided by the session count.
    pub fn per_session(&self) -> f64 {
        (self.after - self.before) as f64 / self.sessions.max(1) as f64
    }
}

/// One node completes `n` handshakes with generated peers (each a fresh
/// `Node` with its own identity, dropped right after its handshake); the
/// growth of live heap bytes, measured by the counting allocator, is what
/// the node keeps per idle session (session, maps, router peer state).
/// No timer runs on the measured node between handshakes, so no session
/// expires; the virtual clock advances by [`STEP`] per handshake to stay
/// within the responder's handshake budget.
pub fn idle_sessions(n: u64) -> Result<IdleCost, InprocError> {
    let t0 = Instant::now();
    let mut now = Duration::ZERO;
    let mut r = node(0xC0, 0, now);
    // Warm the responder's buffer pool and maps with one session first so
    // the figure is per session, not fixed start-up cost.
    let mut warm = node(0xD0, u64::MAX, now);
    if !handshake(&mut r, &mut warm, u64::MAX >> 8, now) {
        return Err(InprocError::NoSession(0));
    }
    drop(warm);
    let before = alloc::live_bytes();
    let sizes0 = alloc::by_size();
    for k in 1..=n {
        now += STEP;
        let mut init = node(0xD0, k, now);
        if !handshake(&mut r, &mut init, k, now) {
            return Err(InprocError::NoSession(k));
        }
        if k % 10_000 == 0 {
            eprintln!("  idle: {k} sessions");
        }
    }
    let after = alloc::live_bytes();
    let growth = alloc::by_size().growth_since(&sizes0);
    if r.peer_count() as u64 != n + 1 {
        return Err(InprocError::NoSession(r.peer_count() as u64));
    }
    black_box(&r);
    Ok(IdleCost {
        sessions: n,
        before,
        after,
        elapsed: t0.elapsed(),
        growth,
    })
}

/// What the in-process publish → deliver pipeline measured.
pub struct Pipeline {
    /// Messages published, sealed, opened, verified and delivered per second.
    pub rate: f64,
    /// Datagrams per message.
    pub datagrams_per_msg: f64,
    /// Allocation calls per message, both nodes together.
    pub allocs_per_msg: f64,
}

/// The whole message path of two sans-IO nodes in one thread: `publish`
/// (sign, route, frame), `poll_transmit` (seal), `handle_datagram` (open,
/// verify, dedup), `poll_event` (deliver). No sockets, no threads: the CPU
/// cost of the mesh per message, for comparison with the engine figures.
pub fn pipeline(size: usize, dur: Duration) -> Result<Pipeline, InprocError> {
    let mut now = Duration::ZERO;
    let mut r = node(0xE0, 0, now);
    let mut p = node(0xE1, 1, now);
    r.subscribe("bench");
    let pa = peer_addr(1);
    if !handshake(&mut r, &mut p, 1, now) {
        return Err(InprocError::NoSession(1));
    }
    // Let the subscription reach the publisher.
    for _ in 0..20 {
        now += Duration::from_millis(100);
        r.handle_timeout(now);
        p.handle_timeout(now);
        exchange(&mut r, &mut p, pa, now);
    }
    let data = vec![0x5Au8; size];
    let mut delivered = 0u64;
    let mut dgrams = 0u64;
    let a0 = alloc::calls();
    let start = Instant::now();
    let mut ticks = 0u32;
    while start.elapsed() < dur {
        for _ in 0..64 {
            if p.publish(now, "bench", &data).is_err() {
                return Err(InprocError::NoSession(2));
            }
            while let Some(mut t) = p.poll_transmit() {
                if t.to == RESPONDER_ADDR {
                    r.handle_datagram(now, pa, &mut t.bytes);
                    dgrams += 1;
                }
                p.recycle(t.bytes);
            }
            while let Some(e) = r.poll_event() {
                if matches!(e, moss_mesh::Event::Message(_)) {
                    delivered += 1;
                }
            }
            while let Some(t) = r.poll_transmit() {
                r.recycle(t.bytes);
            }
        }
        // Virtual time moves 1 ms per 64 messages; timers run every 100.
        now += STEP;
        ticks += 1;
        if ticks.is_multiple_of(100) {
            r.handle_timeout(now);
            p.handle_timeout(now);
            exchange(&mut r, &mut p, pa, now);
        }
    }
    let el = start.elapsed();
    let calls = alloc::calls() - a0;
    if std::env::var_os("MOSS_BENCH_DEBUG").is_some() {
        eprintln!("publisher {:?}\nsubscriber {:?}", p.stats(), r.stats());
    }
    Ok(Pipeline {
        rate: delivered as f64 / el.as_secs_f64(),
        datagrams_per_msg: dgrams as f64 / delivered.max(1) as f64,
        allocs_per_msg: calls as f64 / delivered.max(1) as f64,
    })
}
