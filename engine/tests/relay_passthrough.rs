//! GRO passthrough on the relay data plane (Linux, `mmsg` and `uring`): a
//! relayed GRO super-datagram whose datagrams all go one way leaves as one
//! GSO message; a mixed one (two routes, an unknown index, datagrams over
//! their end's bucket) gets the same verdict per datagram and the same
//! deliveries, in order, as the same datagrams received one by one. The
//! relay is a real `SessionShard` with relay routes; loopback only, every
//! wait bounded by a deadline, no timing assertions.
#![cfg(target_os = "linux")]

use moss::backend::mmsg::{MmsgBackend, Offload};
use moss::backend::uring::{UringBackend, UringOptions};
use moss::backend::{Backend, BackendKind, Forward, OutDatagram, RecvBatch, FORWARD_CHUNK};
use moss_crypto::scramble::HEAD_LEN;
use moss_crypto::{MeshKeys, Scrambler};
use moss_mesh::relay::route::{Route, RouteLimits};
use moss_mesh::shard::{Inbound, SessionShard, TransportOp};
use moss_mesh::wire::Head;
use moss_mesh::DropReason;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

mod common;
use common::skip;

const MESH: &str = "relay-passthrough-test";
const SIZE: usize = 64;
const DEADLINE: Duration = Duration::from_secs(20);
/// Receiver index routed to X, and to Y; one nobody routes.
const TO_X: u32 = 101;
const TO_Y: u32 = 202;
const UNKNOWN: u32 = 999;

/// What the test reads of an offloading backend.
trait Offloading: Backend {
    fn gso_sends(&self) -> u64;
    fn gro_coalesced(&self) -> u64;
}

impl Offloading for MmsgBackend {
    fn gso_sends(&self) -> u64 {
        self.stats().gso_sends
    }
    fn gro_coalesced(&self) -> u64 {
        self.stats().gro_coalesced
    }
}

impl Offloading for UringBackend {
    fn gso_sends(&self) -> u64 {
        self.stats().gso_sends
    }
    fn gro_coalesced(&self) -> u64 {
        self.stats().gro_coalesced
    }
}

/// A backend of `kind` on a fresh loopback socket, GSO and GRO as asked.
fn open(kind: BackendKind, gso: bool, gro: bool) -> Box<dyn Offloading> {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    match kind {
        BackendKind::Mmsg => Box::new(MmsgBackend::new(s, Offload { gso, gro }).expect("mmsg")),
        _ => Box::new(UringBackend::new(s, UringOptions { gso, gro }).expect("uring")),
    }
}

/// The kinds with GSO/GRO this machine runs.
fn kinds() -> Vec<BackendKind> {
    common::backend_kinds()
        .into_iter()
        .filter(|k| matches!(k, BackendKind::Mmsg | BackendKind::Uring))
        .collect()
}

/// A relay: a shard with the routes P → X (index [`TO_X`]) and P → Y
/// ([`TO_Y`]), each end's bucket `burst` bytes and no refill (its clock
/// stands still).
struct Relay {
    shard: SessionShard,
    heads: [Option<[u8; HEAD_LEN]>; FORWARD_CHUNK],
}

impl Relay {
    fn new(p: SocketAddr, x: SocketAddr, y: SocketAddr, burst: u32) -> Self {
        let mut shard = SessionShard::new(0, &MeshKeys::derive(MESH, None));
        shard.set_clock(Duration::ZERO);
        let limits = RouteLimits {
            peer_burst: burst,
            peer_rate: 1,
            total_rate: u32::MAX,
        };
        for (index, dst, session) in [(TO_X, x, (1u64 << 32) | 1), (TO_Y, y, (2u64 << 32) | 1)] {
            let route = Route {
                src: p,
                dst,
                session,
            };
            let op = TransportOp::Route {
                index,
                route,
                limits,
            };
            shard.apply(op, &mut Vec::new()).expect("route");
        }
        Self {
            shard,
            heads: [None; FORWARD_CHUNK],
        }
    }
}

impl Forward for Relay {
    fn chunk(&mut self, datagrams: &[&[u8]]) {
        self.shard.peek_heads(datagrams, &mut self.heads);
    }

    fn datagram(&mut self, i: usize, from: SocketAddr, bytes: &mut [u8]) -> Option<SocketAddr> {
        match self.shard.receive_peeked(from, bytes, self.heads[i]) {
            Inbound::Relay { to } => Some(to),
            _ => None,
        }
    }
}

/// A masked data datagram of [`SIZE`] bytes for `receiver`, distinct by
/// `counter`.
fn datagram(sc: &Scrambler, receiver: u32, counter: u64) -> Vec<u8> {
    let mut d = vec![0u8; SIZE];
    d[..HEAD_LEN].copy_from_slice(&Head::Data { receiver, counter }.encode());
    for (j, b) in d[HEAD_LEN..].iter_mut().enumerate() {
        *b = (counter as u8).wrapping_mul(37) ^ j as u8;
    }
    sc.toggle_head(&mut d);
    d
}

