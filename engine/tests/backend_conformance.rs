//! One conformance suite run against every backend this machine has:
//! `portable` always, `mmsg` and `uring` on Linux (a backend the kernel
//! refuses is a visible `SKIP:`, and a failure under `CI=true`). Loopback only; every loop is bounded by
//! a deadline that fails the test instead of hanging; no timing assertions.

use moss::backend::{
    open_with_socket, Backend, BackendKind, Forward, OutDatagram, RecvBatch, FORWARD_CHUNK,
    MAX_RECV_DATAGRAM,
};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::skip;

/// How long any single exchange may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

/// Every backend that starts on this machine.
fn kinds() -> Vec<BackendKind> {
    common::backend_kinds()
}

/// A socket on `addr` with a large receive buffer (floods must not be
/// dropped by the kernel before the backend sees them).
fn socket(addr: &str) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            common::set_socket_int(s.as_raw_fd(), opt, 4 << 20);
        }
    }
    Ok(s)
}

/// The receive buffer the kernel grants a socket made by [`socket`] (bytes,
/// as `getsockopt` reports them).
fn granted_rcvbuf() -> usize {
    #[cfg(target_os = "linux")]
    {
        let Ok(s) = socket("127.0.0.1:0") else {
            return 0;
        };
        use std::os::fd::AsRawFd;
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: passes a live c_int and its size for the kernel to fill.
        let rc = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            v.max(0) as usize
        } else {
            0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        212_992
    }
}

fn open(kind: BackendKind, addr: &str) -> Result<Box<dyn Backend>, String> {
    let s = socket(addr).map_err(|e| e.to_string())?;
    open_with_socket(kind, s).map_err(|e| e.to_string())
}

fn pair(a: BackendKind, b: BackendKind, addr: &str) -> (Box<dyn Backend>, Box<dyn Backend>) {
    let x = open(a, addr).unwrap_or_else(|e| panic!("open {}: {e}", a.as_str()));
    let y = open(b, addr).unwrap_or_else(|e| panic!("open {}: {e}", b.as_str()));
    (x, y)
}

/// Deterministic payload for datagram `i` of length `len`.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i.wrapping_mul(131) ^ j.wrapping_mul(7) ^ (j >> 8)) as u8)
        .collect()
}

/// Sends all of `msgs` to `to`, retrying what the kernel did not accept
/// until the deadline.
fn send_all(tx: &mut dyn Backend, to: SocketAddr, msgs: &[Vec<u8>]) {
    let out: Vec<OutDatagram<'_>> = msgs.iter().map(|m| OutDatagram { to, bytes: m }).collect();
    let end = Instant::now() + DEADLINE;
    let mut at = 0;
    while at < out.len() {
        let n = tx
            .send_batch(&out[at..])
            .unwrap_or_else(|e| panic!("{} send_batch: {e}", tx.name()));
        assert!(
            n <= out.len() - at,
            "{} accepted more than offered",
            tx.name()
        );
        at += n;
        assert!(Instant::now() < end, "{}: send did not finish", tx.name());
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Receives until `want` datagrams arrived; returns them in arrival order
/// with the largest `filled` seen in one call.
fn recv_n(
    rx: &mut dyn Backend,
    batch: &mut RecvBatch,
    want: usize,
) -> (Vec<(SocketAddr, Vec<u8>)>, usize) {
    let end = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut most = 0;
    while got.len() < want {
        assert!(
            Instant::now() < end,
            "{}: got {} of {want} datagrams before the deadline",
            rx.name(),
            got.len()
        );
        let n = rx
            .recv_batch(batch)
            .unwrap_or_else(|e| panic!("{} recv_batch: {e}", rx.name()));
        assert_eq!(n, batch.filled, "{}: return value != filled", rx.name());
        assert!(n <= batch.bufs.len(), "{}: overfilled batch", rx.name());
        most = most.max(n);
        got.extend(batch.iter().map(|(a, b)| (a, b.to_vec())));
        if n == 0 {
            rx.wait(Some(Duration::from_millis(100)))
                .unwrap_or_else(|e| panic!("{} wait: {e}", rx.name()));
        }
    }
    (got, most)
}

/// Asserts that `got` is exactly `sent`, in order, all from `from`.
fn check_exact(name: &str, got: &[(SocketAddr, Vec<u8>)], sent: &[Vec<u8>], from: SocketAddr) {
    assert_eq!(got.len(), sent.len(), "{name}: count");
    for (i, ((a, g), s)) in got.iter().zip(sent).enumerate() {
        assert_eq!(*a, from, "{name}: sender address of datagram {i}");
        assert_eq!(g.len(), s.len(), "{name}: length of datagram {i}");
        assert!(
            g == s,
            "{name}: bytes of datagram {i} ({} B) differ",
            s.len()
        );
    }
}

/// Nothing more arrives within a short quiet period.
fn assert_quiet(rx: &mut dyn Backend, batch: &mut RecvBatch) {
    for _ in 0..3 {
        let _ = rx.wait(Some(Duration::from_millis(20)));
        let n = rx.recv_batch(batch).unwrap_or(0);
        assert_eq!(n, 0, "{}: unexpected extra datagrams", rx.name());
    }
}

const MIXED: &[usize] = &[
    0,
    1,
    2,
    63,
    64,
    65,
    100,
    512,
    1000,
    1199,
    1200,
    1201,
    1400,
    1471,
    1472,
    1473,
    1500,
    2000,
    2046,
    2047,
    MAX_RECV_DATAGRAM,
];

fn mixed_roundtrip(addr: &str) {
    for kind in kinds() {
        let (mut tx, mut rx) = pair(kind, kind, addr);
        let to = rx.local_addr().expect("local addr");
        let from = tx.local_addr().expect("local addr");
        let msgs: Vec<Vec<u8>> = MIXED
            .iter()
            .enumerate()
            .map(|(i, &l)| payload(i, l))
            .collect();
        send_all(tx.as_mut(), to, &msgs);
        let mut batch = RecvBatch::new(64);
        let (got, _) = recv_n(rx.as_mut(), &mut batch, msgs.len());
        check_exact(kind.as_str(), &got, &msgs, from);
        assert_quiet(rx.as_mut(), &mut batch);
    }
}

#[test]
fn mixed_sizes_arrive_intact_in_order_ipv4() {
    mixed_roundtrip("127.0.0.1:0");
}

#[test]
fn mixed_sizes_arrive_intact_in_order_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        skip("no IPv6 loopback here");
        return;
    }
    mixed_roundtrip("[::1]:0");
}

