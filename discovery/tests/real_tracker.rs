//! Two runners find each other through a real BitTorrent tracker
//! (`bittorrent-tracker` from npm) over BEP 15 UDP and BEP 3 HTTP, on loopback.

mod common;

use std::net::SocketAddr;

use common::*;
use moss_discovery::{Discovery, DiscoveryEvent, Source};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn two_runners_meet(url: String) {
    let infohash = random_infohash();
    let (port_a, port_b) = (free_port(), free_port());
    let mut ca = test_config(infohash, port_a);
    ca.trackers = vec![url.clone()];
    let mut cb = test_config(infohash, port_b);
    cb.trackers = vec![url.clone()];
    let mut a = Discovery::start(ca).expect("start a");
    let mut b = Discovery::start(cb).expect("start b");

    let (got_b, before) = expect_candidate(&a.candidates(), loopback(port_b));
    assert!(
        before.iter().all(|c| c.addr != loopback(port_a)),
        "own address delivered: {before:?}"
    );
    assert_eq!(got_b.source, Source::Tracker(url.clone()));
    let (got_a, _) = expect_candidate(&b.candidates(), loopback(port_a));
    assert_eq!(got_a.source, Source::Tracker(url.clone()));

    // Both announced successfully: events (id 5) and stats say so.
    let ev = a.events().try_iter().collect::<Vec<_>>();
    assert!(
        ev.iter().any(
            |e| matches!(e, DiscoveryEvent::TrackerAnnounce { tracker, .. } if *tracker == url)
                && e.event_id() == 5
        ),
        "events: {ev:?}"
    );
    // The worker hands out a candidate before it publishes its counters:
    // wait (bounded) for the snapshot that counts it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut stats = a.stats();
    while stats.candidates_emitted == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        stats = a.stats();
    }
    let t = &stats.trackers[0];
    assert!(
        t.supported && t.announces_ok >= 1 && t.last_ok_unix_ms.is_some(),
        "{t:?}"
    );
    assert!(t.peers_returned >= 1);
    assert!(stats.candidates_emitted >= 1);

    // A new listen port is announced from the next announce on.
    let port_b2 = free_port();
    b.set_listen_port(port_b2);
    expect_candidate(&a.candidates(), loopback(port_b2));

    let json = serde_json::to_value(a.stats()).expect("stats serialize");
    assert_eq!(json["trackers"][0]["url"], url);

    let ra = a.stop();
    let rb = b.stop();
    assert_eq!((ra.detached, rb.detached), (0, 0));
}

#[test]
fn udp_tracker_introduces_two_runners() {
    let tracker = RealTracker::start();
    two_runners_meet(tracker.udp_url());
}

#[test]
fn http_tracker_introduces_two_runners() {
    let tracker = RealTracker::start();
    two_runners_meet(tracker.http_url());
}

#[test]
fn udp_and_http_trackers_together() {
    // Runner A uses only UDP, runner B only HTTP: the tracker's swarm is shared.
    // The URLs name `localhost`, so the host name goes through the resolver
    // (/etc/hosts; it may list ::1 first, where nothing listens for HTTP).
    let tracker = RealTracker::start();
    let infohash = random_infohash();
    let (port_a, port_b) = (free_port(), free_port());
    let mut ca = test_config(infohash, port_a);
    ca.trackers = vec![tracker.udp_url().replace("127.0.0.1", "localhost")];
    let mut cb = test_config(infohash, port_b);
    cb.trackers = vec![tracker.http_url().replace("127.0.0.1", "localhost")];
    let a = Discovery::start(ca).expect("start a");
    let b = Discovery::start(cb).expect("start b");
    expect_candidate(&a.candidates(), loopback(port_b));
    expect_candidate(&b.candidates(), loopback(port_a));
}

#[test]
fn different_infohashes_do_not_meet() {
    let tracker = RealTracker::start();
    let (port_a, port_b, port_c) = (free_port(), free_port(), free_port());
    let shared = random_infohash();
    let mut ca = test_config(shared, port_a);
    ca.trackers = vec![tracker.udp_url()];
    let mut cb = test_config(random_infohash(), port_b);
    cb.trackers = vec![tracker.udp_url()];
    let mut cc = test_config(shared, port_c);
    cc.trackers = vec![tracker.udp_url()];
    let a = Discovery::start(ca).expect("a");
    let _b = Discovery::start(cb).expect("b");
    let _c = Discovery::start(cc).expect("c");
    // A meets C (same infohash); everything A saw before that is checked for B.
    let (_, before) = expect_candidate(&a.candidates(), loopback(port_c));
    assert!(before.iter().all(|c| c.addr.port() != port_b), "{before:?}");
    // And after a few more announce rounds, still never B.
    wait_until("three more announces", || {
        a.stats().trackers[0].announces_ok >= 4
    });
    assert!(a.candidates().try_iter().all(|c| c.addr.port() != port_b));
}

#[test]
fn http_tracker_over_ipv6_returns_peers6() {
    // The HTTP tracker on [::1] sees both runners as ::1 and returns them in
    // the compact `peers6` field (18 bytes per peer).
    let tracker = RealTracker::start_ipv6_http();
    let url = tracker.http_url();
    let infohash = random_infohash();
    let (port_a, port_b) = (free_port(), free_port());
    let mut ca = test_config(infohash, port_a);
    ca.trackers = vec![url.clone()];
    let mut cb = test_config(infohash, port_b);
    cb.trackers = vec![url.clone()];
    let a = Discovery::start(ca).expect("start a");
    let b = Discovery::start(cb).expect("start b");
    let v6 = |port| SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let (got, _) = expect_candidate(&a.candidates(), v6(port_b));
    assert_eq!(got.source, Source::Tracker(url));
    expect_candidate(&b.candidates(), v6(port_a));
}
