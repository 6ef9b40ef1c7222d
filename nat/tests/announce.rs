//! Gateway announcements: what miniupnpd 2.3.1 multicasts (captured in the
//! natlab), one test per rejection reason, the source check, the rate
//! limit, totality, and the mapping client's `ask_now`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use moss_nat::announce::{AnnounceError, Announcement, Reactions, MIN_GAP};
use moss_nat::natpmp::{self, NatPmp};
use moss_nat::pcp;
use moss_nat::portmap::{MappingClient, MappingState};
use proptest::prelude::*;

const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 7, 1);

fn from_gw() -> SocketAddr {
    SocketAddr::from((GW, 5351))
}

/// miniupnpd's PCP ANNOUNCE at start (and after SIGUSR1), from 192.168.7.1:5351.
const MINIUPNPD_ANNOUNCE: [u8; 24] = [
    2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];
/// miniupnpd's NAT-PMP public-address notice after SIGUSR1 (epoch 11, 192.0.32.107).
const MINIUPNPD_NOTICE: [u8; 12] = [0, 0x80, 0, 0, 0, 0, 0, 0x0b, 192, 0, 32, 107];

#[test]
fn decodes_what_miniupnpd_sends() {
    assert_eq!(
        Announcement::accept(from_gw(), GW, &MINIUPNPD_ANNOUNCE),
        Ok(Announcement::Restarted { epoch: 0 })
    );
    let a = Announcement::accept(from_gw(), GW, &MINIUPNPD_NOTICE).unwrap();
    assert_eq!(
        a,
        Announcement::PublicAddress {
            epoch: 11,
            address: Ipv4Addr::new(192, 0, 32, 107)
        }
    );
    assert_eq!(a.address(), Some(Ipv4Addr::new(192, 0, 32, 107)));
    assert_eq!(a.encode(), MINIUPNPD_NOTICE);
    assert_eq!(
        Announcement::Restarted { epoch: 0 }.encode(),
        MINIUPNPD_ANNOUNCE
    );
}

#[test]
fn only_the_gateway_is_believed() {
    for from in ["192.168.7.2:5351", "192.168.8.1:5351", "10.0.0.1:5350"] {
        let from: SocketAddr = from.parse().unwrap();
        assert_eq!(
            Announcement::accept(from, GW, &MINIUPNPD_NOTICE),
            Err(AnnounceError::NotFromGateway(from.ip()))
        );
    }
    // The gateway from another port is still the gateway.
    assert!(Announcement::accept(SocketAddr::from((GW, 40000)), GW, &MINIUPNPD_ANNOUNCE).is_ok());
}

#[test]
fn rejection_reasons() {
    let gw = from_gw();
    assert_eq!(Announcement::accept(gw, GW, &[]), Err(AnnounceError::Empty));
    assert_eq!(
        Announcement::accept(gw, GW, &[1, 0x80, 0, 0]),
        Err(AnnounceError::UnknownVersion(1))
    );
    assert_eq!(
        Announcement::accept(gw, GW, &[0, 0x80, 0, 0]),
        Err(AnnounceError::NatPmp(natpmp::DecodeError::TooShort(4)))
    );
    assert_eq!(
        Announcement::accept(gw, GW, &MINIUPNPD_ANNOUNCE[..20]),
        Err(AnnounceError::Pcp(pcp::DecodeError::TooShort(20)))
    );
    // A request (our own, looped back), not a response.
    let mut req = MINIUPNPD_ANNOUNCE;
    req[1] = 0;
    assert_eq!(
        Announcement::accept(gw, GW, &req),
        Err(AnnounceError::Pcp(pcp::DecodeError::NotAResponse))
    );
    // An ANNOUNCE carrying an error result.
    let mut bad = MINIUPNPD_ANNOUNCE;
    bad[3] = pcp::NETWORK_FAILURE;
    assert_eq!(
        Announcement::accept(gw, GW, &bad),
        Err(AnnounceError::NotAnAnnouncement)
    );
    // NAT-PMP: a failure (no external address) and a mapping reply announce nothing.
    let fail = natpmp::Response::Failure {
        opcode: natpmp::Opcode::ExternalAddress,
        result: natpmp::ResultCode::NetworkFailure,
        epoch: 5,
    };
    let map = natpmp::Response::Map {
        tcp: false,
        epoch: 5,
        internal_port: 4000,
        external_port: 4000,
        lifetime: 60,
    };
    for r in [fail, map] {
        assert_eq!(
            Announcement::accept(gw, GW, &r.encode()),
            Err(AnnounceError::NotAnAnnouncement)
        );
    }
    // A PCP MAP response announces nothing either.
    let pcp_map = pcp::Response {
        opcode: pcp::Opcode::Map,
        result: 0,
        lifetime: 60,
        epoch: 1,
        map: Some(pcp::MapPayload {
            nonce: [1; 12],
            protocol: pcp::PROTO_UDP,
            internal_port: 4000,
            external_port: 4000,
            external_ip: "192.0.32.107".parse().unwrap(),
        }),
        options: Vec::new(),
    };
    assert_eq!(
        Announcement::accept(gw, GW, &pcp_map.encode()),
        Err(AnnounceError::NotAnAnnouncement)
    );
}

