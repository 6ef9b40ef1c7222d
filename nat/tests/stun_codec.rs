//! STUN codec: RFC 5769 test vectors, one test per rejection reason, and
//! property tests (round trips, totality).

use std::net::SocketAddr;

use moss_nat::stun::{
    kind, Attribute, ChangeRequest, Class, DecodeError, Message, TransactionId, BINDING,
};
use proptest::prelude::*;

/// RFC 5769 §2.2: sample IPv4 response (SOFTWARE, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT).
const RFC5769_IPV4_RESPONSE: [u8; 80] = [
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
];

/// RFC 5769 §2.3: sample IPv6 response.
const RFC5769_IPV6_RESPONSE: [u8; 92] = [
    0x01, 0x01, 0x00, 0x48, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa,
    0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9, 0x00, 0x08, 0x00, 0x14,
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c, 0x82, 0x92, 0xc2, 0x75,
    0xbf, 0xe3, 0xed, 0x41, 0x80, 0x28, 0x00, 0x04, 0xc8, 0xfb, 0x0b, 0x4c,
];

#[test]
fn rfc5769_ipv4_response_decodes() {
    let m = Message::decode(&RFC5769_IPV4_RESPONSE).unwrap();
    assert_eq!(m.class, Class::Success);
    assert_eq!(m.method, BINDING);
    assert!(m.fingerprint);
    assert_eq!(m.mapped_address(), Some("192.0.2.1:32853".parse().unwrap()));
    assert!(m
        .attributes
        .contains(&Attribute::Software("test vector ".trim_end().to_owned())));
    // MESSAGE-INTEGRITY is comprehension-required and not interpreted: reported.
    assert_eq!(m.unknown_required(), vec![0x0008]);
}

#[test]
fn rfc5769_ipv6_response_decodes() {
    let m = Message::decode(&RFC5769_IPV6_RESPONSE).unwrap();
    assert_eq!(
        m.mapped_address(),
        Some(
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap()
        )
    );
    assert!(m.fingerprint);
}

#[test]
fn rfc5769_vectors_reencode_byte_for_byte() {
    for v in [&RFC5769_IPV4_RESPONSE[..], &RFC5769_IPV6_RESPONSE[..]] {
        let mut m = Message::decode(v).unwrap();
        // The vector pads SOFTWARE with a space; ours pads with zeros.
        let mut expect = v.to_vec();
        expect[35] = 0;
        let fp = crc32_fingerprint(&expect[..expect.len() - 8]);
        let n = expect.len();
        expect[n - 4..].copy_from_slice(&fp.to_be_bytes());
        m.fingerprint = true;
        assert_eq!(m.encode().unwrap(), expect);
    }
}

fn crc32_fingerprint(d: &[u8]) -> u32 {
    crc32fast::hash(d) ^ 0x5354_554e
}

/// A raw message: header for `typ`, then each (type, value) padded with zeros.
fn raw(typ: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in attrs {
        body.extend_from_slice(&k.to_be_bytes());
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
        body.resize((body.len() + 3) & !3, 0);
    }
    let mut out = typ.to_be_bytes().to_vec();
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    out.extend_from_slice(&[7; 12]);
    out.extend_from_slice(&body);
    out
}

fn err(d: &[u8]) -> DecodeError {
    Message::decode(d).unwrap_err()
}

#[test]
fn rejects_short_datagram() {
    assert_eq!(err(&[0; 19]), DecodeError::TooShort(19));
}

#[test]
fn rejects_non_stun_first_bits() {
    assert_eq!(err(&raw(0x8001, &[])), DecodeError::NotStun);
}

#[test]
fn rejects_bad_cookie() {
    let mut m = raw(0x0001, &[]);
    m[4] = 0;
    assert_eq!(err(&m), DecodeError::BadMagicCookie(0x0012_A442));
}

#[test]
fn rejects_unaligned_length() {
    let mut m = raw(0x0001, &[]);
    m[3] = 2;
    m.extend_from_slice(&[0, 0]);
    assert_eq!(err(&m), DecodeError::UnalignedLength(2));
}

#[test]
fn rejects_length_mismatch() {
    let mut m = raw(0x0001, &[]);
    m.extend_from_slice(&[0; 4]);
    assert_eq!(
        err(&m),
        DecodeError::LengthMismatch {
            header: 0,
            actual: 4
        }
    );
}

