//! `moss-bench relay`: the supernode's data plane. A real engine node on
//! 127.0.0.1 (backend and shard count as asked) is promoted to supernode;
//! sans-IO ends A and B, each on its own socket, meet through it by the
//! real protocol (signed request and accept, their Noise handshake carried
//! by the supernode, which learns their session indices). Then A's socket
//! sends one real sealed datagram of the A–B session (its size as asked)
//! over and over to the supernode, batched like the raw figure beside it,
//! and B's socket counts what arrives: relayed datagrams/s. The supernode
//! does what it does for every relayed datagram (unmask the head, look the
//! route up, check the buckets, forward unchanged); it never opens them.
//!
//! Beside it, in the same run: raw UDP one hop A → B with the same
//! batching, a raw forwarder (recv + send, no lookup, same batching) A → F
//! → B, and `ring` ChaCha20-Poly1305 seal+open at the same size. Also the
//! supernode's state per relay session at 10,000 and 50,000 sessions, measured with
//! the counting allocator.

use crate::raw::{self, Mode, BATCH};
use crate::sock::{loopback_socket, set_rcvtimeo, RawName};
use moss_crypto::{MeshKeys, Scrambler};
use moss_mesh::wire::Head;
use moss_mesh::{Identity, Node as Core};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const MESH: &str = "moss-bench-relay";
/// Limits raised so the figures measure the data plane, not the policy
/// (the product's relay limits are 64 KB/s per end and 256 kbit/s in all).
const CONFIG: &str = r#"{"trackers":[],"lan_discovery_enabled":false,"dht_enabled":false,
    "security":{"rate_limit_burst":4000000000,"rate_limit_sustained":4000000000},
    "nat":{"supernode_min_uptime_sec":1,"relay_max_bandwidth_kbps":34000000,
           "relay_max_sessions":1000}}"#;
const SETUP: Duration = Duration::from_secs(20);

/// One relayed-throughput figure.
pub struct RelayFigure {
    /// Datagrams/s that reached the B sockets.
    pub relayed: f64,
    /// Datagrams the supernode counted as relayed during the blast.
    pub forwarded: u64,
    /// Its relay drops (buckets, unknown routes) during the blast.
    pub drops: u64,
    /// Datagrams each supernode shard received.
    pub per_shard: Vec<u64>,
    /// The datagram size actually relayed.
    pub size: usize,
    /// The supernode's threads' (shards and engine) CPU time per datagram
    /// it forwarded during the blast, ns.
    pub cpu_ns_per_datagram: f64,
}

/// A sans-IO end on its own loopback socket.
pub(crate) struct End {
    /// The end's node.
    pub(crate) core: Core,
    sock: UdpSocket,
}

impl End {
    /// An end with the identity of `seed`.
    pub(crate) fn new(seed: u8) -> Result<Self, String> {
        let cfg = moss_mesh::Config::from_json(CONFIG).map_err(|e| e.to_string())?;
        let mut rng = [0u8; 32];
        rng[0] = seed;
        let core = Core::new(
            cfg,
            Identity::from_seed([seed; 32]),
            MESH,
            None,
            rng,
            Duration::ZERO,
        )
        .map_err(|e| e.to_string())?;
        let sock = loopback_socket().map_err(|e| e.to_string())?;
        sock.set_nonblocking(true).map_err(|e| e.to_string())?;
        Ok(Self { core, sock })
    }

    /// Feeds what arrived, runs timers, sends what is queued; `tap` sees
    /// every transmit first.
    fn pump(&mut self, now: Duration, tap: &mut dyn FnMut(SocketAddr, &[u8])) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            self.core.handle_datagram(now, from, &mut buf[..n]);
        }
        self.core.handle_timeout(now);
        while let Some(t) = self.core.poll_transmit() {
            if let Some(to) = t.to.udp() {
                tap(to, &t.bytes);
                let _ = self.sock.send_to(&t.bytes, to);
            }
            self.core.recycle(t.bytes);
        }
    }
}

/// Pumps every end until `done` holds (at most [`SETUP`]).
pub(crate) fn pump_until(
    ends: &mut [End],
    t0: Instant,
    mut done: impl FnMut(&[End]) -> Result<bool, String>,
    what: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + SETUP;
    loop {
        for e in ends.iter_mut() {
            e.pump(t0.elapsed(), &mut |_, _| {});
        }
        if done(ends)? {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("setup: {what} did not happen"));
        }
        thread::sleep(Duration::from_millis(1));
    }
}

