//! Relay table: caps, TTL and renewal, per-peer buckets, overall bandwidth,
//! drop-and-count, stale indices, and the memory bound per session.

use std::time::Duration;

use moss_nat::relay::{Dropped, Refusal, RelayConfig, RelayTable, SessionIndex};

fn key(n: u16) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..2].copy_from_slice(&n.to_be_bytes());
    k
}

/// A table with a generous overall bandwidth so per-peer limits show.
fn wide() -> RelayTable {
    RelayTable::new(RelayConfig {
        max_bandwidth_kbps: 1_000_000,
        ..RelayConfig::default()
    })
}

#[test]
fn forwards_between_the_two_ends_only() {
    let t0 = Duration::ZERO;
    let mut t = wide();
    let s = t.open(t0, key(1), key(2)).unwrap();
    assert_eq!(t.forward(t0, s, &key(1), 100), Ok(key(2)));
    assert_eq!(t.forward(t0, s, &key(2), 100), Ok(key(1)));
    assert_eq!(t.forward(t0, s, &key(3), 100), Err(Dropped::NotMember));
    let st = t.stats();
    assert_eq!(
        (st.forwarded, st.forwarded_bytes, st.dropped_not_member),
        (2, 200, 1)
    );
}

#[test]
fn refuses_beyond_the_cap_with_a_reason() {
    let t0 = Duration::ZERO;
    let mut t = RelayTable::new(RelayConfig::default());
    for i in 0..50 {
        t.open(t0, key(i), key(1000 + i)).unwrap();
    }
    assert_eq!(t.len(), 50);
    assert_eq!(t.open(t0, key(77), key(78)), Err(Refusal::Full));
    assert_eq!(t.open(t0, key(0), key(1000)), Err(Refusal::Duplicate));
    assert_eq!(t.open(t0, key(1000), key(0)), Err(Refusal::Duplicate));
    assert_eq!(t.open(t0, key(5), key(5)), Err(Refusal::SamePeer));
}

#[test]
fn sessions_expire_unless_renewed() {
    let t0 = Duration::ZERO;
    let mut t = wide();
    let a = t.open(t0, key(1), key(2)).unwrap();
    let b = t.open(t0, key(3), key(4)).unwrap();
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_secs(1800)));
    let t1 = t0 + Duration::from_secs(1000);
    t.renew(t1, a).unwrap();
    let t2 = t0 + Duration::from_secs(1800);
    assert_eq!(t.forward(t2, b, &key(3), 10), Err(Dropped::NoSession));
    assert_eq!(t.forward(t2, a, &key(1), 10), Ok(key(2)));
    t.expire(t2);
    assert_eq!((t.len(), t.stats().expired), (1, 1));
    assert_eq!(t.renew(t2, b), Err(Dropped::NoSession));
    assert_eq!(t.poll_timeout(), Some(t1 + Duration::from_secs(1800)));
}

#[test]
fn a_stale_index_never_reaches_a_new_session() {
    let t0 = Duration::ZERO;
    let mut t = wide();
    let old = t.open(t0, key(1), key(2)).unwrap();
    t.close(old);
    let new = t.open(t0, key(1), key(3)).unwrap();
    assert_ne!(old, new);
    assert_eq!(t.forward(t0, old, &key(1), 10), Err(Dropped::NoSession));
    assert_eq!(SessionIndex::from_u64(new.to_u64()), new);
    assert_eq!(t.forward(t0, new, &key(1), 10), Ok(key(3)));
}

#[test]
fn a_flood_is_dropped_by_the_peer_bucket_while_others_keep_their_rate() {
    let t0 = Duration::ZERO;
    let mut t = wide();
    let flood = t.open(t0, key(1), key(2)).unwrap();
    let calm = t.open(t0, key(3), key(4)).unwrap();
    let mut sent = 0u32;
    while t.forward(t0, flood, &key(1), 1200).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, 256 * 1024 / 1200, "burst of 256 KB");
    assert_eq!(t.forward(t0, flood, &key(1), 1200), Err(Dropped::PeerRate));
    assert_eq!(
        t.forward(t0, calm, &key(3), 1200),
        Ok(key(4)),
        "other pairs unaffected"
    );
    assert_eq!(
        t.forward(t0, flood, &key(2), 1200),
        Ok(key(1)),
        "the other end has its own bucket"
    );
    // 64 KB/s sustained: after one second, 64 KB more.
    let t1 = t0 + Duration::from_secs(1);
    let mut more = 0;
    while t.forward(t1, flood, &key(1), 1024).is_ok() {
        more += 1;
    }
    // (the 256 KB burst left 544 B, less than one 1024 B datagram)
    assert_eq!(more, 64);
    assert!(t.stats().dropped_peer_rate >= 2);
}

#[test]
fn the_overall_bandwidth_caps_all_sessions() {
    let t0 = Duration::ZERO;
    let mut t = RelayTable::new(RelayConfig::default());
    // 256 kbit/s = 32,000 B/s, one second of burst.
    let mut total = 0usize;
    for i in 0..10 {
        let s = t.open(t0, key(i), key(100 + i)).unwrap();
        while t.forward(t0, s, &key(i), 1000).is_ok() {
            total += 1000;
        }
    }
    assert_eq!(total, 32_000);
    assert!(t.stats().dropped_bandwidth >= 1);
}