#[test]
fn rejects_truncated_attribute() {
    let mut m = raw(0x0101, &[(kind::SOFTWARE, b"abcd")]);
    m[22..24].copy_from_slice(&9u16.to_be_bytes());
    assert_eq!(
        err(&m),
        DecodeError::AttributeTruncated {
            kind: kind::SOFTWARE
        }
    );
}

#[test]
fn rejects_attribute_after_fingerprint() {
    // header (length covering everything), FINGERPRINT computed over that
    // header, then one more attribute.
    let mut m = raw(
        0x0101,
        &[(kind::FINGERPRINT, &[0; 4]), (kind::SOFTWARE, b"")],
    );
    let fp = crc32_fingerprint(&m[..20]);
    m[24..28].copy_from_slice(&fp.to_be_bytes());
    assert_eq!(
        err(&m),
        DecodeError::AttributeAfterFingerprint(kind::SOFTWARE)
    );
}

#[test]
fn rejects_bad_fingerprint_length() {
    assert_eq!(
        err(&raw(0x0101, &[(kind::FINGERPRINT, &[0; 8])])),
        DecodeError::BadFingerprintLength(8)
    );
}

#[test]
fn rejects_fingerprint_mismatch() {
    let mut m = Message::binding_request(TransactionId([1; 12]), vec![])
        .encode()
        .unwrap();
    let n = m.len();
    m[n - 1] ^= 1;
    assert_eq!(err(&m), DecodeError::FingerprintMismatch);
}

#[test]
fn rejects_bad_address_family() {
    let d = raw(
        0x0101,
        &[(kind::XOR_MAPPED_ADDRESS, &[0, 9, 0, 0, 1, 2, 3, 4])],
    );
    assert_eq!(
        err(&d),
        DecodeError::BadAddressFamily {
            kind: kind::XOR_MAPPED_ADDRESS,
            family: 9
        }
    );
}

#[test]
fn rejects_bad_address_length() {
    let d = raw(0x0101, &[(kind::MAPPED_ADDRESS, &[0, 1, 0, 0, 1, 2, 3])]);
    assert_eq!(
        err(&d),
        DecodeError::BadAddressLength {
            kind: kind::MAPPED_ADDRESS,
            len: 7
        }
    );
    let d = raw(0x0101, &[(kind::OTHER_ADDRESS, &[0, 1])]);
    assert_eq!(
        err(&d),
        DecodeError::BadAddressLength {
            kind: kind::OTHER_ADDRESS,
            len: 2
        }
    );
    let d = raw(
        0x0101,
        &[(kind::RESPONSE_ORIGIN, &[0, 2, 0, 0, 1, 2, 3, 4])],
    );
    assert_eq!(
        err(&d),
        DecodeError::BadAddressLength {
            kind: kind::RESPONSE_ORIGIN,
            len: 8
        }
    );
}

#[test]
fn rejects_bad_change_request() {
    assert_eq!(
        err(&raw(0x0001, &[(kind::CHANGE_REQUEST, &[0; 2])])),
        DecodeError::BadChangeRequestLength(2)
    );
    assert_eq!(
        err(&raw(0x0001, &[(kind::CHANGE_REQUEST, &[0, 0, 0, 1])])),
        DecodeError::BadChangeRequestFlags(1)
    );
}

#[test]
fn rejects_bad_error_code() {
    assert_eq!(
        err(&raw(0x0111, &[(kind::ERROR_CODE, &[0, 0, 4])])),
        DecodeError::BadErrorCodeLength(3)
    );
    assert_eq!(
        err(&raw(0x0111, &[(kind::ERROR_CODE, &[0, 0, 7, 0])])),
        DecodeError::BadErrorCode {
            class: 7,
            number: 0
        }
    );
    assert_eq!(
        err(&raw(0x0111, &[(kind::ERROR_CODE, &[0, 0, 4, 100])])),
        DecodeError::BadErrorCode {
            class: 4,
            number: 100
        }
    );
    let long = [&[0u8, 0, 4, 0][..], &[b'x'; 764][..]].concat();
    assert_eq!(
        err(&raw(0x0111, &[(kind::ERROR_CODE, &long)])),
        DecodeError::ReasonTooLong(764)
    );
    assert_eq!(
        err(&raw(0x0111, &[(kind::ERROR_CODE, &[0, 0, 4, 0, 0xff])])),
        DecodeError::NotUtf8(kind::ERROR_CODE)
    );
}