/// Equal-size runs to one destination (GSO on the sending side, GRO on the
/// receiving side where enabled) arrive as the same separate datagrams,
/// across every sender/receiver combination.
fn equal_size_runs(addr: &str) {
    let ks = kinds();
    // (count, size): a normal run, one longer than a GSO message may carry,
    // one whose total exceeds 64 KiB, and a run closed by a shorter datagram.
    let shapes: &[(usize, usize)] = &[(40, 1000), (150, 64), (80, 1472), (7, MAX_RECV_DATAGRAM)];
    for &a in &ks {
        for &b in &ks {
            let (mut tx, mut rx) = pair(a, b, addr);
            let to = rx.local_addr().expect("local addr");
            let from = tx.local_addr().expect("local addr");
            let name = format!("{}->{}", a.as_str(), b.as_str());
            let mut batch = RecvBatch::new(64);
            for (s, &(count, size)) in shapes.iter().enumerate() {
                let mut msgs: Vec<Vec<u8>> =
                    (0..count).map(|i| payload(s * 1000 + i, size)).collect();
                msgs.push(payload(s * 1000 + count, size / 3));
                send_all(tx.as_mut(), to, &msgs);
                let (got, _) = recv_n(rx.as_mut(), &mut batch, msgs.len());
                check_exact(&name, &got, &msgs, from);
            }
            assert_quiet(rx.as_mut(), &mut batch);
        }
    }
}

#[test]
fn equal_size_runs_split_correctly_across_backends_ipv4() {
    equal_size_runs("127.0.0.1:0");
}

#[test]
fn equal_size_runs_split_correctly_across_backends_ipv6() {
    if UdpSocket::bind("[::1]:0").is_err() {
        skip("no IPv6 loopback here");
        return;
    }
    equal_size_runs("[::1]:0");
}

/// A flood larger than the batch is drained over several calls, none of
/// which overfills the batch, and nothing is lost or reordered.
#[test]
fn flood_larger_than_batch_drains_across_calls() {
    for kind in kinds() {
        let (mut tx, mut rx) = pair(kind, kind, "127.0.0.1:0");
        let to = rx.local_addr().expect("local addr");
        let from = tx.local_addr().expect("local addr");
        // As many as the receive buffer surely holds (the kernel may cap
        // SO_RCVBUF below what `socket` asked for), yet many batches.
        let count = (granted_rcvbuf() / 4096).clamp(24, 600);
        let msgs: Vec<Vec<u8>> = (0..count)
            .map(|i| payload(i, 200 + (i / 50) % 2 * 900))
            .collect();
        for chunk in msgs.chunks(50) {
            send_all(tx.as_mut(), to, chunk);
        }
        let mut batch = RecvBatch::new(8);
        let (got, most) = recv_n(rx.as_mut(), &mut batch, msgs.len());
        assert!(most <= 8, "{}: a call returned {most} > 8", kind.as_str());
        assert!(
            most > 1,
            "{}: never more than one datagram per call",
            kind.as_str()
        );
        check_exact(kind.as_str(), &got, &msgs, from);
        assert_quiet(rx.as_mut(), &mut batch);
    }
}