fn receiver_of(sc: &Scrambler, d: &[u8]) -> Option<u32> {
    match Head::decode(&sc.peek_head(d)?) {
        Ok(Head::Data { receiver, .. }) => Some(receiver),
        _ => None,
    }
}

/// One real datagram of size `size` that `a` sends `b` through the relay at
/// `relay`: a SUBSCRIBE (small sizes) or a publish (large) of the A–B
/// session, sealed by A.
fn capture(
    ends: &mut [End],
    a: usize,
    b: usize,
    relay: SocketAddr,
    size: usize,
    t0: Instant,
) -> Result<Vec<u8>, String> {
    let sc = Scrambler::new(MeshKeys::derive(MESH, None).scramble_key);
    let bid = ends[b].core.public_key();
    let (_, remote) = ends[a].core.session_indices(&bid).ok_or("no A–B session")?;
    const FIXED: usize = 16 + 16 + 3;
    let publish = size >= 200;
    if publish {
        ends[b].core.subscribe("bench");
        pump_until(
            ends,
            t0,
            |e| {
                Ok(e[a]
                    .core
                    .peers()
                    .iter()
                    .any(|p| p.peer == bid && p.topics.iter().any(|t| t == "bench")))
            },
            "B's subscription reaching A",
        )?;
        let payload = size.saturating_sub(FIXED + 64 + 42 + 5).max(1);
        let now = t0.elapsed();
        ends[a]
            .core
            .publish(now, "bench", &vec![0x5a; payload])
            .map_err(|e| e.to_string())?;
    } else {
        let topic: String = "t".repeat(size.saturating_sub(FIXED).clamp(1, 255));
        ends[a].core.subscribe(&topic);
    }
    let mut got: Option<Vec<u8>> = None;
    let deadline = Instant::now() + SETUP;
    while got.is_none() && Instant::now() < deadline {
        let now = t0.elapsed();
        ends[a].pump(now, &mut |to, bytes| {
            if to == relay && receiver_of(&sc, bytes) == Some(remote) {
                let better = got.as_ref().is_none_or(|g| bytes.len() > g.len());
                if better {
                    got = Some(bytes.to_vec());
                }
            }
        });
        thread::sleep(Duration::from_millis(1));
    }
    got.ok_or_else(|| "no relayed datagram captured".into())
}

/// An engine node on 127.0.0.1 with the bench config, `backend` and
/// `shards`.
pub(crate) fn start_supernode(backend: &str, shards: u32) -> Result<moss::Node, String> {
    let mut c = moss::Config::from_json(CONFIG).map_err(|e| e.to_string())?;
    c.engine.backend = backend.into();
    c.engine.shards = shards;
    moss::Node::builder(MESH)
        .config(c)
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .start()
        .map_err(|e| format!("{backend}: {e}"))
}

