//! NAT-PMP codec (one test per rejection reason, round trips, totality) and
//! the external-address query's RFC 6886 timers.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use moss_nat::natpmp::{
    DecodeError, ExternalAddressQuery, Opcode, QueryOutcome, Request, Response, ResultCode,
};
use proptest::prelude::*;

#[test]
fn requests_encode_per_rfc() {
    assert_eq!(Request::ExternalAddress.encode(), vec![0, 0]);
    let m = Request::Map {
        tcp: false,
        internal_port: 0x1234,
        suggested_external_port: 0x5678,
        lifetime: 7200,
    };
    assert_eq!(
        m.encode(),
        vec![0, 1, 0, 0, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x1c, 0x20]
    );
}

#[test]
fn decodes_external_address_and_failure() {
    let d = [0, 128, 0, 0, 0, 0, 6, 36, 203, 0, 113, 101];
    assert_eq!(
        Response::decode(&d),
        Ok(Response::ExternalAddress {
            epoch: 1572,
            address: Ipv4Addr::new(203, 0, 113, 101)
        })
    );
    // What miniupnpd answers when its WAN address is private/shared (captured in the lab).
    let d = [0, 128, 0, 3, 0, 0, 6, 36, 0, 0, 0, 0];
    assert_eq!(
        Response::decode(&d),
        Ok(Response::Failure {
            opcode: Opcode::ExternalAddress,
            result: ResultCode::NetworkFailure,
            epoch: 1572
        })
    );
}

