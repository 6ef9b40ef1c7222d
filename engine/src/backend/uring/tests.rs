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
