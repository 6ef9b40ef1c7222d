//! Property tests: every decoder is total on random bytes (never panics, caps
//! its output), and encoders round-trip. These complement the cargo-fuzz
//! targets in `discovery/fuzz/`, which run only where cargo-fuzz is installed.

use std::net::SocketAddr;

use moss_discovery::beacon::{self, Beacon, BeaconError};
use moss_discovery::bencode::{decode, Limits, Value};
use moss_discovery::compact::{parse_compact, PeerFamily};
use moss_discovery::http_tracker::{parse_body, parse_response};
use moss_discovery::udp_tracker::{decode_response, Response};
use proptest::prelude::*;

fn encode_bencode(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
        Value::Bytes(b) => {
            out.extend_from_slice(format!("{}:", b.len()).as_bytes());
            out.extend_from_slice(b);
        }
        Value::List(l) => {
            out.push(b'l');
            for x in l {
                encode_bencode(x, out);
            }
            out.push(b'e');
        }
        Value::Dict(d) => {
            out.push(b'd');
            for (k, x) in d {
                out.extend_from_slice(format!("{}:", k.len()).as_bytes());
                out.extend_from_slice(k);
                encode_bencode(x, out);
            }
            out.push(b'e');
        }
    }
}

fn bencode_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..8),
                inner,
                0..8
            )
            .prop_map(Value::Dict),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn udp_decoder_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..2048), cap in 0usize..300) {
        for family in [PeerFamily::V4, PeerFamily::V6] {
            if let Ok(Response::Announce { peers, .. }) = decode_response(&bytes, family, cap) {
                prop_assert!(peers.peers.len() <= cap);
                prop_assert_eq!(
                    (peers.peers.len() + peers.truncated) * family.entry_len() + peers.trailing_bytes,
                    bytes.len() - 20
                );
            }
        }
    }

    #[test]
    fn bencode_decoder_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = decode(&bytes, Limits::default());
    }

    #[test]
    fn bencode_decoder_is_total_on_bencode_like_input(
        parts in proptest::collection::vec(prop_oneof![
            Just(&b"d"[..]), Just(&b"l"[..]), Just(&b"e"[..]), Just(&b"i"[..]), Just(&b"-"[..]),
            Just(&b"0"[..]), Just(&b"3:"[..]), Just(&b"12"[..]), Just(&b":"[..]), Just(&b"5:peers"[..]),
        ], 0..64)
    ) {
        let _ = decode(&parts.concat(), Limits::default());
    }

    #[test]
    fn bencode_round_trips(v in bencode_value()) {
        let mut wire = Vec::new();
        encode_bencode(&v, &mut wire);
        prop_assert_eq!(decode(&wire, Limits::default()), Ok(v));
    }

    #[test]
    fn http_parsers_are_total(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse_response(&bytes, 200);
        if let Ok(a) = parse_body(&bytes, 200) {
            prop_assert!(a.peers.len() <= 200);
        }
        let mut framed = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        framed.extend_from_slice(&bytes);
        let _ = parse_response(&framed, 200);
    }

    #[test]
    fn compact_peers_round_trip(addrs in proptest::collection::vec((any::<[u8; 4]>(), any::<u16>()), 0..100)) {
        let raw: Vec<u8> = addrs.iter().flat_map(|(ip, port)| {
            let mut e = ip.to_vec();
            e.extend_from_slice(&port.to_be_bytes());
            e
        }).collect();
        let parsed = parse_compact(&raw, PeerFamily::V4, 1000);
        let expected: Vec<SocketAddr> = addrs.iter().map(|(ip, port)| SocketAddr::from((*ip, *port))).collect();
        prop_assert_eq!(parsed.peers, expected);
    }

    #[test]
    fn beacon_decoder_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..128), key in any::<[u8; 32]>()) {
        let _ = beacon::decode(&key, &bytes);
    }

    #[test]
    fn beacon_round_trips_and_detects_any_bit_flip(
        key in any::<[u8; 32]>(),
        port in 1u16..,
        id in any::<[u8; 8]>(),
        bit in 0usize..(40 * 8),
    ) {
        let b = Beacon { listen_port: port, instance_id: id };
        let wire = beacon::encode(&key, &b);
        prop_assert_eq!(beacon::decode(&key, &wire), Ok(b));
        let mut flipped = wire;
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(beacon::decode(&key, &flipped).is_err());
    }

    #[test]
    fn beacons_of_another_key_are_foreign(k1 in any::<[u8; 32]>(), k2 in any::<[u8; 32]>()) {
        prop_assume!(k1 != k2);
        let wire = beacon::encode(&k1, &Beacon { listen_port: 7, instance_id: [0; 8] });
        prop_assert_eq!(beacon::decode(&k2, &wire), Err(BeaconError::ForeignMesh));
    }
}