/// Relayed datagrams/s through a supernode on `backend` with `shards`
/// shards, `pairs` A → B pairs blasting at once, batched as `mode`.
pub fn relayed_rate(
    backend: &str,
    shards: u32,
    pairs: usize,
    mode: Mode,
    size: usize,
    dur: Duration,
) -> Result<RelayFigure, String> {
    let s = start_supernode(backend, shards)?;
    let s_addr = s.local_addr();
    let s_id = s.public_key();
    let t0 = Instant::now();
    let mut ends = Vec::new();
    for i in 0..2 * pairs {
        let mut e = End::new(10 + i as u8)?;
        e.core.add_static_peer(s_addr);
        ends.push(e);
    }
    let mut last_poll = Instant::now() - Duration::from_secs(1);
    let mut ready = false;
    pump_until(
        &mut ends,
        t0,
        |e| {
            if !ready && last_poll.elapsed() >= Duration::from_millis(100) {
                last_poll = Instant::now();
                ready = s.mesh_info().map_err(|e| e.to_string())?.supernode_ready;
            }
            Ok(ready
                && e.iter()
                    .all(|x| x.core.relay_info().known_supernodes.contains(&s_id)))
        },
        "supernode promotion and announcement",
    )?;
    for p in 0..pairs {
        let bid = ends[2 * p + 1].core.public_key();
        if !ends[2 * p].core.connect_via_relay(bid) {
            return Err("no usable supernode".into());
        }
    }
    pump_until(
        &mut ends,
        t0,
        |e| {
            Ok((0..pairs).all(|p| {
                let (a, b) = (&e[2 * p].core, &e[2 * p + 1].core);
                a.relayed_peers().contains(&b.public_key())
                    && b.relayed_peers().contains(&a.public_key())
            }))
        },
        "the relayed handshakes",
    )?;
    let mut datagrams = Vec::new();
    for p in 0..pairs {
        datagrams.push(capture(&mut ends, 2 * p, 2 * p + 1, s_addr, size, t0)?);
    }
    let before = s.stats().map_err(|e| e.to_string())?;
    let supernode_cpu = || threads_cpu_ns("moss-shard") + threads_cpu_ns("moss-engine");
    let cpu0 = supernode_cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    let start = Instant::now();
    let end = start + dur;
    for (p, d) in datagrams.iter().enumerate() {
        let rx = ends[2 * p + 1]
            .sock
            .try_clone()
            .map_err(|e| e.to_string())?;
        rx.set_nonblocking(false).map_err(|e| e.to_string())?;
        set_rcvtimeo(&rx, Duration::from_millis(20)).map_err(|e| e.to_string())?;
        if mode == Mode::GsoGro {
            crate::sock::set_gro(&rx).map_err(|e| e.to_string())?;
        }
        let st = stop.clone();
        receivers.push(thread::spawn(move || raw::receive(mode, rx, &st)));
        let tx = ends[2 * p].sock.try_clone().map_err(|e| e.to_string())?;
        tx.set_nonblocking(false).map_err(|e| e.to_string())?;
        let d = d.clone();
        senders.push(thread::spawn(move || {
            raw::send_bytes_until(mode, &tx, s_addr, &d, end)
        }));
    }
    for t in senders {
        t.join()
            .map_err(|_| "sender panicked")?
            .map_err(|e| e.to_string())?;
    }
    let elapsed = start.elapsed();
    thread::sleep(Duration::from_millis(50));
    let cpu = supernode_cpu().saturating_sub(cpu0);
    stop.store(true, Ordering::SeqCst);
    let mut got = 0u64;
    for t in receivers {
        got += t
            .join()
            .map_err(|_| "receiver panicked")?
            .map_err(|e| e.to_string())?;
    }
    let after = s.stats().map_err(|e| e.to_string())?;
    let relay_drops = |st: &moss::NodeStats| {
        use moss_mesh::DropReason as R;
        let d = &st.counters.drops;
        d.get(R::RelayRateLimited) + d.get(R::RelayUnknownSession)
    };
    let per_shard = after
        .shard_stats
        .iter()
        .zip(before.shard_stats.iter())
        .map(|(a, b)| a.datagrams_in - b.datagrams_in)
        .collect();
    let forwarded = after.counters.relayed_datagrams - before.counters.relayed_datagrams;
    Ok(RelayFigure {
        relayed: got as f64 / elapsed.as_secs_f64(),
        forwarded,
        cpu_ns_per_datagram: cpu as f64 / forwarded.max(1) as f64,
        drops: relay_drops(&after) - relay_drops(&before),
        per_shard,
        size: datagrams[0].len(),
    })
}