#[test]
fn rejection_reasons() {
    assert_eq!(Response::decode(&[0; 7]), Err(DecodeError::TooShort(7)));
    assert_eq!(
        Response::decode(&[2, 128, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::BadVersion(2))
    );
    assert_eq!(
        Response::decode(&[0, 1, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::NotAResponse(1))
    );
    assert_eq!(
        Response::decode(&[0, 131, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::UnknownOpcode(131))
    );
    assert_eq!(
        Response::decode(&[0, 128, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::BadLength {
            opcode: 128,
            len: 8
        })
    );
    assert_eq!(
        Response::decode(&[0, 129, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::BadLength {
            opcode: 129,
            len: 12
        })
    );
}

#[test]
fn query_retransmits_doubling_then_times_out() {
    let t0 = Instant::now();
    let mut q = ExternalAddressQuery::new(3);
    let mut now = t0;
    let mut sends = Vec::new();
    while q.outcome().is_none() {
        if let Some(req) = q.poll_transmit(now) {
            assert_eq!(req, vec![0, 0]);
            sends.push((now - t0).as_millis());
        }
        now = q.poll_timeout().unwrap();
        q.handle_timeout(now);
    }
    assert_eq!(sends, vec![0, 250, 750]);
    assert_eq!(now - t0, Duration::from_millis(1750));
    assert_eq!(q.outcome(), Some(QueryOutcome::Timeout));
}

#[test]
fn query_takes_the_answer() {
    let t0 = Instant::now();
    let mut q = ExternalAddressQuery::new(9);
    q.poll_transmit(t0).unwrap();
    assert!(q.handle_datagram(b"junk").is_err());
    q.handle_datagram(&[0, 128, 0, 2, 0, 0, 0, 1]).unwrap();
    assert_eq!(
        q.outcome(),
        Some(QueryOutcome::Refused(ResultCode::NotAuthorized))
    );
    assert_eq!(q.poll_timeout(), None);
    assert_eq!(q.poll_transmit(t0), None);
}

fn arb_response() -> impl Strategy<Value = Response> {
    let op = prop_oneof![
        Just(Opcode::ExternalAddress),
        Just(Opcode::MapUdp),
        Just(Opcode::MapTcp)
    ];
    prop_oneof![
        (any::<u32>(), any::<[u8; 4]>()).prop_map(|(epoch, a)| Response::ExternalAddress {
            epoch,
            address: a.into()
        }),
        (
            any::<bool>(),
            any::<u32>(),
            any::<u16>(),
            any::<u16>(),
            any::<u32>()
        )
            .prop_map(|(tcp, epoch, internal_port, external_port, lifetime)| {
                Response::Map {
                    tcp,
                    epoch,
                    internal_port,
                    external_port,
                    lifetime,
                }
            }),
        (op, 1u16.., any::<u32>()).prop_map(|(opcode, r, epoch)| Response::Failure {
            opcode,
            result: ResultCode::from_value(r),
            epoch,
        }),
    ]
}

proptest! {
    #[test]
    fn responses_round_trip(r in arb_response()) {
        prop_assert_eq!(Response::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn decode_is_total(d in proptest::collection::vec(any::<u8>(), 0..32)) {
        let _ = Response::decode(&d);
    }
}

mod mapping {
    use super::*;
    use moss_nat::natpmp::NatPmp;
    use moss_nat::portmap::{MappingClient, MappingState};

    fn granted(port: u16, ext: u16, lifetime: u32) -> Vec<u8> {
        Response::Map {
            tcp: false,
            epoch: 1,
            internal_port: port,
            external_port: ext,
            lifetime,
        }
        .encode()
    }

    #[test]
    fn requests_renews_at_half_life_and_deletes_on_stop() {
        let t0 = Instant::now();
        let mut m = MappingClient::new(NatPmp, 4000, 120, 4);
        let req = m.poll_transmit(t0).unwrap();
        assert_eq!(
            req,
            Request::Map {
                tcp: false,
                internal_port: 4000,
                suggested_external_port: 4000,
                lifetime: 120
            }
            .encode()
        );
        m.handle_datagram(t0, &granted(4000, 4100, 120)).unwrap();
        assert_eq!(
            m.state(),
            MappingState::Mapped {
                external_port: 4100,
                lifetime: 120
            }
        );
        assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        let t1 = t0 + Duration::from_secs(60);
        m.handle_timeout(t1);
        let renew = m.poll_transmit(t1).unwrap();
        assert_eq!(
            renew,
            Request::Map {
                tcp: false,
                internal_port: 4000,
                suggested_external_port: 4100,
                lifetime: 120
            }
            .encode()
        );
        m.handle_datagram(t1, &granted(4000, 4100, 120)).unwrap();
        m.stop();
        let del = m.poll_transmit(t1).unwrap();
        assert_eq!(
            del,
            Request::Map {
                tcp: false,
                internal_port: 4000,
                suggested_external_port: 0,
                lifetime: 0
            }
            .encode()
        );
        m.handle_datagram(t1, &granted(4000, 0, 0)).unwrap();
        assert_eq!(m.state(), MappingState::Stopped);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn refusal_and_silence_fail() {
        let t0 = Instant::now();
        let mut m = MappingClient::new(NatPmp, 4000, 120, 2);
        m.poll_transmit(t0).unwrap();
        m.handle_datagram(
            t0,
            &Response::Failure {
                opcode: Opcode::MapUdp,
                result: ResultCode::NotAuthorized,
                epoch: 0,
            }
            .encode(),
        )
        .unwrap();
        assert_eq!(m.state(), MappingState::Failed(Some(2)));

        let mut m = MappingClient::new(NatPmp, 4000, 120, 2);
        let mut now = t0;
        let mut sends = 0;
        loop {
            if m.poll_transmit(now).is_some() {
                sends += 1;
            }
            let Some(t) = m.poll_timeout() else { break };
            now = t;
            m.handle_timeout(now);
        }
        assert_eq!(sends, 2);
        assert_eq!(m.state(), MappingState::Failed(None));
    }

    #[test]
    fn answers_for_other_ports_are_ignored() {
        let t0 = Instant::now();
        let mut m = MappingClient::new(NatPmp, 4000, 120, 2);
        m.poll_transmit(t0).unwrap();
        m.handle_datagram(t0, &granted(4001, 9999, 120)).unwrap();
        assert_eq!(m.state(), MappingState::Requesting);
        assert!(m.handle_datagram(t0, &[0, 129, 0]).is_err());
    }
}
