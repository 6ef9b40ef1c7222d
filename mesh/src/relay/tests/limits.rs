//! Each relay limit, enforced end to end on real nodes: a test here fails
//! if its limit is not applied (`relay_max_sessions` and the per-peer
//! buckets from `security.rate_limit_*` are in the parent module).

use super::*;
use crate::relay::frames::Request;

#[test]
fn relay_max_bandwidth_kbps_caps_what_the_supernode_forwards_in_all() {
    let mut c = cfg();
    c.security.max_message_size_bytes = 4096;
    // The ends' own buckets far above the flood: only the total binds.
    c.security.rate_limit_burst = 10_000_000;
    c.security.rate_limit_sustained = 10_000_000;
    // 64 kbit/s = 8000 B/s in all, one second of burst.
    c.nat.relay_max_bandwidth_kbps = 64;
    let mut net = relayed_star(3, c, &[(1, 2)], "t");
    let s0 = net.nodes[0].stats();
    let (bytes0, drops0) = (s0.relayed_bytes, s0.drops.get(DropReason::RelayRateLimited));
    let start = net.now;
    for i in 0..100u32 {
        let mut m = vec![0u8; 1000];
        m[..4].copy_from_slice(&i.to_le_bytes());
        net.nodes[1].publish(start, "t", &m).unwrap();
    }
    net.run(Duration::from_secs(3));
    let s = net.nodes[0].stats();
    let secs = (net.now - start).as_secs_f64();
    let forwarded = s.relayed_bytes - bytes0;
    let dropped = s.drops.get(DropReason::RelayRateLimited) - drops0;
    // Burst plus the rate over the run (keepalives and gossip included).
    let cap = 8000.0 * (1.0 + secs);
    assert!(
        (forwarded as f64) <= cap,
        "forwarded {forwarded} B in {secs:.1} s, cap {cap:.0} B"
    );
    assert!(dropped > 0, "over-limit datagrams dropped and counted");
    let got = net.messages(2, "t").len();
    assert!(got < 100, "the whole flood got through: {got}");
}

#[test]
fn an_initiator_renews_its_session_before_the_ttl_and_an_unrenewed_one_expires() {
    let mut c = cfg();
    c.nat.relay_session_ttl_sec = 4;
    let mut net = star(5, &[0], c);
    relay_pair(&mut net, 1, 2);
    let first = session_of(&net, 1, 2).expect("relayed");
    // Five TTLs later the pair is on the same session: renewed.
    net.run(Duration::from_secs(20));
    assert_eq!(session_of(&net, 1, 2), Some(first));
    assert_eq!(session_of(&net, 2, 1), Some(first));
    assert!(net.nodes[0].relay.server.contains(first));
    // Node 3 asks for a session with 4 by a crafted request its client
    // knows nothing of, so nobody renews it: the supernode ends it after
    // the TTL, and keeps the renewed one.
    let (s, target) = (net.id(0), net.id(4));
    let r = Request::sign(&net.nodes[3].identity, &s, target, None, 77);
    net.send_frame(3, 0, &Relay::Request(r));
    net.run(Duration::from_millis(500));
    assert_eq!(net.nodes[0].relay_info().served_sessions, 2);
    net.run(Duration::from_secs(5));
    assert_eq!(net.nodes[0].relay_info().served_sessions, 1);
    assert!(net.nodes[0].relay.server.contains(first));
    assert!(net.connected(1, 2) && net.connected(2, 1));
}