/// Nanoseconds on CPU of this process's threads whose name starts with
/// `prefix` (`/proc/self/task/*/schedstat`, first field).
pub fn threads_cpu_ns(prefix: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Nanoseconds on CPU of the calling thread.
fn this_thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The supernode's user-space work per forwarded datagram, without the
/// kernel: a sans-IO supernode (the `moss_mesh::Node` the engine runs on
/// its core thread with one shard) relays for two ends that met through it
/// by the protocol, and is handed one captured A → B datagram of `size`
/// bytes over and over (`Node::handle_datagram_forwarding`, which leaves a
/// relayed datagram as it is) for `dur`. Returns this thread's CPU
/// nanoseconds per forwarded datagram.
pub fn forward_step_ns(size: usize, dur: Duration) -> Result<ForwardStep, String> {
    let t0 = Instant::now();
    let mut ends = Vec::new();
    for i in 0..3 {
        ends.push(End::new(40 + i)?);
    }
    let s_addr = ends[0].sock.local_addr().map_err(|e| e.to_string())?;
    let s_id = ends[0].core.public_key();
    for e in &mut ends[1..] {
        e.core.add_static_peer(s_addr);
    }
    pump_until(
        &mut ends,
        t0,
        |e| {
            Ok(e[0].core.is_supernode()
                && e[1..]
                    .iter()
                    .all(|x| x.core.relay_info().known_supernodes.contains(&s_id)))
        },
        "sans-IO supernode promotion",
    )?;
    let (aid, bid) = (ends[1].core.public_key(), ends[2].core.public_key());
    if !ends[1].core.connect_via_relay(bid) {
        return Err("no usable supernode".into());
    }
    pump_until(
        &mut ends,
        t0,
        |e| Ok(e[1].core.relayed_peers().contains(&bid) && e[2].core.relayed_peers().contains(&aid)),
        "the relayed handshake (sans-IO supernode)",
    )?;
    let d = capture(&mut ends, 1, 2, s_addr, size, t0)?;
    let from = ends[1].sock.local_addr().map_err(|e| e.to_string())?;
    let to = ends[2].sock.local_addr().map_err(|e| e.to_string())?;
    let s = &mut ends[0].core;
    let mut buf = d.clone();
    if s.handle_datagram_forwarding(t0.elapsed(), from, &mut buf) != Some(to) {
        return Err("the sans-IO supernode did not forward the datagram".into());
    }
    // The clock moves 1 ms per 1,024 datagrams (1.2 GB/s at 1200 B), so
    // the raised buckets (4 GB/s) never limit: the figure is the CPU step,
    // not the policy.
    let mut now = t0.elapsed();
    let mut tick = || {
        now += Duration::from_millis(1);
        now
    };
    let single = cpu_ns_per(dur, &mut || {
        let now = tick();
        let mut n = 0;
        for _ in 0..1024 {
            if s.handle_datagram_forwarding(now, from, &mut buf) == Some(to) {
                n += 1;
            }
        }
        n
    });
    // The engine's way: a chunk of 64 (its receive batch), every head
    // unmasked in one lane-wise pass, then each forwarded.
    let mut chunk: Vec<Vec<u8>> = vec![d; 64];
    let mut heads = [None; 64];
    let batched = cpu_ns_per(dur, &mut || {
        let now = tick();
        let mut n = 0;
        for _ in 0..16 {
            let views: [&[u8]; 64] = std::array::from_fn(|i| &chunk[i][..]);
            s.peek_heads(&views, &mut heads);
            for (b, h) in chunk.iter_mut().zip(heads) {
                if s.handle_datagram_forwarding_peeked(now, from, b, h) == Some(to) {
                    n += 1;
                }
            }
        }
        n
    });
    std::hint::black_box(&buf);
    Ok(ForwardStep { single, batched })
}

/// The supernode's user-space step per forwarded datagram, ns of CPU.
pub struct ForwardStep {
    /// One datagram at a time (`Node::handle_datagram_forwarding`).
    pub single: f64,
    /// Chunks of 64: `Node::peek_heads`, then
    /// `Node::handle_datagram_forwarding_peeked` each.
    pub batched: f64,
}

/// This thread's CPU ns per counted item over `dur` of calls to `round`
/// (each returns how many items it did).
fn cpu_ns_per(dur: Duration, round: &mut dyn FnMut() -> u64) -> f64 {
    let cpu0 = this_thread_cpu_ns();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        n += round();
    }
    let cpu = this_thread_cpu_ns().saturating_sub(cpu0);
    cpu as f64 / n.max(1) as f64
}

/// A raw forwarder's figure.
pub struct RawForward {
    /// Datagrams/s that reached B.
    pub rate: f64,
    /// The forwarder thread's CPU time per datagram it forwarded, ns.
    pub cpu_ns_per_datagram: f64,
}