/// Two senders interleaved: each datagram carries its own sender address.
#[test]
fn sender_addresses_are_reported_per_datagram() {
    for kind in kinds() {
        let (mut a, mut rx) = pair(kind, kind, "127.0.0.1:0");
        let mut b = open(kind, "127.0.0.1:0").expect("open");
        let to = rx.local_addr().expect("local addr");
        let (fa, fb) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
        let mut batch = RecvBatch::new(16);
        let mut expect = Vec::new();
        for round in 0..10 {
            let ma = vec![payload(round, 300); 3];
            let mb = vec![payload(round + 100, 300); 2];
            send_all(a.as_mut(), to, &ma);
            send_all(b.as_mut(), to, &mb);
            expect.extend(ma.into_iter().map(|m| (fa, m)));
            expect.extend(mb.into_iter().map(|m| (fb, m)));
        }
        let (got, _) = recv_n(rx.as_mut(), &mut batch, expect.len());
        assert_eq!(got, expect, "{}: addresses or order", kind.as_str());
    }
}

/// A wake from another thread ends a `wait` that would otherwise last the
/// whole deadline; a wake issued before `wait` is not lost.
#[test]
fn waker_interrupts_wait_from_another_thread() {
    for kind in kinds() {
        let mut b = open(kind, "127.0.0.1:0").expect("open");
        let waker = b.waker();
        let fired = Arc::new(AtomicBool::new(false));
        let f2 = fired.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            f2.store(true, Ordering::SeqCst);
            waker.wake();
        });
        let start = Instant::now();
        while !fired.load(Ordering::SeqCst) {
            b.wait(Some(DEADLINE)).expect("wait");
            assert!(
                start.elapsed() < DEADLINE,
                "{}: wake did not interrupt wait",
                kind.as_str()
            );
        }
        t.join().expect("waker thread");
        // Pre-armed wake.
        b.waker().wake();
        let start = Instant::now();
        b.wait(Some(DEADLINE)).expect("wait");
        assert!(
            start.elapsed() < DEADLINE,
            "{}: earlier wake was lost",
            kind.as_str()
        );
    }
}

/// `wait` with a timeout and nothing to read returns; `recv_batch` on an
/// idle socket returns 0 with `filled == 0`.
#[test]
fn timeout_returns_and_idle_recv_is_empty() {
    for kind in kinds() {
        let mut b = open(kind, "127.0.0.1:0").expect("open");
        let mut batch = RecvBatch::new(4);
        batch.filled = 3;
        assert_eq!(
            b.recv_batch(&mut batch).expect("recv"),
            0,
            "{}",
            kind.as_str()
        );
        assert_eq!(batch.filled, 0, "{}", kind.as_str());
        b.wait(Some(Duration::from_millis(30)))
            .expect("wait with timeout");
        b.wait(Some(Duration::ZERO))
            .expect("wait with zero timeout");
        assert_eq!(
            b.recv_batch(&mut batch).expect("recv"),
            0,
            "{}",
            kind.as_str()
        );
        assert!(!b.name().is_empty());
    }
}

/// A datagram larger than a slot is never delivered truncated as if it
/// were whole; the datagrams around it arrive intact, on every backend.
#[test]
fn oversized_datagrams_are_dropped_not_truncated() {
    for kind in kinds() {
        let (mut tx, mut rx) = pair(kind, kind, "127.0.0.1:0");
        let to = rx.local_addr().expect("local addr");
        let from = tx.local_addr().expect("local addr");
        let before = payload(1, 100);
        let big = payload(2, MAX_RECV_DATAGRAM + 1000);
        let after = payload(3, 100);
        send_all(tx.as_mut(), to, &[before.clone(), big, after.clone()]);
        let mut batch = RecvBatch::new(8);
        let (got, _) = recv_n(rx.as_mut(), &mut batch, 2);
        check_exact(kind.as_str(), &got, &[before, after], from);
        assert_quiet(rx.as_mut(), &mut batch);
    }
}