/// Datagrams on `rx` until `want` arrived and a quiet period passed.
fn receive(rx: &UdpSocket, want: usize) -> Vec<Vec<u8>> {
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let end = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        match rx.recv(&mut buf) {
            Ok(n) => got.push(buf[..n].to_vec()),
            Err(_) if got.len() >= want => return got,
            Err(_) => assert!(Instant::now() < end, "got {} of {want}", got.len()),
        }
    }
}

/// What one relay run did.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    at_x: Vec<Vec<u8>>,
    at_y: Vec<Vec<u8>>,
    relayed: u64,
    over_bucket: u64,
    handed_over: usize,
    forwarded: usize,
}

/// P sends the datagrams for `seq` (receiver indices) to a relay of
/// `kind`: as one GSO message (`coalesced`: the relay receives one GRO
/// super-datagram) or one per message without GSO. Returns the outcome and
/// the relay's GSO sends.
fn run(kind: BackendKind, seq: &[u32], burst: u32, coalesced: bool) -> (Outcome, u64) {
    let sc = Scrambler::new(MeshKeys::derive(MESH, None).scramble_key);
    let mut p = open(kind, coalesced, false);
    let mut relay = open(kind, true, true);
    let (x, y) = (
        UdpSocket::bind("127.0.0.1:0").expect("bind"),
        UdpSocket::bind("127.0.0.1:0").expect("bind"),
    );
    let (xa, ya) = (x.local_addr().expect("addr"), y.local_addr().expect("addr"));
    let via = relay.local_addr().expect("addr");
    let mut f = Relay::new(p.local_addr().expect("addr"), xa, ya, burst);
    let sent: Vec<Vec<u8>> = seq
        .iter()
        .enumerate()
        .map(|(i, &r)| datagram(&sc, r, i as u64))
        .collect();
    let out: Vec<OutDatagram<'_>> = sent
        .iter()
        .map(|d| OutDatagram { to: via, bytes: d })
        .collect();
    assert_eq!(p.send_batch(&out).expect("send"), sent.len());
    let (gso0, gro0) = (relay.gso_sends(), relay.gro_coalesced());
    let mut batch = RecvBatch::new(64);
    let (mut handed_over, mut forwarded) = (0, 0);
    let end = Instant::now() + DEADLINE;
    while handed_over < sent.len() {
        assert!(Instant::now() < end, "relay saw {handed_over}");
        let r = relay
            .recv_forward_batch(&mut batch, &mut f)
            .expect("recv_forward_batch");
        handed_over += r.datagrams;
        forwarded += r.forwarded;
        if r.datagrams == 0 {
            relay.wait(Some(Duration::from_millis(50))).expect("wait");
        }
    }
    if coalesced {
        assert_eq!(
            relay.gro_coalesced() - gro0,
            1,
            "{}: the datagrams did not arrive as one super-datagram",
            kind.as_str()
        );
    }
    let stats = f.shard.stats();
    let outcome = Outcome {
        at_x: receive(&x, 0),
        at_y: receive(&y, 0),
        relayed: stats.relayed_datagrams,
        over_bucket: stats.drops.get(DropReason::RelayRateLimited),
        handed_over,
        forwarded,
    };
    (outcome, relay.gso_sends() - gso0)
}

/// The datagrams of `seq` that `pick` selects, as sent.
fn expected(seq: &[u32], pick: &[usize]) -> Vec<Vec<u8>> {
    let sc = Scrambler::new(MeshKeys::derive(MESH, None).scramble_key);
    pick.iter()
        .map(|&i| datagram(&sc, seq[i], i as u64))
        .collect()
}

#[test]
fn a_super_datagram_to_one_destination_leaves_as_one_gso_message() {
    for kind in kinds() {
        let seq = [TO_X; 40];
        let (got, gso) = run(kind, &seq, u32::MAX, true);
        let all: Vec<usize> = (0..seq.len()).collect();
        assert_eq!(got.at_x, expected(&seq, &all), "{}", kind.as_str());
        assert!(got.at_y.is_empty());
        assert_eq!((got.relayed, got.forwarded), (40, 40));
        assert_eq!(gso, 1, "{}: GSO messages sent on", kind.as_str());
    }
}

#[test]
fn a_mixed_super_datagram_gets_the_same_verdicts_as_one_by_one() {
    if kinds().is_empty() {
        skip("no mmsg or uring backend here");
    }
    // Two routes, an index nobody routes, and P's bucket on the X route
    // holding three datagrams: #7 and #8 are over it.
    let seq = [TO_X, TO_X, TO_Y, TO_Y, UNKNOWN, TO_Y, TO_X, TO_X, TO_X];
    let burst = 3 * SIZE as u32;
    let want = Outcome {
        at_x: expected(&seq, &[0, 1, 6]),
        at_y: expected(&seq, &[2, 3, 5]),
        relayed: 6,
        over_bucket: 2,
        handed_over: 9,
        forwarded: 6,
    };
    for kind in kinds() {
        let name = kind.as_str();
        let (one_by_one, _) = run(kind, &seq, burst, false);
        let (coalesced, gso) = run(kind, &seq, burst, true);
        assert_eq!(one_by_one, want, "{name}: one by one");
        assert_eq!(coalesced, want, "{name}: one super-datagram");
        // X ×2 and Y ×2 leave as GSO messages; #5 and #6 alone.
        assert_eq!(gso, 2, "{name}: GSO messages sent on");
    }
}