/// Datagrams/s through a raw forwarder thread (recv from A, send to B, the
/// same batching, nothing else): what a relay costs the kernel alone.
pub fn raw_forward_rate(mode: Mode, size: usize, dur: Duration) -> io::Result<RawForward> {
    let (tx, fwd, rx) = (loopback_socket()?, loopback_socket()?, loopback_socket()?);
    let (f_addr, b_addr) = (fwd.local_addr()?, rx.local_addr()?);
    set_rcvtimeo(&rx, Duration::from_millis(20))?;
    set_rcvtimeo(&fwd, Duration::from_millis(20))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (st1, st2) = (stop.clone(), stop.clone());
    // With GSO+GRO the forwarder receives coalesced super-datagrams and
    // sends each on as one GSO message (what an ideal relay does), so its
    // receiver takes GRO too; otherwise it sends datagram by datagram.
    let rx_mode = mode;
    if mode == Mode::GsoGro {
        crate::sock::set_gro(&rx)?;
        crate::sock::set_gro(&fwd)?;
    }
    let receiver = thread::spawn(move || raw::receive(rx_mode, rx, &st1));
    let forwarder = thread::spawn(move || forward(mode, &fwd, b_addr, &st2));
    let start = Instant::now();
    let sent = raw::send_bytes_until(mode, &tx, f_addr, &vec![0x5a; size], start + dur);
    let elapsed = start.elapsed();
    thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    let (forwarded, cpu) = forwarder
        .join()
        .map_err(|_| io::Error::other("forwarder panicked"))?;
    let got = receiver
        .join()
        .map_err(|_| io::Error::other("receiver panicked"))??;
    sent?;
    Ok(RawForward {
        rate: got as f64 / elapsed.as_secs_f64(),
        cpu_ns_per_datagram: cpu as f64 / forwarded.max(1) as f64,
    })
}

/// Forwards until `stop`; returns the datagrams forwarded and the thread's
/// CPU nanoseconds.
fn forward(mode: Mode, s: &UdpSocket, to: SocketAddr, stop: &AtomicBool) -> (u64, u64) {
    let cpu0 = this_thread_cpu_ns();
    let n = forward_loop(mode, s, to, stop);
    (n, this_thread_cpu_ns().saturating_sub(cpu0))
}

fn forward_loop(mode: Mode, s: &UdpSocket, to: SocketAddr, stop: &AtomicBool) -> u64 {
    let mut count = 0u64;
    let fd = s.as_raw_fd();
    let mut name = RawName::new(to);
    if mode == Mode::Single {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(n) = s.recv(&mut buf) {
                if s.send_to(&buf[..n], to).is_ok() {
                    count += 1;
                }
            }
        }
        return count;
    }
    let gro = mode == Mode::GsoGro;
    let buf_len = if gro { 65_536 } else { 2048 };
    let mut bufs = vec![vec![0u8; buf_len]; BATCH];
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: buf_len,
        })
        .collect();
    let mut cmsg = vec![[0u64; 8]; BATCH];
    // SAFETY: mmsghdr is plain old data; all-zero is valid.
    let mut hdrs = vec![unsafe { std::mem::zeroed::<libc::mmsghdr>() }; BATCH];
    while !stop.load(Ordering::Relaxed) {
        for ((h, v), c) in hdrs.iter_mut().zip(iov.iter_mut()).zip(cmsg.iter_mut()) {
            h.msg_hdr.msg_name = std::ptr::null_mut();
            h.msg_hdr.msg_namelen = 0;
            h.msg_hdr.msg_iov = v;
            h.msg_hdr.msg_iovlen = 1;
            if gro {
                h.msg_hdr.msg_control = c.as_mut_ptr().cast();
                h.msg_hdr.msg_controllen = 64;
            } else {
                h.msg_hdr.msg_control = std::ptr::null_mut();
                h.msg_hdr.msg_controllen = 0;
            }
            v.iov_len = buf_len;
        }
        // SAFETY: headers point at live buffers owned by this function.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            continue;
        }
        let n = n as usize;
        for ((h, v), c) in hdrs
            .iter_mut()
            .zip(iov.iter_mut())
            .zip(cmsg.iter_mut())
            .take(n)
        {
            let len = h.msg_len as usize;
            v.iov_len = len;
            let seg = if gro {
                // SAFETY: msg_control is our 64-byte buffer and the kernel
                // set msg_controllen to what it wrote.
                unsafe { crate::sock::gro_segment(&h.msg_hdr) }
            } else {
                None
            };
            h.msg_hdr.msg_name = name.ptr();
            h.msg_hdr.msg_namelen = name.len();
            count += match seg {
                Some(seg) if seg > 0 && seg < len => len.div_ceil(seg) as u64,
                _ => 1,
            };
            match seg {
                // A coalesced super-datagram leaves as one GSO message.
                Some(seg) if seg > 0 && seg < len => {
                    let l = crate::sock::write_segment_cmsg(c, seg as u16);
                    h.msg_hdr.msg_control = c.as_mut_ptr().cast();
                    h.msg_hdr.msg_controllen = l as _;
                }
                _ => {
                    h.msg_hdr.msg_control = std::ptr::null_mut();
                    h.msg_hdr.msg_controllen = 0;
                }
            }
        }
        // SAFETY: as above; the names point at `name`, live for the call.
        unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as u32, 0) };
    }
    count
}

