//! LAN beacons between runners over real IPv4 multicast on the loopback
//! interface (group joined on 127.0.0.1, IP_MULTICAST_IF = 127.0.0.1, TTL 1),
//! and rejection of spoofed, foreign-mesh and malformed beacons.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
use moss_discovery::beacon::{self, Beacon};
use moss_discovery::{Discovery, LanConfig, Source};
use socket2::SockRef;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 77, 77);

fn lan(key: [u8; 32], port: u16) -> LanConfig {
    LanConfig {
        beacon_key: key,
        group: GROUP,
        port,
        interval: Duration::from_millis(200),
        interfaces: vec![Ipv4Addr::LOCALHOST],
    }
}

fn loopback_sender() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    SockRef::from(&s)
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .expect("multicast if");
    s.set_multicast_ttl_v4(1).expect("ttl");
    s
}

#[test]
fn two_runners_meet_over_loopback_multicast() {
    let key = [7u8; 32];
    let group_port = free_port();
    let (port_a, port_b) = (free_port(), free_port());
    let mut ca = test_config(random_infohash(), port_a);
    ca.lan = Some(lan(key, group_port));
    let mut cb = test_config(random_infohash(), port_b);
    cb.lan = Some(lan(key, group_port));
    let a = Discovery::start(ca).expect("a");
    let b = Discovery::start(cb).expect("b");
    let (got, _) = expect_candidate(&a.candidates(), SocketAddr::from(([127, 0, 0, 1], port_b)));
    assert_eq!(got.source, Source::Lan);
    expect_candidate(&b.candidates(), SocketAddr::from(([127, 0, 0, 1], port_a)));
    let s = a.stats().lan.expect("lan stats");
    assert!(s.beacons_sent >= 1 && s.beacons_accepted >= 1, "{s:?}");
    assert!(
        s.own_beacons >= 1,
        "own beacons loop back and are ignored: {s:?}"
    );
    assert_eq!(s.last_error, None);
}

#[test]
fn other_mesh_spoofed_and_malformed_beacons_are_rejected_and_counted() {
    let key = [9u8; 32];
    let group_port = free_port();
    let mut c = test_config(random_infohash(), free_port());
    c.lan = Some(lan(key, group_port));
    let d = Discovery::start(c).expect("start");
    let rx = d.candidates();
    wait_until("runner's own beacon looped back", || {
        d.stats().lan.is_some_and(|s| s.own_beacons >= 1)
    });
    let sender = loopback_sender();
    let to = (GROUP, group_port);
    let spoof_port = 50001;
    let good = Beacon {
        listen_port: spoof_port,
        instance_id: [1; 8],
    };
    // Another mesh's key.
    sender
        .send_to(&beacon::encode(&[8u8; 32], &good), to)
        .expect("send");
    // Our mesh tag, but the port was rewritten after signing (spoofed).
    let mut forged = beacon::encode(&key, &good);
    forged[7] ^= 0x55;
    sender.send_to(&forged, to).expect("send");
    // Malformed: truncated, wrong magic, future version.
    let wire = beacon::encode(&key, &good);
    sender.send_to(&wire[..20], to).expect("send");
    let mut magic = wire;
    magic[0] = b'X';
    sender.send_to(&magic, to).expect("send");
    let mut version = wire;
    version[4] = 9;
    sender.send_to(&version, to).expect("send");
    sender.send_to(b"", to).expect("send");

    wait_until("all bad beacons counted", || {
        d.stats().lan.is_some_and(|s| {
            s.rejected_foreign_mesh >= 1
                && s.rejected_bad_mac >= 1
                && s.rejected_malformed >= 3
                && s.rejected_version >= 1
        })
    });
    let s = d.stats().lan.expect("lan");
    assert_eq!(s.beacons_accepted, 0, "{s:?}");
    assert!(rx.try_iter().all(|c| c.addr.port() != spoof_port));

    // Then a valid beacon of our mesh from this sender is accepted.
    sender.send_to(&wire, to).expect("send");
    let (c, _) = expect_candidate(&rx, SocketAddr::from(([127, 0, 0, 1], spoof_port)));
    assert_eq!(c.source, Source::Lan);
}