#[test]
fn reactions_are_spaced_by_the_gap() {
    let t0 = Instant::now();
    let mut r = Reactions::new(MIN_GAP);
    assert_eq!(r.next_allowed(), None);
    assert!(r.try_react(t0), "the first reaction is at once");
    assert!(!r.try_react(t0 + Duration::from_millis(10)));
    assert!(!r.try_react(t0 + MIN_GAP - Duration::from_millis(1)));
    assert_eq!(r.next_allowed(), Some(t0 + MIN_GAP));
    assert!(r.try_react(t0 + MIN_GAP));
    assert!(!r.try_react(t0 + MIN_GAP + Duration::from_secs(1)));
}

fn natpmp_map(port: u16, lifetime: u32) -> Vec<u8> {
    natpmp::Response::Map {
        tcp: false,
        epoch: 1,
        internal_port: port,
        external_port: port,
        lifetime,
    }
    .encode()
}

#[test]
fn ask_now_renews_a_mapping_and_resends_a_request_at_once() {
    let t0 = Instant::now();
    let mut m = MappingClient::new(NatPmp, 4000, 3600, 3);
    assert!(m.poll_transmit(t0).is_some());
    // Unanswered: the retransmission is 250 ms away; ask_now sends now.
    assert!(m.poll_transmit(t0).is_none());
    m.ask_now();
    assert!(m.poll_transmit(t0).is_some());
    m.handle_datagram(t0, &natpmp_map(4000, 3600)).unwrap();
    assert!(matches!(m.state(), MappingState::Mapped { .. }));
    // Mapped: the renewal is 30 min away; ask_now renews now.
    assert!(m.poll_transmit(t0).is_none());
    m.ask_now();
    let renew = m.poll_transmit(t0).unwrap();
    assert_eq!(&renew[8..12], &3600u32.to_be_bytes());
    m.handle_datagram(t0, &natpmp_map(4000, 3600)).unwrap();
    assert_eq!(
        m.poll_timeout(),
        Some(t0 + Duration::from_secs(1800)),
        "the renewal timer starts again"
    );
    // Stopped: nothing to ask.
    m.stop();
    m.poll_transmit(t0).unwrap();
    m.handle_datagram(t0, &natpmp_map(4000, 0)).unwrap();
    assert_eq!(m.state(), MappingState::Stopped);
    m.ask_now();
    assert!(m.poll_transmit(t0).is_none());
}

fn arb_announcement() -> impl Strategy<Value = Announcement> {
    prop_oneof![
        (any::<u32>(), any::<[u8; 4]>()).prop_map(|(epoch, a)| Announcement::PublicAddress {
            epoch,
            address: Ipv4Addr::from(a)
        }),
        any::<u32>().prop_map(|epoch| Announcement::Restarted { epoch }),
    ]
}

proptest! {
    #[test]
    fn announcements_round_trip(a in arb_announcement()) {
        prop_assert_eq!(Announcement::accept(from_gw(), GW, &a.encode()), Ok(a));
    }

    #[test]
    fn decode_is_total(d in proptest::collection::vec(any::<u8>(), 0..80), v in 0u8..3) {
        let mut d = d;
        if let Some(b) = d.first_mut() {
            *b = v;
        }
        if let Ok(a) = Announcement::decode(&d) {
            prop_assert_eq!(Announcement::decode(&a.encode()), Ok(a));
        }
    }
}