/// The supernode's state per relay session with `n` sessions open (two
/// distinct ends each): its session table (`moss_mesh::relay::sessions`)
/// and both data-plane routes, live heap bytes (counting allocator)
/// divided by `n`; and route decisions/s.
pub fn memory_per_session(n: u32) -> (f64, f64, f64) {
    use moss_mesh::relay::route::{RelayRoutes, Route, RouteLimits};
    use moss_mesh::relay::sessions::Sessions;
    let key = |i: u32, side: u8| {
        let mut k = [side; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        moss_mesh::PeerId(k)
    };
    let mut cfg = moss_mesh::Config::default();
    cfg.nat.relay_max_sessions = n;
    let before = crate::alloc::live_bytes();
    let mut table = Sessions::new(&cfg);
    let mut ids = Vec::with_capacity(n as usize);
    let ids_bytes = crate::alloc::live_bytes() - before;
    for i in 0..n {
        if let Ok(s) = table.admit(Duration::ZERO, key(i, 1), key(i, 2)) {
            ids.push(s.id());
        }
    }
    let table_bytes = crate::alloc::live_bytes() - before - ids_bytes;
    let before = crate::alloc::live_bytes();
    let limits = RouteLimits {
        peer_burst: u32::MAX,
        peer_rate: u32::MAX,
        total_rate: u32::MAX,
    };
    let mut routes = RelayRoutes::new(limits);
    for (i, &id) in ids.iter().enumerate() {
        let a = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4000));
        let b = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 4001));
        for (k, (src, dst)) in [(a, b), (b, a)].into_iter().enumerate() {
            let route = Route {
                src,
                dst,
                session: id,
            };
            let _ = routes.add(2 * i as u32 + 1 + k as u32, route, 0);
        }
    }
    let route_bytes = crate::alloc::live_bytes() - before;
    let rounds = 20u32;
    let start = Instant::now();
    let mut ok = 0u64;
    for r in 0..rounds {
        for (i, _) in ids.iter().enumerate() {
            let idx = 2 * i as u32 + 1 + (r % 2);
            let a = SocketAddr::from((
                [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
                4000 + (r % 2) as u16,
            ));
            if let Some(Ok(_)) = routes.forward(idx, moss_mesh::Path::Udp(a), 1200, u64::from(r)) {
                ok += 1;
            }
        }
    }
    let rate = ok as f64 / start.elapsed().as_secs_f64();
    std::hint::black_box(&routes);
    let per = |b: i64| b as f64 / f64::from(n.max(1));
    (per(table_bytes), per(route_bytes), rate)
}

