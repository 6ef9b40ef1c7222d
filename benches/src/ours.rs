//! Moss figures: each backend's throughput and latency through the
//! `Backend` trait, with the same threads, sizes and batching as the raw
//! limits.

use crate::raw::BATCH;
use crate::sock::loopback_socket;
use hdrhistogram::Histogram;
use moss::backend::mmsg::{MmsgBackend, Offload};
use moss::backend::uring::{UringBackend, UringOptions};
use moss::backend::{Backend, OutDatagram, RecvBatch, MAX_RECV_DATAGRAM};
use std::hint::black_box;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// A backend configuration measured by the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// `portable` (mio, one syscall per datagram).
    Portable,
    /// `mmsg` with GSO and GRO off.
    MmsgPlain,
    /// `mmsg` with GSO and GRO as probed.
    MmsgOffload,
    /// `uring` with GSO and GRO off.
    UringPlain,
    /// `uring` with GSO and GRO as probed.
    UringOffload,
    /// `mmsg` with GSO and GRO, received through the zero-copy `recv_with`.
    MmsgZeroCopy,
    /// `uring` with GSO and GRO, received through the zero-copy `recv_with`.
    UringZeroCopy,
    /// `mmsg` receiving with GRO on from a peer that sends without GSO
    /// (nothing to coalesce on loopback: every datagram is its own message).
    MmsgGroUncoalesced,
    /// `uring` receiving with GRO on (64 KiB ring buffers) from a peer that
    /// sends without GSO.
    UringGroUncoalesced,
}

/// The receiving end of a throughput run: `recv_batch` (one copy into the
/// owned slots) or the zero-copy `recv_with`.
pub struct Receiver {
    backend: Box<dyn Backend>,
    zero_copy: bool,
}

impl Receiver {
    fn backend(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    /// One receive call; returns the datagrams received.
    fn recv(&mut self, batch: &mut RecvBatch) -> io::Result<usize> {
        if self.zero_copy {
            self.backend.recv_with(batch, &mut |_, d: &mut [u8]| {
                black_box(d.len());
            })
        } else {
            self.backend.recv_batch(batch)
        }
    }
}

fn open_mmsg(offload: bool) -> Result<MmsgBackend, String> {
    let s = loopback_socket().map_err(|e| e.to_string())?;
    let b = MmsgBackend::new(
        s,
        Offload {
            gso: offload,
            gro: offload,
        },
    )
    .map_err(|e| e.to_string())?;
    if offload && !(b.gso_enabled() && b.gro_enabled()) {
        return Err("kernel refused UDP GSO/GRO".into());
    }
    Ok(b)
}

fn open_uring(offload: bool) -> Result<UringBackend, String> {
    let s = loopback_socket().map_err(|e| e.to_string())?;
    let b = UringBackend::new(
        s,
        UringOptions {
            gso: offload,
            gro: offload,
        },
    )
    .map_err(|e| e.to_string())?;
    if offload && !(b.gso_enabled() && b.gro_enabled()) {
        return Err("kernel refused UDP GSO/GRO".into());
    }
    Ok(b)
}

impl Variant {
    /// All variants, in table order.
    pub const ALL: [Variant; 9] = [
        Variant::Portable,
        Variant::MmsgPlain,
        Variant::MmsgGroUncoalesced,
        Variant::MmsgOffload,
        Variant::MmsgZeroCopy,
        Variant::UringPlain,
        Variant::UringGroUncoalesced,
        Variant::UringOffload,
        Variant::UringZeroCopy,
    ];

