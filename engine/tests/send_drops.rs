//! Kernel send drops are counted, exactly, on every backend: a sender
//! with the smallest send buffer the kernel grants floods a slow link (a
//! veth pair between two network namespaces of this test's own, a 10 Mbit/s
//! `tbf` queue on the sending side), so the kernel refuses most datagrams
//! with `EAGAIN`. The receiver in the other namespace counts what arrived;
//! the backend's `send_drops()` must account for every other datagram.
//! Needs root and `ip`/`tc` (a visible skip otherwise, a failure under
//! `CI=true`).

#![cfg(target_os = "linux")]

use moss::backend::{open_with_socket, OutDatagram, SendDrops};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::skip;

/// Datagrams per `send_batch` and batches offered.
const BATCH: usize = 64;
const ROUNDS: usize = 40;
/// Datagram size (below the veth MTU).
const SIZE: usize = 1000;

/// Two named network namespaces joined by a veth pair; removed on drop.
struct Link {
    tx_ns: String,
    rx_ns: String,
}

const TX_IP: [u8; 4] = [10, 77, 0, 1];
const RX_IP: [u8; 4] = [10, 77, 0, 2];

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Link {
    fn new(tag: &str) -> Result<Self, String> {
        let id = std::process::id();
        let link = Self {
            tx_ns: format!("moss-sd-{tag}-{id}-a"),
            rx_ns: format!("moss-sd-{tag}-{id}-b"),
        };
        let (a, b) = (link.tx_ns.as_str(), link.rx_ns.as_str());
        run(&["ip", "netns", "add", a])?;
        run(&["ip", "netns", "add", b])?;
        run(&[
            "ip", "-n", a, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", b,
        ])?;
        run(&["ip", "-n", a, "addr", "add", "10.77.0.1/24", "dev", "v0"])?;
        run(&["ip", "-n", b, "addr", "add", "10.77.0.2/24", "dev", "v1"])?;
        for (ns, dev) in [(a, "v0"), (b, "v1"), (a, "lo"), (b, "lo")] {
            run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        }
        // A slow queue that holds (never drops) what the socket sent, so
        // the socket's tiny send buffer stays full.
        run(&[
            "tc", "-n", a, "qdisc", "add", "dev", "v0", "root", "tbf", "rate", "10mbit", "burst",
            "64kb", "limit", "16mb",
        ])?;
        Ok(link)
    }

    /// A UDP socket bound in namespace `ns` (made on a thread that enters
    /// it, so the test thread's namespace never changes).
    fn socket(ns: &str, ip: [u8; 4], sndbuf: Option<i32>) -> Result<UdpSocket, String> {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || -> Result<UdpSocket, String> {
            let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            // SAFETY: setns on this thread only, with a namespace fd we hold.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!("setns: {}", std::io::Error::last_os_error()));
            }
            let s = UdpSocket::bind(SocketAddr::from((ip, 0))).map_err(|e| e.to_string())?;
            let (opt, v) = match sndbuf {
                Some(v) => (libc::SO_SNDBUF, v),
                None => (libc::SO_RCVBUF, 16 << 20),
            };
            common::set_socket_int(s.as_raw_fd(), opt, v);
            Ok(s)
        })
        .join()
        .map_err(|_| "socket thread panicked".to_string())?
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = run(&["ip", "netns", "del", &self.tx_ns]);
        let _ = run(&["ip", "netns", "del", &self.rx_ns]);
    }
}

/// Counts datagrams arriving on `rx` until `want` arrived or nothing came
/// for a second (the queue is drained by then), bounded by 20 s.
fn count_arrivals(rx: &UdpSocket, want: u64) -> u64 {
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 2048];
    let mut got = 0;
    let mut quiet_since = Instant::now();
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && quiet_since.elapsed() < Duration::from_secs(1) {
        match rx.recv(&mut buf) {
            Ok(n) => {
                assert_eq!(n, SIZE, "datagram size");
                got += 1;
                quiet_since = Instant::now();
                if got > want {
                    break;
                }
            }
            Err(_) => continue,
        }
    }
    got
}

#[test]
fn full_send_buffer_drops_are_counted_exactly() {
    for kind in common::backend_kinds() {
        let name = kind.as_str();
        let link = match Link::new(name) {
            Ok(l) => l,
            Err(e) => {
                skip(&format!("no veth/tbf namespaces here: {e}"));
                return;
            }
        };
        // SO_SNDBUF 1: the kernel's minimum (a few KiB).
        let tx = Link::socket(&link.tx_ns, TX_IP, Some(1)).expect("sender");
        let rx = Link::socket(&link.rx_ns, RX_IP, None).expect("receiver");
        let to = rx.local_addr().expect("addr");
        let mut b = open_with_socket(kind, tx).unwrap_or_else(|e| panic!("{name}: {e}"));
        let payload = vec![0x42u8; SIZE];
        let out: Vec<OutDatagram<'_>> = (0..BATCH)
            .map(|_| OutDatagram {
                to,
                bytes: &payload,
            })
            .collect();
        let mut handled = 0u64;
        for _ in 0..ROUNDS {
            handled += b.send_batch(&out).unwrap_or(0) as u64;
        }
        let offered = (BATCH * ROUNDS) as u64;
        let d: SendDrops = b.send_drops();
        let got = count_arrivals(&rx, offered);
        eprintln!("{name}: offered {offered}, handled {handled}, arrived {got}, drops {d:?}");
        assert!(d.would_block > 0, "{name}: no EAGAIN counted: {d:?}");
        assert_eq!(
            got + d.total(),
            offered,
            "{name}: arrived {got} + counted drops {d:?} != offered {offered}"
        );
        assert_eq!(d.refused + d.failed, 0, "{name}: {d:?}");
    }
}
