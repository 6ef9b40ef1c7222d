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

/// With UDP checksums off (`SO_NO_CHECK`) the kernel refuses GSO sends
/// with EINVAL: the backend must resend one by one, lose nothing and
/// turn GSO off.
#[test]
fn refused_gso_falls_back_without_loss() {
    let mut tx = bound(Offload::default());
    let mut rx = bound(Offload::default());
    if !tx.gso_enabled() {
        super::super::skip("kernel refused GSO here");
        return;
    }
    super::super::linux::setsockopt_int(
        tx.socket.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_NO_CHECK,
        1,
    )
    .expect("SO_NO_CHECK");
    exchange(&mut tx, &mut rx, 40, 64);
    assert!(!tx.gso_enabled(), "GSO still on after a refusal");
    assert_eq!(tx.stats().gso_sends, 0);
    assert_eq!(tx.stats().send_dropped, 0);
    // And it keeps working afterwards.
    exchange(&mut tx, &mut rx, 40, 64);
}

/// `recv_with` hands out writable views of exactly the datagrams sent,
/// in order, never more than `max` per call, and interleaves with
/// `recv_batch` without losing any.
#[test]
fn recv_with_is_in_place_and_interleaves_with_recv_batch() {
    let mut tx = bound(Offload::default());
    let mut rx = bound(Offload::default());
    let to = rx.local_addr().expect("addr");
    let from = tx.local_addr().expect("addr");
    let msgs: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; 700]).collect();
    let out: Vec<_> = msgs.iter().map(|m| OutDatagram { to, bytes: m }).collect();
    assert_eq!(tx.send_batch(&out).expect("send"), out.len());
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut batch = RecvBatch::new(7);
    let end = Instant::now() + Duration::from_secs(10);
    let mut turn = 0;
    while got.len() < msgs.len() {
        assert!(Instant::now() < end, "only {} arrived", got.len());
        turn += 1;
        let n = if turn % 2 == 0 {
            let mut seen = Vec::new();
            let mut five = RecvBatch::new(5);
            let n = rx
                .recv_with(&mut five, &mut |a, data| {
                    assert_eq!(a, from);
                    // In-place processing: flip the bytes, flip back.
                    data.iter_mut().for_each(|b| *b = !*b);
                    seen.push(data.iter().map(|b| !*b).collect::<Vec<u8>>());
                })
                .expect("recv_with");
            assert!(n <= 5 && n == seen.len());
            got.extend(seen);
            n
        } else {
            let n = rx.recv_batch(&mut batch).expect("recv_batch");
            got.extend(batch.iter().map(|(_, b)| b.to_vec()));
            n
        };
        if n == 0 {
            rx.wait(Some(Duration::from_millis(50))).expect("wait");
        }
    }
    assert_eq!(got, msgs);
}

/// A route MTU below the segment size makes the kernel answer a GSO run
/// with EMSGSIZE: the datagrams go out one by one (fragmented), nothing
/// is lost, and smaller segments are still coalesced afterwards.
#[test]
fn segments_above_the_route_mtu_go_one_by_one_and_smaller_still_coalesce() {
    let ran = super::super::linux::with_loopback_mtu(1280, || {
        let mut tx = bound(Offload::default());
        let mut rx = bound(Offload::default());
        if !tx.gso_enabled() {
            super::super::skip("kernel refused GSO here");
            return;
        }
        exchange_sized(&mut tx, &mut rx, 20, 1400, 64);
        assert!(tx.gso_enabled(), "GSO switched off by an MTU refusal");
        assert!(
            (1000..1400).contains(&tx.gso_max_segment()),
            "limit {}",
            tx.gso_max_segment()
        );
        assert_eq!(tx.stats().send_dropped, 0);
        let before = tx.stats().gso_sends;
        exchange_sized(&mut tx, &mut rx, 20, 1000, 64);
        assert!(tx.stats().gso_sends > before, "{:?}", tx.stats());
    });
    if ran.is_none() {
        super::super::skip("network namespaces unavailable; MTU refusal not exercised");
    }
}