/// A send to an unreachable destination drops that datagram only.
#[test]
fn unreachable_destination_drops_only_that_datagram() {
    for kind in kinds() {
        let (mut tx, mut rx) = pair(kind, kind, "127.0.0.1:0");
        let to = rx.local_addr().expect("local addr");
        let from = tx.local_addr().expect("local addr");
        // Port 0 is never a valid destination.
        let bad: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let m = [payload(1, 500), payload(2, 500), payload(3, 500)];
        let out = [
            OutDatagram { to, bytes: &m[0] },
            OutDatagram {
                to: bad,
                bytes: &m[1],
            },
            OutDatagram { to, bytes: &m[2] },
        ];
        let n = tx.send_batch(&out).expect("send");
        assert_eq!(n, 3, "{}: accepted", kind.as_str());
        let mut batch = RecvBatch::new(8);
        let (got, _) = recv_n(rx.as_mut(), &mut batch, 2);
        check_exact(kind.as_str(), &got, &[m[0].clone(), m[2].clone()], from);
    }
}

/// `Auto` picks a backend that works here, and the kind strings round-trip.
#[test]
fn auto_selection_and_kind_names() {
    let b = open(BackendKind::Auto, "127.0.0.1:0").expect("auto backend");
    let avail: Vec<&str> = kinds().iter().map(|k| k.as_str()).collect();
    assert!(avail.contains(&b.name()), "auto chose {}", b.name());
    // Auto prefers uring, then mmsg, then portable.
    let best = ["uring", "mmsg", "portable"]
        .into_iter()
        .find(|k| avail.contains(k))
        .expect("portable is always available");
    assert_eq!(b.name(), best);
    for k in [
        BackendKind::Auto,
        BackendKind::Uring,
        BackendKind::Mmsg,
        BackendKind::Portable,
    ] {
        assert_eq!(BackendKind::parse(k.as_str()), Some(k));
    }
    assert_eq!(BackendKind::parse("epoll"), None);
}