impl crate::Run {
    /// The `relay` scenario's tables.
    pub(crate) fn relay(&mut self) {
        use crate::report::{rate, Table};
        let mut t = Table::new(
            "Ours: relay data plane — A → supernode → B vs raw UDP with the same batching",
            vec![
                "backend",
                "ends' batching",
                "shards",
                "pairs",
                "datagram",
                "relayed datagrams/s (at B)",
                "forwarded by the supernode",
                "per shard (received)",
                "raw UDP one hop, same batching",
                "ratio",
                "raw forwarder A → F → B, same batching",
                "ratio",
                "CPU per forwarded datagram: supernode / raw forwarder",
                "ring seal+open, same size",
                "ratio to AEAD",
                "relay drops",
            ],
        );
        let dur = self.dur;
        // `--only` matches "<backend> <batching>" (e.g. `mmsg GSO`).
        let only = self.only.clone();
        for b in crate::node_backends(None) {
            let modes: &[Mode] = if b == "portable" {
                &[Mode::Single]
            } else {
                &[Mode::Mmsg, Mode::GsoGro]
            };
            let combos: Vec<(Mode, u32)> = modes
                .iter()
                .filter(|m| {
                    only.as_deref()
                        .is_none_or(|o| format!("{b} {}", m.label()).contains(o))
                })
                .flat_map(|&m| self.shards.iter().map(move |&s| (m, s)))
                .collect();
            for (mode, shards) in combos {
                let pairs = match self.relay_pairs {
                    0 => shards as usize,
                    n => n,
                };
                for &size in &self.sizes.clone() {
                    eprintln!(
                        "measuring relay {b}, {}, {shards} shard(s), {size} B ...",
                        mode.label()
                    );
                    let mut row = vec![
                        b.to_string(),
                        mode.label().to_string(),
                        shards.to_string(),
                        pairs.to_string(),
                        format!("{size} B"),
                    ];
                    match relayed_rate(b, shards, pairs, mode, size, dur) {
                        Ok(f) => {
                            row.extend([
                                rate(f.relayed),
                                f.forwarded.to_string(),
                                f.per_shard
                                    .iter()
                                    .map(|x| x.to_string())
                                    .collect::<Vec<_>>()
                                    .join(" / "),
                            ]);
                            match self.raw(mode, f.size) {
                                Ok(r) => row.extend([
                                    format!("{} ({})", rate(r), mode.label()),
                                    format!("{:.3}", f.relayed / r),
                                ]),
                                Err(e) => row.extend([format!("failed: {e}"), "-".into()]),
                            }
                            match raw_forward_rate(mode, f.size, dur) {
                                Ok(r) => row.extend([
                                    rate(r.rate),
                                    format!("{:.3}", f.relayed / r.rate),
                                    format!(
                                        "{:.0} ns / {:.0} ns",
                                        f.cpu_ns_per_datagram, r.cpu_ns_per_datagram
                                    ),
                                ]),
                                Err(e) => row.extend([
                                    format!("failed: {e}"),
                                    "-".into(),
                                    format!("{:.0} ns / -", f.cpu_ns_per_datagram),
                                ]),
                            }
                            match crate::crypto::seal_open_rate(f.size, dur) {
                                Ok(r) => row.extend([rate(r), format!("{:.2}", f.relayed / r)]),
                                Err(e) => row.extend([format!("failed: {e}"), "-".into()]),
                            }
                            row.push(f.drops.to_string());
                        }
                        Err(e) => {
                            row.push(format!("failed: {e}"));
                            row.extend(std::iter::repeat_n("-".to_string(), 10));
                        }
                    }
                    t.rows.push(row);
                }
            }
        }
        t.notes.push(format!(
            "A real engine supernode (the backend and `engine.shards` of the row) relays for sans-IO ends \
             that met through it by the protocol (signed request/accept, their Noise XX handshake carried \
             in its sessions). Each A socket then sends one real sealed data datagram of its A–B session \
             (a SUBSCRIBE frame for small sizes, a publish for large) over and over, batched like the raw \
             figure beside it (`portable`: one per syscall; `mmsg`/`uring`: sendmmsg ×64, and GSO send + GRO \
             receive); B's socket counts arrivals. The supernode's backend batches its sends as it always does \
             (mmsg and uring coalesce a run of datagrams to one destination with GSO where the kernel allows), \
             which the raw forwarder does not in the sendmmsg rows: that is why the supernode can beat it there. The supernode forwards without the core thread: unmask the head (one \
             ChaCha20 block), look the route up by receiver index, check the sending end's bucket and the \
             bandwidth cap (raised here: the product limits are 64 KB/s per end and 256 kbit/s in all), send \
             the datagram unchanged from the buffer it was received into (`Backend::recv_forward`, one send \
             batch per receive, no copy; with GRO the datagrams of a received super-datagram that all go one \
             way leave as one GSO message of the same segment size, each still unmasked, looked up and \
             counted); no re-seal (see PROTOCOL.md). The pairs column: \
             A → B pairs blasting at once (one per shard unless `--relay-pairs` says otherwise; the kernel's \
             SO_REUSEPORT hash decides which shard gets which A, so 2 pairs share one shard about half the \
             time). `raw forwarder`: a \
             thread that only recvmmsg's and sendmmsg's the same datagrams on to B, the kernel cost of any \
             relay (in the GSO rows it receives GRO super-datagrams and sends each on as one GSO message). \
             CPU per forwarded datagram: the supernode's engine and shard threads' time on CPU \
             (`/proc/self/task/*/schedstat`) during the blast over what it forwarded, and the raw \
             forwarder thread's over what it forwarded. {} cores are shared by the senders, receivers and the supernode.",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ));
        self.tables.push(t);
        let mut u = Table::new(
            "Ours: the supernode's user-space step per forwarded datagram (no kernel)",
            vec![
                "datagram",
                "CPU per forwarded datagram, one at a time",
                "datagrams/s, one thread",
                "CPU per forwarded datagram, chunks of 64 (batched head mask)",
                "datagrams/s, one thread",
                "head masks/s: one by one / batched",
            ],
        );
        for &size in &self.sizes.clone() {
            eprintln!("measuring the relay forward step, {size} B ...");
            let (scalar, batched) = crate::crypto::head_mask_rates(size, dur);
            let masks = format!(
                "{} / {} ({} lanes)",
                rate(scalar),
                rate(batched),
                moss_crypto::Scrambler::mask_lanes()
            );
            match forward_step_ns(size, dur) {
                Ok(f) => u.rows.push(vec![
                    format!("{size} B"),
                    format!("{:.1} ns", f.single),
                    rate(1e9 / f.single.max(1e-3)),
                    format!("{:.1} ns", f.batched),
                    rate(1e9 / f.batched.max(1e-3)),
                    masks,
                ]),
                Err(e) => u.rows.push(vec![
                    format!("{size} B"),
                    format!("failed: {e}"),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    masks,
                ]),
            }
        }
        u.notes.push(
            "A sans-IO supernode (`moss_mesh::Node`, what the engine runs on its core thread with one \
             shard, and the same `SessionShard::open` its shards run) relays for two sans-IO ends that met \
             through it by the protocol; one captured A → B data datagram is handed to \
             `Node::handle_datagram_forwarding` over and over, which unmasks its head, finds the route, \
             checks the buckets, counts it and returns B's address (a relayed datagram is not altered); \
             its clock moves 1 ms per 1,024 datagrams so the raised buckets never limit. Chunks of 64: what the engine's receive does (`Backend::recv_forward_batch`): 64 copies of the \
             datagram, every head unmasked in one `Node::peek_heads` pass (lane-wise ChaCha20), then \
             `Node::handle_datagram_forwarding_peeked` on each. This thread's CPU time over the datagrams \
             forwarded: the supernode's own per-datagram cost, without the backend and the kernel. Head \
             masks/s: `Scrambler::peek_head` on 64 distinct datagrams one by one vs `Scrambler::peek_heads` \
             on all 64 (lanes: 8 with AVX2, else 4), one thread."
                .into(),
        );
        self.tables.push(u);
        let mut m = Table::new(
            "Ours: supernode state per relay session (counting allocator)",
            vec![
                "sessions",
                "relay table per session",
                "data-plane routes per session (per shard)",
                "total per session (1 shard)",
                "goal",
                "route decisions/s",
            ],
        );
        for n in [10_000, 50_000] {
            eprintln!("measuring relay session memory at {n} sessions ...");
            let (table, routes, decisions) = memory_per_session(n);
            m.rows.push(vec![
                n.to_string(),
                format!("{table:.0} B"),
                format!("{routes:.0} B"),
                format!("{:.0} B", table + routes),
                "≤ 256 B".into(),
                rate(decisions),
            ]);
        }
        m.notes.push(
            "The supernode's whole relay state after admitting N sessions between 2N distinct ends, as \
             live heap bytes / N: its session table (`moss_mesh::relay::sessions`: one slot per session in \
             256-slot chunks with both ends' identities, expiry, generation and control-plane buckets, and \
             the pair → slot map) and its data-plane routes on one shard (`relay::route`: one slot per \
             session at the same index, both directions with 19-byte addresses and the ends' buckets, and \
             the receiver index → slot map with two entries per session). Route decisions: \
             `RelayRoutes::forward` over all routes, one thread."
                .into(),
        );
        self.tables.push(m);
        self.tables.push(crate::opening::table(&self.shards));
    }
}