#[test]
fn rejects_bad_software() {
    assert_eq!(
        err(&raw(0x0101, &[(kind::SOFTWARE, &[b'x'; 764])])),
        DecodeError::SoftwareTooLong(764)
    );
    assert_eq!(
        err(&raw(0x0101, &[(kind::SOFTWARE, &[0xc3])])),
        DecodeError::NotUtf8(kind::SOFTWARE)
    );
}

#[test]
fn unknown_attributes_are_skipped_and_required_ones_reported() {
    let d = raw(
        0x0101,
        &[
            (0x7777, b"abc"),
            (0xC001, b"hello"),
            (kind::MAPPED_ADDRESS, &[0, 1, 0, 80, 10, 0, 0, 1]),
        ],
    );
    let m = Message::decode(&d).unwrap();
    assert_eq!(m.mapped_address(), Some("10.0.0.1:80".parse().unwrap()));
    assert_eq!(m.unknown_required(), vec![0x7777]);
    assert_eq!(m.attributes.len(), 3);
}

#[test]
fn xor_mapped_wins_over_mapped_and_first_duplicate_counts() {
    let a: SocketAddr = "1.2.3.4:5".parse().unwrap();
    let b: SocketAddr = "6.7.8.9:10".parse().unwrap();
    let m = Message {
        class: Class::Success,
        method: BINDING,
        transaction_id: TransactionId([3; 12]),
        attributes: vec![
            Attribute::MappedAddress(b),
            Attribute::XorMappedAddress(a),
            Attribute::XorMappedAddress(b),
        ],
        fingerprint: false,
    };
    assert_eq!(
        Message::decode(&m.encode().unwrap())
            .unwrap()
            .mapped_address(),
        Some(a)
    );
}

#[test]
fn change_request_and_error_code_round_trip() {
    let m = Message {
        class: Class::Error,
        method: BINDING,
        transaction_id: TransactionId([9; 12]),
        attributes: vec![
            Attribute::ChangeRequest(ChangeRequest {
                change_ip: true,
                change_port: false,
            }),
            Attribute::ErrorCode {
                code: 420,
                reason: "Unknown Attribute".into(),
            },
        ],
        fingerprint: true,
    };
    let d = Message::decode(&m.encode().unwrap()).unwrap();
    assert_eq!(d, m);
    assert_eq!(d.error_code(), Some((420, "Unknown Attribute")));
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
    ]
}

fn arb_attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        arb_addr().prop_map(Attribute::MappedAddress),
        arb_addr().prop_map(Attribute::XorMappedAddress),
        arb_addr().prop_map(Attribute::OtherAddress),
        arb_addr().prop_map(Attribute::ResponseOrigin),
        (any::<bool>(), any::<bool>()).prop_map(|(change_ip, change_port)| {
            Attribute::ChangeRequest(ChangeRequest {
                change_ip,
                change_port,
            })
        }),
        "\\PC{0,40}".prop_map(Attribute::Software),
        (300u16..700, "\\PC{0,40}")
            .prop_map(|(code, reason)| Attribute::ErrorCode { code, reason }),
        (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40))
            .prop_filter("unknown types only", |(k, _)| !Attribute::is_known(*k))
            .prop_map(|(kind, value)| Attribute::Unknown { kind, value }),
    ]
}

fn arb_class() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Request),
        Just(Class::Indication),
        Just(Class::Success),
        Just(Class::Error)
    ]
}

proptest! {
    #[test]
    fn messages_round_trip(
        class in arb_class(),
        method in 0u16..0x1000,
        tid in any::<[u8; 12]>(),
        attributes in proptest::collection::vec(arb_attribute(), 0..8),
        fingerprint in any::<bool>(),
    ) {
        let m = Message { class, method, transaction_id: TransactionId(tid), attributes, fingerprint };
        let bytes = m.encode().unwrap();
        prop_assert_eq!(Message::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn decode_is_total(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Message::decode(&data);
    }

    #[test]
    fn decode_survives_mutations(
        attributes in proptest::collection::vec(arb_attribute(), 0..6),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let m = Message { class: Class::Success, method: BINDING, transaction_id: TransactionId([5; 12]), attributes, fingerprint: true };
        let mut bytes = m.encode().unwrap();
        for (i, x) in flips {
            let n = bytes.len();
            bytes[i % n] ^= x;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = Message::decode(&bytes);
    }
}