/// Installs, on the calling thread only, a seccomp filter that makes
/// `io_uring_setup` fail with EPERM (as container runtimes do).
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn deny_io_uring_setup_on_this_thread() {
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
    const LD_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET: u16 = 0x06; // BPF_RET | BPF_K
    const ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
    const ERRNO: u32 = 0x0005_0000; // SECCOMP_RET_ERRNO
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let mut prog = [
        f(LD_ABS, 0, 0, 4), // seccomp_data.arch
        f(JEQ, 0, 3, ARCH),
        f(LD_ABS, 0, 0, 0), // seccomp_data.nr
        f(JEQ, 0, 1, libc::SYS_io_uring_setup as u32),
        f(RET, 0, 0, ERRNO | libc::EPERM as u32),
        f(RET, 0, 0, ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: plain prctl calls; `fprog` points at a live filter program
    // that the kernel copies. Without TSYNC the filter binds this thread
    // (and threads it spawns) only.
    unsafe {
        assert_eq!(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
            0,
            "no_new_privs"
        );
        assert_eq!(
            libc::prctl(
                libc::PR_SET_SECCOMP,
                2, /* SECCOMP_MODE_FILTER */
                &fprog as *const libc::sock_fprog
            ),
            0,
            "seccomp filter: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Where policy refuses io_uring, an explicit `uring` fails with a clear
/// `Unavailable` reason and `auto` falls back to `mmsg`, which works.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[test]
fn uring_refused_by_policy_is_reported_and_auto_falls_back() {
    if !kinds().contains(&BackendKind::Uring) {
        skip("uring unavailable here");
        return;
    }
    std::thread::spawn(|| {
        deny_io_uring_setup_on_this_thread();
        let err = match open(BackendKind::Uring, "127.0.0.1:0") {
            Ok(b) => panic!("uring started despite the filter: {}", b.name()),
            Err(e) => e,
        };
        assert!(
            err.contains("uring") && err.contains("EPERM"),
            "unclear reason: {err}"
        );
        let s = socket("127.0.0.1:0").expect("socket");
        match open_with_socket(BackendKind::Uring, s) {
            Err(moss::backend::BackendError::Unavailable { backend, .. }) => {
                assert_eq!(backend, "uring")
            }
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("uring started despite the filter"),
        }
        let mut rx = open(BackendKind::Auto, "127.0.0.1:0").expect("auto");
        assert_eq!(rx.name(), "mmsg");
        // The fallback works end to end, GSO runs included.
        let mut tx = open(BackendKind::Mmsg, "127.0.0.1:0").expect("mmsg");
        let to = rx.local_addr().expect("addr");
        let from = tx.local_addr().expect("addr");
        let msgs: Vec<Vec<u8>> = (0..30).map(|i| payload(i, 900)).collect();
        send_all(tx.as_mut(), to, &msgs);
        let mut batch = RecvBatch::new(16);
        let (got, _) = recv_n(rx.as_mut(), &mut batch, msgs.len());
        check_exact("auto fallback", &got, &msgs, from);
    })
    .join()
    .expect("policy thread");
}

/// `recv_with` (zero-copy where the backend has its own buffers, the
/// default over `recv_batch` elsewhere) hands out every datagram once, in
/// order, writable in place, never more than the batch has slots, and
/// interleaves with `recv_batch` without loss.
#[test]
fn recv_with_hands_out_every_datagram_in_place() {
    for kind in kinds() {
        let (mut tx, mut rx) = pair(kind, kind, "127.0.0.1:0");
        let to = rx.local_addr().expect("local addr");
        let from = tx.local_addr().expect("local addr");
        let mut msgs: Vec<Vec<u8>> = MIXED
            .iter()
            .enumerate()
            .map(|(i, &l)| payload(i, l))
            .collect();
        msgs.extend((0..60).map(|i| payload(100 + i, 1000)));
        send_all(tx.as_mut(), to, &msgs);
        let mut small = RecvBatch::new(5);
        let mut batch = RecvBatch::new(7);
        let mut got: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let end = Instant::now() + DEADLINE;
        let mut turn = 0;
        while got.len() < msgs.len() {
            assert!(
                Instant::now() < end,
                "{}: got {} of {}",
                kind.as_str(),
                got.len(),
                msgs.len()
            );
            turn += 1;
            let n = if turn % 3 != 0 {
                let mut seen = Vec::new();
                let n = rx
                    .recv_with(&mut small, &mut |a, data| {
                        data.iter_mut().for_each(|b| *b ^= 0xa5);
                        seen.push((a, data.iter().map(|b| b ^ 0xa5).collect::<Vec<u8>>()));
                    })
                    .unwrap_or_else(|e| panic!("{} recv_with: {e}", kind.as_str()));
                assert_eq!(n, seen.len(), "{}: count != calls", kind.as_str());
                assert!(n <= 5, "{}: {n} > 5 slots", kind.as_str());
                got.extend(seen);
                n
            } else {
                let n = rx.recv_batch(&mut batch).expect("recv_batch");
                got.extend(batch.iter().map(|(a, b)| (a, b.to_vec())));
                n
            };
            if n == 0 {
                rx.wait(Some(Duration::from_millis(100))).expect("wait");
            }
        }
        check_exact(kind.as_str(), &got, &msgs, from);
        assert_quiet(rx.as_mut(), &mut batch);
    }
}

/// `recv_forward` sends on exactly the datagrams its callback routes (as
/// the callback rewrote them in place), in order, each to the destination
/// named, and hands every datagram to the callback once; runs of equal
/// size (GRO-coalesced on receive, GSO on the way out) arrive intact.
#[test]
fn recv_forward_relays_what_the_callback_routes() {
    for kind in kinds() {
        let name = kind.as_str();
        let (mut tx, mut relay) = pair(kind, kind, "127.0.0.1:0");
        let mut rx = open(kind, "127.0.0.1:0").unwrap_or_else(|e| panic!("open {name}: {e}"));
        let (via, to) = (
            relay.local_addr().expect("addr"),
            rx.local_addr().expect("addr"),
        );
        let from = tx.local_addr().expect("addr");
        let mut msgs: Vec<Vec<u8>> = MIXED
            .iter()
            .enumerate()
            .map(|(i, &l)| payload(i, l))
            .collect();
        msgs.extend((0..120).map(|i| payload(100 + i, 1200)));
        msgs.extend((0..40).map(|i| payload(300 + i, 64)));
        send_all(tx.as_mut(), via, &msgs);
        let routed = |i: usize| i % 3 != 1;
        let mut kept = Vec::new();
        let mut seen = 0usize;
        let mut batch = RecvBatch::new(16);
        let end = Instant::now() + DEADLINE;
        let mut forwarded = 0;
        while seen < msgs.len() {
            assert!(Instant::now() < end, "{name}: saw {seen} of {}", msgs.len());
            let r = relay
                .recv_forward(&mut batch, &mut |a, data| {
                    assert_eq!(a, from, "{name}: sender of datagram {seen}");
                    let i = seen;
                    seen += 1;
                    if routed(i) {
                        data.iter_mut().for_each(|b| *b ^= 0x5a);
                        Some(to)
                    } else {
                        kept.push((a, data.to_vec()));
                        None
                    }
                })
                .unwrap_or_else(|e| panic!("{name} recv_forward: {e}"));
            // At most one receive's messages, as many as the slots, each
            // up to a GRO super-datagram's 64 segments.
            assert!(r.datagrams <= 16 * 64, "{name}: {} > 16 slots", r.datagrams);
            assert!(r.forwarded <= r.datagrams, "{name}: forwarded > received");
            forwarded += r.forwarded;
            if r.datagrams == 0 {
                relay.wait(Some(Duration::from_millis(100))).expect("wait");
            }
        }
        let want: Vec<Vec<u8>> = msgs
            .iter()
            .enumerate()
            .filter(|(i, _)| routed(*i))
            .map(|(_, m)| m.iter().map(|b| b ^ 0x5a).collect())
            .collect();
        let stay: Vec<Vec<u8>> = msgs
            .iter()
            .enumerate()
            .filter(|(i, _)| !routed(*i))
            .map(|(_, m)| m.clone())
            .collect();
        assert_eq!(forwarded, want.len(), "{name}: forwarded count");
        check_exact(name, &kept, &stay, from);
        let mut rbatch = RecvBatch::new(64);
        let (got, _) = recv_n(rx.as_mut(), &mut rbatch, want.len());
        check_exact(name, &got, &want, via);
        assert_eq!(relay.send_drops().total(), 0, "{name}: send drops");
        assert_quiet(rx.as_mut(), &mut rbatch);
    }
}

/// What a [`Forward`] saw: every chunk whole, then each of its datagrams.
struct Recorder {
    from: SocketAddr,
    to: SocketAddr,
    /// Copies of the current chunk's datagrams as `chunk` saw them.
    chunk: Vec<Vec<u8>>,
    /// The next index `datagram` must get.
    next: usize,
    /// Every datagram handed over, in order, with its sender.
    seen: Vec<(SocketAddr, Vec<u8>)>,
    /// Sizes of the chunks.
    chunks: Vec<usize>,
}

impl Forward for Recorder {
    fn chunk(&mut self, datagrams: &[&[u8]]) {
        assert!(!datagrams.is_empty() && datagrams.len() <= FORWARD_CHUNK);
        assert_eq!(
            self.next,
            self.chunk.len(),
            "a chunk was not handed over whole"
        );
        self.chunk = datagrams.iter().map(|d| d.to_vec()).collect();
        self.next = 0;
        self.chunks.push(datagrams.len());
    }

    fn datagram(&mut self, i: usize, from: SocketAddr, bytes: &mut [u8]) -> Option<SocketAddr> {
        assert_eq!(i, self.next, "datagrams of a chunk in order");
        assert_eq!(
            bytes,
            &self.chunk[i][..],
            "datagram {i} is the one its chunk showed"
        );
        assert_eq!(from, self.from);
        self.next += 1;
        self.seen.push((from, bytes.to_vec()));
        // Every other one is routed, rewritten in place.
        self.seen.len().is_multiple_of(2).then(|| {
            bytes.iter_mut().for_each(|b| *b ^= 0x3c);
            self.to
        })
    }
}

/// `recv_forward_batch` shows each chunk (at most `FORWARD_CHUNK`) whole
/// before handing its datagrams over one by one with their index, hands
/// every datagram over once in order, and sends on what `datagram`
/// routes; batches larger than a chunk are split.
#[test]
fn recv_forward_batch_shows_each_chunk_before_its_datagrams() {
    for kind in kinds() {
        let name = kind.as_str();
        let (mut tx, mut relay) = pair(kind, kind, "127.0.0.1:0");
        let mut rx = open(kind, "127.0.0.1:0").unwrap_or_else(|e| panic!("open {name}: {e}"));
        let via = relay.local_addr().expect("addr");
        let mut f = Recorder {
            from: tx.local_addr().expect("addr"),
            to: rx.local_addr().expect("addr"),
            chunk: Vec::new(),
            next: 0,
            seen: Vec::new(),
            chunks: Vec::new(),
        };
        let mut msgs: Vec<Vec<u8>> = (0..200).map(|i| payload(500 + i, 64)).collect();
        msgs.extend(MIXED.iter().enumerate().map(|(i, &l)| payload(i, l)));
        send_all(tx.as_mut(), via, &msgs);
        let mut batch = RecvBatch::new(100);
        let end = Instant::now() + DEADLINE;
        let mut forwarded = 0;
        while f.seen.len() < msgs.len() {
            assert!(
                Instant::now() < end,
                "{name}: saw {} of {}",
                f.seen.len(),
                msgs.len()
            );
            let r = relay
                .recv_forward_batch(&mut batch, &mut f)
                .unwrap_or_else(|e| panic!("{name} recv_forward_batch: {e}"));
            assert_eq!(
                f.next,
                f.chunk.len(),
                "{name}: the last chunk was handed over whole"
            );
            assert!(
                r.datagrams <= 100 * 64,
                "{name}: {} > 100 slots",
                r.datagrams
            );
            forwarded += r.forwarded;
            if r.datagrams == 0 {
                relay.wait(Some(Duration::from_millis(100))).expect("wait");
            }
        }
        check_exact(name, &f.seen, &msgs, f.from);
        assert!(
            f.chunks.iter().all(|&n| n <= FORWARD_CHUNK),
            "{name}: {:?}",
            f.chunks
        );
        let want: Vec<Vec<u8>> = msgs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, m)| m.iter().map(|b| b ^ 0x3c).collect())
            .collect();
        assert_eq!(forwarded, want.len(), "{name}: forwarded count");
        let mut rbatch = RecvBatch::new(64);
        let (got, _) = recv_n(rx.as_mut(), &mut rbatch, want.len());
        check_exact(name, &got, &want, via);
        assert_quiet(rx.as_mut(), &mut rbatch);
    }
}

/// A datagram the kernel refuses for its destination (broadcast without
/// `SO_BROADCAST`: `EACCES`) is counted under `refused`; the others of the
/// batch still go out.
#[test]
fn refused_sends_are_counted() {
    for kind in kinds() {
        let name = kind.as_str();
        let (mut tx, mut rx) = pair(kind, kind, "0.0.0.0:0");
        let port = rx.local_addr().expect("addr").port();
        let to: SocketAddr = ([127, 0, 0, 1], port).into();
        let bcast: SocketAddr = ([255, 255, 255, 255], port).into();
        let m: Vec<Vec<u8>> = (0..4).map(|i| payload(i, 300)).collect();
        let out = [
            OutDatagram { to, bytes: &m[0] },
            OutDatagram {
                to: bcast,
                bytes: &m[1],
            },
            OutDatagram {
                to: bcast,
                bytes: &m[2],
            },
            OutDatagram { to, bytes: &m[3] },
        ];
        let n = tx.send_batch(&out).expect("send");
        assert_eq!(n, 4, "{name}: handled");
        let d = tx.send_drops();
        assert_eq!(d.refused, 2, "{name}: {d:?}");
        assert_eq!(d.total(), 2, "{name}: {d:?}");
        let mut batch = RecvBatch::new(8);
        let (got, _) = recv_n(rx.as_mut(), &mut batch, 2);
        let from = SocketAddr::from(([127, 0, 0, 1], tx.local_addr().expect("addr").port()));
        check_exact(name, &got, &[m[0].clone(), m[3].clone()], from);
    }
}

/// The part of the suite for the backends with UDP segmentation offload
/// (`mmsg` and `uring`): the same GSO tests run over both.
#[cfg(target_os = "linux")]
mod offload {
    use super::*;
    use moss::backend::mmsg::{MmsgBackend, Offload};
    use moss::backend::uring::{UringBackend, UringOptions};

    /// What the GSO tests read of an offloading backend.
    trait Offloading: Backend {
        fn gso_on(&self) -> bool;
        fn gso_limit(&self) -> usize;
        fn gso_sends(&self) -> u64;
        fn send_dropped(&self) -> u64;
    }

    macro_rules! offloading {
        ($($t:ty),*) => {$(
            impl Offloading for $t {
                fn gso_on(&self) -> bool {
                    self.gso_enabled()
                }
                fn gso_limit(&self) -> usize {
                    self.gso_max_segment()
                }
                fn gso_sends(&self) -> u64 {
                    self.stats().gso_sends
                }
                fn send_dropped(&self) -> u64 {
                    self.send_drops().total()
                }
            }
        )*};
    }

    offloading!(MmsgBackend, UringBackend);

    /// The offloading kinds this machine runs.
    fn offload_kinds() -> Vec<BackendKind> {
        kinds()
            .into_iter()
            .filter(|k| matches!(k, BackendKind::Mmsg | BackendKind::Uring))
            .collect()
    }

    /// A backend of `kind` (default offloads) on a fresh loopback socket,
    /// with a second handle to that socket.
    fn open_offloading(kind: BackendKind) -> (Box<dyn Offloading>, UdpSocket) {
        let s = socket("127.0.0.1:0").expect("bind loopback");
        let handle = s.try_clone().expect("clone socket");
        let b: Box<dyn Offloading> = match kind {
            BackendKind::Mmsg => {
                Box::new(MmsgBackend::new(s, Offload::default()).expect("mmsg backend"))
            }
            _ => Box::new(UringBackend::new(s, UringOptions::default()).expect("uring backend")),
        };
        (b, handle)
    }

    /// Sends `count` datagrams of `size` bytes and checks they all arrive
    /// intact and in order.
    fn exchange_sized(tx: &mut dyn Offloading, rx: &mut dyn Offloading, count: usize, size: usize) {
        let to = rx.local_addr().expect("local addr");
        let from = tx.local_addr().expect("local addr");
        let msgs: Vec<Vec<u8>> = (0..count).map(|i| payload(i, size)).collect();
        let out: Vec<OutDatagram<'_>> = msgs.iter().map(|m| OutDatagram { to, bytes: m }).collect();
        assert_eq!(tx.send_batch(&out).expect("send"), count, "{}", tx.name());
        let mut batch = RecvBatch::new(64);
        let (got, _) = recv_n(rx, &mut batch, count);
        check_exact(tx.name(), &got, &msgs, from);
    }

    /// A GRO-coalesced run that `recv_forward` sends on to one destination
    /// leaves as GSO messages (not one message per datagram), intact.
    #[test]
    fn forwarded_runs_leave_with_gso() {
        for kind in offload_kinds() {
            let name = kind.as_str();
            let (mut tx, _) = open_offloading(kind);
            let (mut relay, _) = open_offloading(kind);
            let (mut rx, _) = open_offloading(kind);
            if !relay.gso_on() {
                skip(&format!("{name}: kernel refused GSO here"));
                continue;
            }
            let (via, to) = (
                relay.local_addr().expect("addr"),
                rx.local_addr().expect("addr"),
            );
            for size in [64, 1200] {
                let msgs: Vec<Vec<u8>> = (0..256).map(|i| payload(i, size)).collect();
                send_all(tx.as_mut(), via, &msgs);
                let before = relay.gso_sends();
                let mut batch = RecvBatch::new(64);
                let mut seen = 0;
                let end = Instant::now() + DEADLINE;
                while seen < msgs.len() {
                    assert!(Instant::now() < end, "{name}: saw {seen}");
                    let r = relay
                        .recv_forward(&mut batch, &mut |_, _| Some(to))
                        .expect("recv_forward");
                    seen += r.datagrams;
                    if r.datagrams == 0 {
                        relay.wait(Some(Duration::from_millis(100))).expect("wait");
                    }
                }
                let gso = relay.gso_sends() - before;
                assert!(
                    gso > 0,
                    "{name} {size} B: no GSO message among the forwards"
                );
                assert!(
                    gso < 64,
                    "{name} {size} B: {gso} GSO messages for 256 datagrams"
                );
                let mut rbatch = RecvBatch::new(64);
                let (got, _) = recv_n(rx.as_mut(), &mut rbatch, msgs.len());
                check_exact(name, &got, &msgs, via);
                assert_eq!(relay.send_dropped(), 0, "{name}");
            }
        }
    }

    /// With UDP checksums off (`SO_NO_CHECK`) the kernel refuses GSO sends
    /// with EINVAL: the backend resends one by one, loses nothing and turns
    /// GSO off.
    #[test]
    fn refused_gso_falls_back_without_loss() {
        for kind in offload_kinds() {
            let (mut tx, handle) = open_offloading(kind);
            let (mut rx, _) = open_offloading(kind);
            if !tx.gso_on() {
                skip(&format!("{}: kernel refused GSO here", kind.as_str()));
                continue;
            }
            use std::os::fd::AsRawFd;
            let one: libc::c_int = 1;
            // SAFETY: passes a live c_int and its size for a socket we own.
            let rc = unsafe {
                libc::setsockopt(
                    handle.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_NO_CHECK,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "SO_NO_CHECK");
            exchange_sized(tx.as_mut(), rx.as_mut(), 40, 1000);
            assert!(
                !tx.gso_on(),
                "{}: GSO still on after a refusal",
                kind.as_str()
            );
            assert_eq!(tx.gso_sends(), 0, "{}", kind.as_str());
            assert_eq!(tx.send_dropped(), 0, "{}", kind.as_str());
            // And it keeps working afterwards.
            exchange_sized(tx.as_mut(), rx.as_mut(), 40, 1000);
        }
    }

    /// A route MTU below the segment size makes the kernel answer a GSO run
    /// with EMSGSIZE: the datagrams go out one by one (fragmented), nothing
    /// is lost, and smaller segments are still coalesced afterwards.
    #[test]
    fn segments_above_the_route_mtu_go_one_by_one_and_smaller_still_coalesce() {
        let ran = common::with_loopback_mtu(1280, || {
            for kind in offload_kinds() {
                let (mut tx, _) = open_offloading(kind);
                let (mut rx, _) = open_offloading(kind);
                if !tx.gso_on() {
                    skip(&format!("{}: kernel refused GSO here", kind.as_str()));
                    continue;
                }
                let name = kind.as_str();
                exchange_sized(tx.as_mut(), rx.as_mut(), 20, 1400);
                assert!(tx.gso_on(), "{name}: GSO switched off by an MTU refusal");
                assert!(
                    (1000..1400).contains(&tx.gso_limit()),
                    "{name}: limit {}",
                    tx.gso_limit()
                );
                assert_eq!(tx.send_dropped(), 0, "{name}");
                let before = tx.gso_sends();
                exchange_sized(tx.as_mut(), rx.as_mut(), 20, 1000);
                assert!(tx.gso_sends() > before, "{name}: no GSO send after");
            }
        });
        if ran.is_none() {
            skip("network namespaces unavailable; MTU refusal not exercised");
        }
    }
}
