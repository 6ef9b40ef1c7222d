//! PCP codec: request layout, one test per rejection reason, options,
//! round trips and totality; the shared mapping client driven over PCP.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use moss_nat::pcp::{
    DecodeError, MapPayload, Opcode, Pcp, PcpOption, Request, Response, PROTO_UDP,
};
use moss_nat::portmap::{MapReply, MappingClient, MappingProtocol, MappingState};
use proptest::prelude::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 3, 2));

fn pcp() -> Pcp {
    Pcp {
        client_ip: CLIENT,
        nonce: [7; 12],
    }
}

fn map_response(result: u8, lifetime: u32, port: u16, ext: u16, nonce: [u8; 12]) -> Vec<u8> {
    Response {
        opcode: Opcode::Map,
        result,
        lifetime,
        epoch: 9,
        map: Some(MapPayload {
            nonce,
            protocol: PROTO_UDP,
            internal_port: port,
            external_port: ext,
            external_ip: "203.0.113.103".parse().unwrap(),
        }),
        options: vec![],
    }
    .encode()
}

#[test]
fn map_request_layout_follows_rfc_6887() {
    let r = pcp().encode_map(4000, 4000, 7200);
    assert_eq!(r.len(), 60);
    assert_eq!(&r[..4], &[2, 1, 0, 0]);
    assert_eq!(&r[4..8], &7200u32.to_be_bytes());
    assert_eq!(
        &r[8..24],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 3, 2]
    );
    assert_eq!(&r[24..36], &[7; 12]);
    assert_eq!(r[36], 17);
    assert_eq!(&r[40..44], &[0x0f, 0xa0, 0x0f, 0xa0]);
    assert_eq!(
        &r[44..60],
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]
    );
    let announce = Request {
        opcode: Opcode::Announce,
        lifetime: 0,
        client_ip: CLIENT,
        map: None,
    }
    .encode();
    assert_eq!(announce.len(), 24);
}

#[test]
fn rejection_reasons() {
    let ok = map_response(0, 10, 1, 2, [0; 12]);
    assert_eq!(Response::decode(&ok[..20]), Err(DecodeError::TooShort(20)));
    assert_eq!(
        Response::decode(&[2u8; 1104]),
        Err(DecodeError::TooLong(1104))
    );
    assert_eq!(Response::decode(&ok[..26]), Err(DecodeError::Unaligned(26)));
    let mut v = ok.clone();
    v[0] = 0;
    assert_eq!(Response::decode(&v), Err(DecodeError::BadVersion(0)));
    let mut v = ok.clone();
    v[1] = 1;
    assert_eq!(Response::decode(&v), Err(DecodeError::NotAResponse));
    let mut v = ok.clone();
    v[1] = 0x82;
    assert_eq!(Response::decode(&v), Err(DecodeError::UnknownOpcode(2)));
    assert_eq!(Response::decode(&ok[..40]), Err(DecodeError::MapTruncated));
    let mut v = ok.clone();
    v.extend_from_slice(&[0x80, 0, 0, 8, 1, 2, 3, 4]);
    assert_eq!(
        Response::decode(&v),
        Err(DecodeError::OptionTruncated(0x80))
    );
}

#[test]
fn options_are_framed_and_kept() {
    let r = Response {
        opcode: Opcode::Announce,
        result: 0,
        lifetime: 0,
        epoch: 5,
        map: None,
        options: vec![
            PcpOption {
                code: 0x81,
                data: vec![1, 2, 3],
            },
            PcpOption {
                code: 3,
                data: vec![],
            },
        ],
    };
    let bytes = r.encode();
    assert_eq!(bytes.len(), 24 + 8 + 4);
    assert_eq!(Response::decode(&bytes), Ok(r));
}

#[test]
fn replies_with_another_nonce_are_ignored() {
    let p = pcp();
    assert_eq!(
        p.decode_map(&map_response(0, 60, 4000, 4100, [1; 12])),
        Ok(None)
    );
    assert_eq!(
        p.decode_map(&map_response(0, 60, 4000, 4100, [7; 12])),
        Ok(Some(MapReply::Granted {
            internal_port: 4000,
            external_port: 4100,
            lifetime: 60,
            external_ip: Some("203.0.113.103".parse().unwrap()),
        }))
    );
    assert_eq!(
        p.decode_map(&map_response(2, 0, 4000, 0, [7; 12])),
        Ok(Some(MapReply::Refused(2)))
    );
}

#[test]
fn the_mapping_client_maps_renews_and_deletes_over_pcp() {
    let t0 = Instant::now();
    let mut m = MappingClient::new(pcp(), 4000, 60, 4);
    m.poll_transmit(t0).unwrap();
    m.handle_datagram(t0, &map_response(0, 60, 4000, 4100, [7; 12]))
        .unwrap();
    assert_eq!(
        m.state(),
        MappingState::Mapped {
            external_port: 4100,
            lifetime: 60
        }
    );
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    m.stop();
    let del = m.poll_transmit(t0).unwrap();
    assert_eq!(&del[4..8], &[0, 0, 0, 0], "lifetime 0 deletes");
    m.handle_datagram(t0, &map_response(0, 0, 4000, 0, [7; 12]))
        .unwrap();
    assert_eq!(m.state(), MappingState::Stopped);
}

fn arb_response() -> impl Strategy<Value = Response> {
    let map = (
        any::<[u8; 12]>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(nonce, protocol, i, e, ip)| MapPayload {
            nonce,
            protocol,
            internal_port: i,
            external_port: e,
            external_ip: IpAddr::from(ip),
        });
    let opts = proptest::collection::vec(
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(code, data)| PcpOption { code, data }),
        0..4,
    );
    (
        proptest::option::of(map),
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        opts,
    )
        .prop_map(|(map, result, lifetime, epoch, options)| Response {
            opcode: if map.is_some() {
                Opcode::Map
            } else {
                Opcode::Announce
            },
            result,
            lifetime,
            epoch,
            map,
            options,
        })
}

proptest! {
    #[test]
    fn responses_round_trip(r in arb_response()) {
        prop_assert_eq!(Response::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn decode_is_total(d in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = Response::decode(&d);
    }
}
