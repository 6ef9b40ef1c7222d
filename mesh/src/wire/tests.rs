//! Round trips and rejections of every wire structure.

use super::*;
use proptest::prelude::*;

fn enc(f: &Frame) -> Vec<u8> {
    let mut v = Vec::new();
    f.encode(&mut v);
    assert_eq!(v.len(), f.encoded_len());
    v
}

#[test]
fn frames_round_trip() {
    let p = Publish {
        hops: 2,
        origin: [7; 32],
        seq: 9,
        topic: "chat",
        payload: b"hi",
    };
    let frames = [
        Frame::Subscribe("a"),
        Frame::Unsubscribe("b/c"),
        Frame::Publish(p),
        Frame::Fragment {
            transfer: 5,
            index: 1,
            count: 3,
            data: b"xyz",
        },
        Frame::Close(2),
    ];
    let mut buf = Vec::new();
    for f in &frames {
        buf.extend(enc(f));
    }
    let back: Vec<_> = FrameReader::new(&buf).collect::<Result<_, _>>().unwrap();
    assert_eq!(back, frames);
}

#[test]
fn heads_round_trip_and_reject() {
    for h in [
        Head::Data {
            receiver: 77,
            counter: u64::MAX - 1,
        },
        Head::Handshake {
            kind: Kind::Final,
            pad_len: 300,
            nonce: [3; 12],
        },
    ] {
        assert_eq!(Head::decode(&h.encode()), Ok(h));
    }
    let mut bad = Head::Data {
        receiver: 1,
        counter: 1,
    }
    .encode();
    bad[1] = 9;
    assert_eq!(Head::decode(&bad), Err(WireError::BadVersion(9)));
    bad[0] = 0;
    assert_eq!(Head::decode(&bad), Err(WireError::UnknownKind(0)));
}

#[test]
fn malformed_frames_error() {
    assert_eq!(
        FrameReader::new(&[0x10, 5]).next(),
        Some(Err(WireError::Truncated))
    );
    assert_eq!(
        FrameReader::new(&[0x10, 5, 0, b'a']).next(),
        Some(Err(WireError::BadLength))
    );
    assert_eq!(
        FrameReader::new(&[0x10, 0, 0]).next(),
        Some(Err(WireError::BadTopic))
    );
    assert_eq!(
        FrameReader::new(&[0x99, 0, 0]).next(),
        Some(Err(WireError::UnknownFrame(0x99)))
    );
    let frag = [0x21, 8, 0, 0, 0, 0, 0, 3, 0, 3, 0];
    assert_eq!(
        FrameReader::new(&frag).next(),
        Some(Err(WireError::BadFragment))
    );
    assert!(HandshakeBody::decode(&[0; 5], 0).is_err());
    assert!(HandshakeBody::decode(&[0; 12], 20).is_err());
}

proptest! {
    #[test]
    fn decoders_are_total(bytes in proptest::collection::vec(any::<u8>(), 0..600), pad in any::<u16>()) {
        for f in FrameReader::new(&bytes) { let _ = f; }
        let _ = HandshakeBody::decode(&bytes, pad);
        let _ = Publish::decode_body(&bytes);
        if bytes.len() >= HEAD_LEN {
            let mut h = [0u8; HEAD_LEN];
            h.copy_from_slice(&bytes[..HEAD_LEN]);
            let _ = Head::decode(&h);
        }
    }

    #[test]
    fn publish_round_trips(topic in "[a-z]{1,40}", payload in proptest::collection::vec(any::<u8>(), 0..1000), seq in any::<u64>(), hops in any::<u8>()) {
        let p = Publish { hops, origin: [1; 32], seq, topic: &topic, payload: &payload };
        let mut v = Vec::new();
        p.encode_body(&mut v);
        prop_assert_eq!(Publish::decode_body(&v), Ok(p));
    }
}