    /// Label used in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Portable => "portable",
            Variant::MmsgPlain => "mmsg (no GSO/GRO)",
            Variant::MmsgOffload => "mmsg (GSO+GRO)",
            Variant::UringPlain => "uring (no GSO/GRO)",
            Variant::UringOffload => "uring (GSO+GRO)",
            Variant::MmsgZeroCopy => "mmsg (GSO+GRO), zero-copy recv_with",
            Variant::UringZeroCopy => "uring (GSO+GRO), zero-copy recv_with",
            Variant::MmsgGroUncoalesced => "mmsg (GRO on, peer sends without GSO)",
            Variant::UringGroUncoalesced => "uring (GRO on, peer sends without GSO)",
        }
    }

    /// The raw limit with the same batching.
    pub fn raw_mode(self) -> crate::raw::Mode {
        use crate::raw::Mode;
        match self {
            Variant::Portable => Mode::Single,
            Variant::MmsgPlain
            | Variant::UringPlain
            | Variant::MmsgGroUncoalesced
            | Variant::UringGroUncoalesced => Mode::Mmsg,
            Variant::MmsgOffload
            | Variant::UringOffload
            | Variant::MmsgZeroCopy
            | Variant::UringZeroCopy => Mode::GsoGro,
        }
    }

    /// Starts this backend on a fresh loopback socket; `Err` names why it
    /// is unavailable here.
    pub fn open(self) -> Result<Box<dyn Backend>, String> {
        match self {
            Variant::Portable => {
                let s = loopback_socket().map_err(|e| e.to_string())?;
                moss::backend::open_with_socket(moss::backend::BackendKind::Portable, s)
                    .map_err(|e| e.to_string())
            }
            Variant::MmsgPlain | Variant::MmsgGroUncoalesced => Ok(Box::new(open_mmsg(false)?)),
            Variant::MmsgOffload | Variant::MmsgZeroCopy => Ok(Box::new(open_mmsg(true)?)),
            Variant::UringPlain | Variant::UringGroUncoalesced => Ok(Box::new(open_uring(false)?)),
            Variant::UringOffload | Variant::UringZeroCopy => Ok(Box::new(open_uring(true)?)),
        }
    }

    /// The receiving end for a throughput run.
    pub fn open_receiver(self) -> Result<Receiver, String> {
        let backend: Box<dyn Backend> = match self {
            Variant::MmsgGroUncoalesced => Box::new(open_mmsg(true)?),
            Variant::UringGroUncoalesced => Box::new(open_uring(true)?),
            _ => self.open()?,
        };
        Ok(Receiver {
            backend,
            zero_copy: matches!(self, Variant::MmsgZeroCopy | Variant::UringZeroCopy),
        })
    }
}

/// Received datagrams per second through the trait (or `recv_with` for the
/// zero-copy variants): one thread calls
/// `send_batch` with [`BATCH`] datagrams of `size` bytes, another calls
/// `recv_batch` (+ `wait` when idle) with a [`BATCH`]-slot batch.
pub fn throughput(v: Variant, size: usize, dur: Duration) -> Result<f64, String> {
    let mut tx = v.open()?;
    let mut rx = v.open_receiver()?;
    let to = rx.backend().local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_rx = stop.clone();
    let receiver = thread::spawn(move || -> io::Result<u64> {
        let mut batch = RecvBatch::new(BATCH);
        let mut count = 0u64;
        while !stop_rx.load(Ordering::Relaxed) {
            let n = rx.recv(&mut batch)?;
            if n == 0 {
                rx.backend().wait(Some(Duration::from_millis(10)))?;
            }
            count += n as u64;
        }
        Ok(count)
    });
    let payload = vec![0x5au8; size];
    let out: Vec<OutDatagram<'_>> = (0..BATCH)
        .map(|_| OutDatagram {
            to,
            bytes: &payload,
        })
        .collect();
    let start = Instant::now();
    let end = start + dur;
    let mut send_err = None;
    while Instant::now() < end {
        for _ in 0..16 {
            if let Err(e) = tx.send_batch(&out) {
                send_err = Some(e);
                break;
            }
        }
        if send_err.is_some() {
            break;
        }
    }
    let elapsed = start.elapsed();
    thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::SeqCst);
    let got = receiver
        .join()
        .map_err(|_| "receiver thread panicked".to_string())?
        .map_err(|e| format!("recv: {e}"))?;
    if let Some(e) = send_err {
        return Err(format!("send: {e}"));
    }
    Ok(got as f64 / elapsed.as_secs_f64())
}

/// Round-trip latency percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Round trips measured.
    pub samples: u64,
}

fn latency_of(h: &Histogram<u64>) -> Latency {
    Latency {
        p50: h.value_at_quantile(0.5) as f64 / 1e3,
        p99: h.value_at_quantile(0.99) as f64 / 1e3,
        p999: h.value_at_quantile(0.999) as f64 / 1e3,
        samples: h.len(),
    }
}

fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())
}

