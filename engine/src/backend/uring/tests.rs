//! Unit tests of the `uring` backend (real io_uring on loopback; skipped
//! with a message where io_uring is unavailable).
use super::*;
use std::time::Instant;

fn bound(opts: UringOptions) -> Option<UringBackend> {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind loopback");
    super::super::linux::grow_buffers(s.as_raw_fd(), 4 << 20);
    match UringBackend::new(s, opts) {
        Ok(b) => Some(b),
        Err(e) => {
            super::super::skip(&format!("uring unavailable here: {e}"));
            None
        }
    }
}

fn exchange(tx: &mut UringBackend, rx: &mut UringBackend, count: usize, slots: usize) {
    exchange_sized(tx, rx, count, 1000, slots)
}

fn exchange_sized(
    tx: &mut UringBackend,
    rx: &mut UringBackend,
    count: usize,
    size: usize,
    slots: usize,
) {
    let to = rx.local_addr().expect("addr");
    let msgs: Vec<Vec<u8>> = (0..count).map(|i| vec![i as u8; size]).collect();
    let out: Vec<_> = msgs.iter().map(|m| OutDatagram { to, bytes: m }).collect();
    assert_eq!(tx.send_batch(&out).expect("send"), count);
    let mut batch = RecvBatch::new(slots);
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < count {
        assert!(
            Instant::now() < end,
            "only {} of {count} arrived",
            got.len()
        );
        if rx.recv_batch(&mut batch).expect("recv") == 0 {
            rx.wait(Some(Duration::from_millis(50))).expect("wait");
        }
        got.extend(batch.iter().map(|(_, b)| b.to_vec()));
    }
    assert_eq!(got, msgs);
}

#[test]
fn gso_gro_and_one_copy_per_datagram() {
    let (Some(mut tx), Some(mut rx)) = (
        bound(UringOptions::default()),
        bound(UringOptions::default()),
    ) else {
        return;
    };
    exchange(&mut tx, &mut rx, 40, 8);
    let (ts, rs) = (tx.stats(), rx.stats());
    if tx.gso_enabled() {
        assert!(ts.gso_sends >= 1, "{ts:?}");
    }
    if rx.gro_enabled() {
        assert!(rs.gro_coalesced >= 1, "{rs:?}");
    }
    assert_eq!(rs.copies, 40, "{rs:?}");
    assert_eq!(rs.copied_bytes, 40_000, "{rs:?}");
}

#[test]
fn buffers_recycle_and_multishot_rearms_past_ring_size() {
    let opts = UringOptions {
        gso: false,
        gro: false,
    };
    let (Some(mut tx), Some(mut rx)) = (bound(opts), bound(opts)) else {
        return;
    };
    // More datagrams than provided buffers, received in small batches:
    // the ring runs dry (ENOBUFS ends the multishot), buffers come back,
    // the receive is re-armed, and nothing is lost.
    let total = RING_ENTRIES_PLAIN as usize * 3;
    for _ in 0..(total / 256) {
        exchange(&mut tx, &mut rx, 256, 16);
    }
    assert_eq!(rx.stats().copies as usize, total / 256 * 256);
    assert!(rx.bufs_out <= RING_ENTRIES_PLAIN as usize);
}

#[test]
fn ring_runs_dry_then_rearms() {
    let opts = UringOptions {
        gso: false,
        gro: false,
    };
    let (Some(mut tx), Some(mut rx)) = (bound(opts), bound(opts)) else {
        return;
    };
    // Flood more than the ring holds before receiving anything.
    let to = rx.local_addr().expect("addr");
    let n = RING_ENTRIES_PLAIN as usize + 200;
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| (i as u32).to_be_bytes().to_vec()).collect();
    let out: Vec<_> = msgs.iter().map(|m| OutDatagram { to, bytes: m }).collect();
    let mut at = 0;
    while at < n {
        at += tx.send_batch(&out[at..]).expect("send");
    }
    let mut batch = RecvBatch::new(64);
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        assert!(Instant::now() < end, "only {} of {n} arrived", got.len());
        if rx.recv_batch(&mut batch).expect("recv") == 0 {
            rx.wait(Some(Duration::from_millis(50))).expect("wait");
        }
        got.extend(batch.iter().map(|(_, b)| b.to_vec()));
    }
    assert_eq!(got, msgs);
    assert!(rx.stats().recv_arms >= 2, "{:?}", rx.stats());
    assert!(rx.stats().enobufs >= 1, "{:?}", rx.stats());
}

/// With UDP checksums off (`SO_NO_CHECK`) the kernel refuses GSO sends
/// with EINVAL: resend one by one, lose nothing, turn GSO off.
#[test]
fn refused_gso_falls_back_without_loss() {
    let (Some(mut tx), Some(mut rx)) = (
        bound(UringOptions::default()),
        bound(UringOptions::default()),
    ) else {
        return;
    };
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
    exchange(&mut tx, &mut rx, 40, 64);
}

/// `recv_with` hands out writable views of exactly the datagrams sent,
/// in order, never more than `max` per call, and interleaves with
/// `recv_batch` without losing any.
#[test]
fn recv_with_is_in_place_and_interleaves_with_recv_batch() {
    let (Some(mut tx), Some(mut rx)) = (
        bound(UringOptions::default()),
        bound(UringOptions::default()),
    ) else {
        return;
    };
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
/// with EMSGSIZE: resent one by one (fragmented), nothing lost, smaller
/// segments still coalesced afterwards.
#[test]
fn segments_above_the_route_mtu_go_one_by_one_and_smaller_still_coalesce() {
    let ran = super::super::linux::with_loopback_mtu(1280, || {
        let (Some(mut tx), Some(mut rx)) = (
            bound(UringOptions::default()),
            bound(UringOptions::default()),
        ) else {
            return;
        };
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
