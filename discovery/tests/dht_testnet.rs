//! Two runners find each other through a local Mainline DHT (a `mainline`
//! testnet of real DHT nodes on 127.0.0.1), with no tracker.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use mainline::Testnet;
use moss_discovery::stats::DhtState;
use moss_discovery::{DhtConfig, Discovery, Source};

fn dht_config(testnet: &Testnet) -> DhtConfig {
    DhtConfig {
        bootstrap: testnet.bootstrap.clone(),
        port: 0,
        bind: Ipv4Addr::LOCALHOST,
        request_timeout: Duration::from_millis(500),
    }
}

#[test]
fn two_runners_meet_through_a_local_dht() {
    let testnet = Testnet::builder(5).build().expect("testnet on 127.0.0.1");
    let infohash = random_infohash();
    let (port_a, port_b) = (free_port(), free_port());
    let mut ca = test_config(infohash, port_a);
    ca.dht = Some(dht_config(&testnet));
    let mut cb = test_config(infohash, port_b);
    cb.dht = Some(dht_config(&testnet));
    let mut a = Discovery::start(ca).expect("start a");
    let mut b = Discovery::start(cb).expect("start b");

    // DHT garbage: junk datagrams at A's DHT socket must not stop it.
    wait_until("a's dht socket", || {
        a.stats().dht.as_ref().and_then(|d| d.local_port).is_some()
    });
    let dht_port = a.stats().dht.and_then(|d| d.local_port).expect("port");
    let junk = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for garbage in [
        &b"\xff\xfe\x00garbage"[..],
        b"d1:ad2:id20:",
        b"le",
        b"d1:y1:qe",
        &[0u8; 1400],
    ] {
        junk.send_to(garbage, ("127.0.0.1", dht_port))
            .expect("send junk");
    }

    let (got_b, _) = expect_candidate(&a.candidates(), SocketAddr::from(([127, 0, 0, 1], port_b)));
    assert_eq!(got_b.source, Source::Dht);
    let (got_a, _) = expect_candidate(&b.candidates(), SocketAddr::from(([127, 0, 0, 1], port_a)));
    assert_eq!(got_a.source, Source::Dht);

    let s = a.stats().dht.expect("dht stats");
    assert_eq!(s.state, DhtState::Running);
    assert!(s.lookups >= 1 && s.peers_found >= 1, "{s:?}");
    assert!(s.announces_ok >= 1, "{s:?}");
    let ra = a.stop();
    let rb = b.stop();
    assert_eq!(a.stats().dht.map(|d| d.state), Some(DhtState::Stopped));
    assert_eq!((ra.detached, rb.detached), (0, 0));
}

#[test]
fn dht_port_in_use_is_reported_not_fatal() {
    let taken = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let mut c = test_config(random_infohash(), free_port());
    c.dht = Some(DhtConfig {
        bootstrap: vec!["127.0.0.1:1".into()],
        port,
        bind: Ipv4Addr::LOCALHOST,
        request_timeout: Duration::from_millis(200),
    });
    let d = Discovery::start(c).expect("start");
    wait_until("dht failure reported", || {
        d.stats()
            .dht
            .is_some_and(|s| s.state == DhtState::Failed && s.last_error.is_some())
    });
}