/// Ping-pong of one `size`-byte datagram through backend `v` on both ends
/// (each side blocks in `wait`), for `dur`.
pub fn ping_pong(v: Variant, size: usize, dur: Duration) -> Result<Latency, String> {
    let mut client = v.open()?;
    let mut server = v.open()?;
    let srv = server.local_addr().map_err(|e| e.to_string())?;
    let cli = client.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_s = stop.clone();
    let echo = thread::spawn(move || -> io::Result<()> {
        let mut batch = RecvBatch::new(8);
        while !stop_s.load(Ordering::Relaxed) {
            if server.recv_batch(&mut batch)? == 0 {
                server.wait(Some(Duration::from_millis(20)))?;
                continue;
            }
            for (_, bytes) in batch.iter() {
                server.send_batch(&[OutDatagram { to: cli, bytes }])?;
            }
        }
        Ok(())
    });
    let mut h = histogram()?;
    let payload = vec![1u8; size];
    let mut batch = RecvBatch::new(8);
    let end = Instant::now() + dur;
    let mut lost = 0u32;
    while Instant::now() < end && lost < 100 {
        let t0 = Instant::now();
        client
            .send_batch(&[OutDatagram {
                to: srv,
                bytes: &payload,
            }])
            .map_err(|e| e.to_string())?;
        let deadline = t0 + Duration::from_millis(200);
        loop {
            let n = client.recv_batch(&mut batch).map_err(|e| e.to_string())?;
            if n > 0 {
                let _ = h.record(t0.elapsed().as_nanos() as u64);
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                lost += 1;
                break;
            }
            client
                .wait(Some(deadline - now))
                .map_err(|e| e.to_string())?;
        }
    }
    stop.store(true, Ordering::SeqCst);
    client.waker().wake();
    echo.join()
        .map_err(|_| "echo thread panicked".to_string())?
        .map_err(|e| format!("echo: {e}"))?;
    if lost >= 100 {
        return Err("100 round trips lost".into());
    }
    Ok(latency_of(&h))
}

/// The same ping-pong over plain blocking std sockets (the raw reference).
pub fn raw_ping_pong(size: usize, dur: Duration) -> Result<Latency, String> {
    raw_ping_pong_with(size, dur, false)
}

/// The same ping-pong with both ends busy-polling non-blocking sockets (no
/// thread ever parks; they yield between polls): the wake-up-free floor of
/// one datagram's trip, half of whose round trip enters the one-hop latency
/// limit.
pub fn raw_busy_ping_pong(size: usize, dur: Duration) -> Result<Latency, String> {
    raw_ping_pong_with(size, dur, true)
}

/// Raw ping-pong over std sockets: blocking reads with timeouts, or (with
/// `busy`) non-blocking reads polled until a 200 ms give-up.
fn raw_ping_pong_with(size: usize, dur: Duration, busy: bool) -> Result<Latency, String> {
    let client = loopback_socket().map_err(|e| e.to_string())?;
    let server = loopback_socket().map_err(|e| e.to_string())?;
    let srv = server.local_addr().map_err(|e| e.to_string())?;
    let set = |r: std::io::Result<()>| r.map_err(|e| e.to_string());
    if busy {
        set(server.set_nonblocking(true))?;
        set(client.set_nonblocking(true))?;
    } else {
        set(server.set_read_timeout(Some(Duration::from_millis(20))))?;
        set(client.set_read_timeout(Some(Duration::from_millis(200))))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let stop_s = stop.clone();
    let echo = thread::spawn(move || {
        let mut buf = [0u8; MAX_RECV_DATAGRAM];
        while !stop_s.load(Ordering::Relaxed) {
            match server.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let _ = server.send_to(&buf[..n], from);
                }
                Err(_) if busy => thread::yield_now(),
                Err(_) => {}
            }
        }
    });
    let mut h = histogram()?;
    let payload = vec![1u8; size];
    let mut buf = [0u8; MAX_RECV_DATAGRAM];
    let end = Instant::now() + dur;
    let mut lost = 0u32;
    while Instant::now() < end && lost < 100 {
        let t0 = Instant::now();
        client.send_to(&payload, srv).map_err(|e| e.to_string())?;
        let give_up = t0 + Duration::from_millis(200);
        loop {
            match client.recv_from(&mut buf) {
                Ok(_) => {
                    let _ = h.record(t0.elapsed().as_nanos() as u64);
                    break;
                }
                Err(_) if busy && Instant::now() < give_up => thread::yield_now(),
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    echo.join()
        .map_err(|_| "echo thread panicked".to_string())?;
    Ok(latency_of(&h))
}

/// Nanoseconds to copy one `size`-byte datagram from a receive buffer into
/// a `RecvBatch` slot: the copy the trait's owned slots force on the `uring`
/// backend (and on `mmsg` with GRO).
pub fn slot_copy_ns(size: usize, dur: Duration) -> f64 {
    let src = vec![0x33u8; 64 * 1024];
    let mut batch = RecvBatch::new(BATCH);
    let per = (src.len() / size.max(1)).clamp(1, BATCH);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..1024 {
            for i in 0..per {
                let s = &src[i * size..(i + 1) * size];
                batch.bufs[i][..size].copy_from_slice(black_box(s));
            }
            black_box(&batch.bufs);
            n += per as u64;
        }
    }
    start.elapsed().as_nanos() as f64 / n as f64
}
