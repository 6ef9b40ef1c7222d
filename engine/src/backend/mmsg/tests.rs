//! Unit tests of the `mmsg` backend (real sockets on loopback).
use super::*;
use std::time::Instant;

fn bound(want: Offload) -> MmsgBackend {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    MmsgBackend::new(s, want).expect("mmsg backend")
}

/// Sends `count` equal datagrams and receives them through `batch`,
/// returning them and the number of non-empty calls.
fn exchange(
    tx: &mut MmsgBackend,
    rx: &mut MmsgBackend,
    count: usize,
    slots: usize,
) -> (Vec<Vec<u8>>, usize) {
    exchange_sized(tx, rx, count, 1000, slots)
}

fn exchange_sized(
    tx: &mut MmsgBackend,
    rx: &mut MmsgBackend,
    count: usize,
    size: usize,
    slots: usize,
) -> (Vec<Vec<u8>>, usize) {
    let to = rx.local_addr().expect("addr");
    let msgs: Vec<Vec<u8>> = (0..count).map(|i| vec![i as u8; size]).collect();
    let out: Vec<_> = msgs.iter().map(|m| OutDatagram { to, bytes: m }).collect();
    assert_eq!(tx.send_batch(&out).expect("send"), count);
    let mut batch = RecvBatch::new(slots);
    let mut got = Vec::new();
    let mut calls = 0;
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < count {
        assert!(
            Instant::now() < end,
            "only {} of {count} arrived",
            got.len()
        );
        let n = rx.recv_batch(&mut batch).expect("recv");
        if n == 0 {
            rx.wait(Some(Duration::from_millis(50))).expect("wait");
            continue;
        }
        calls += 1;
        got.extend(batch.iter().map(|(_, b)| b.to_vec()));
    }
    assert_eq!(got, msgs);
    (got, calls)
}

#[test]
fn gso_and_gro_are_used_and_split_across_calls() {
    let mut tx = bound(Offload::default());
    let mut rx = bound(Offload::default());
    if !tx.gso_enabled() || !rx.gro_enabled() {
        super::super::skip("kernel refused GSO/GRO here");
        return;
    }
    let (_, calls) = exchange(&mut tx, &mut rx, 40, 8);
    assert!(tx.stats().gso_sends >= 1, "{:?}", tx.stats());
    assert!(rx.stats().gro_coalesced >= 1, "{:?}", rx.stats());
    assert!(
        calls >= 5,
        "40 datagrams cannot fit fewer than 5 calls of 8"
    );
}

#[test]
fn without_offload_every_datagram_is_its_own_message() {
    let off = Offload {
        gso: false,
        gro: false,
    };
    let mut tx = bound(off);
    let mut rx = bound(off);
    exchange(&mut tx, &mut rx, 40, 64);
    assert_eq!(tx.stats().gso_sends, 0);
    assert_eq!(rx.stats().gro_coalesced, 0);
}
