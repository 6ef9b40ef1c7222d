//! Checks the test vectors written in `docs/PROTOCOL.md` against the code.
//! Run with `MOSS_PRINT_VECTORS=1` to print the current values.

use blake2::{Blake2s256, Digest};
use moss_crypto::msgid::message_id;
use moss_crypto::transport::TAG_LEN;
use moss_crypto::{Handshake, Identity, LocalStatic, MeshKeys, Role, Scrambler, TransportCipher};
use moss_mesh::hint::{Hint, HintReason};
use moss_mesh::wire::{
    signing_bytes, Frame, HandshakeBody, Head, IdList, Kind, Publish, SignedPublish, FRAGMENT_CHUNK,
};
use std::collections::BTreeMap;

/// The origin of the signed vectors: Ed25519 seed `01`×32.
fn signer() -> Identity {
    Identity::from_seed([1; 32])
}

/// Message 1 of a handshake of mesh `global`: initiator identity seed
/// `01`×32, ephemeral seed `03`×32, sender index `0x01020304`, nonce
/// `07`×12, 4 padding bytes `ee`. Returns (noise message, datagram).
fn handshake_init() -> (Vec<u8>, Vec<u8>) {
    let keys = MeshKeys::derive("global", None);
    let mut hs = Handshake::new(Role::Initiator, &signer(), &keys.prologue, [3; 32]).unwrap();
    let mut noise = [0u8; 1024];
    let n = hs.write(&[], &mut noise).unwrap();
    let mut body = Vec::new();
    HandshakeBody {
        sender: 0x0102_0304,
        receiver: 0,
        noise: &noise[..n],
    }
    .encode(&mut body);
    let d = handshake_kind_datagram(&keys, Kind::Init, [7; 12], &body, &[0xee; 4]);
    (noise[..n].to_vec(), d)
}

/// Masks a handshake-kind datagram: head (`kind`, `padding.len()`,
/// `nonce`) ‖ `body` ‖ `padding`, body and padding scrambled, head masked.
fn handshake_kind_datagram(
    keys: &MeshKeys,
    kind: Kind,
    nonce: [u8; 12],
    body: &[u8],
    padding: &[u8],
) -> Vec<u8> {
    let mut d = Head::Handshake {
        kind,
        pad_len: padding.len() as u16,
        nonce,
    }
    .encode()
    .to_vec();
    d.extend_from_slice(body);
    d.extend_from_slice(padding);
    let scr = Scrambler::new(keys.scramble_key);
    scr.toggle_body(&nonce, &mut d[16..]);
    scr.toggle_head(&mut d);
    d
}

/// An IK handshake of mesh `global`: initiator `signer()` (ephemeral seed
/// `03`×32), responder identity seed `02`×32 (ephemeral seed `04`×32),
/// both with empty `extra`. Returns (message 1, message 2, handshake hash,
/// message 1 as a datagram: sender index `0x01020304`, nonce `07`×12, 4
/// padding bytes `ee`).
fn ik_handshake() -> (Vec<u8>, Vec<u8>, [u8; 32], Vec<u8>) {
    let keys = MeshKeys::derive("global", None);
    let responder = Identity::from_seed([2; 32]);
    let li = LocalStatic::new(&signer(), &keys.prologue);
    let lr = LocalStatic::new(&responder, &keys.prologue);
    let rs = moss_crypto::noise::static_keypair(&responder).1;
    let mut i = Handshake::ik_initiator(&li, &rs, [3; 32]).unwrap();
    let mut r = Handshake::ik_responder(&lr, [4; 32]).unwrap();
    let mut m1 = [0u8; 1024];
    let n1 = i.write(&[], &mut m1).unwrap();
    r.read(&m1[..n1]).unwrap();
    let mut m2 = [0u8; 1024];
    let n2 = r.write(&[], &mut m2).unwrap();
    i.read(&m2[..n2]).unwrap();
    let (oi, or) = (i.finish().unwrap(), r.finish().unwrap());
    assert_eq!(oi.handshake_hash, or.handshake_hash);
    assert_eq!(
        (oi.remote, or.remote),
        (responder.public_key(), signer().public_key())
    );
    let mut body = Vec::new();
    HandshakeBody {
        sender: 0x0102_0304,
        receiver: 0,
        noise: &m1[..n1],
    }
    .encode(&mut body);
    let d = handshake_kind_datagram(&keys, Kind::IkInit, [7; 12], &body, &[0xee; 4]);
    (m1[..n1].to_vec(), m2[..n2].to_vec(), oi.handshake_hash, d)
}

/// The SIGNED_PUBLISH body of `signer()` for (hops 0, `seq`, `topic`, `payload`).
fn signed_body(seq: u64, topic: &str, payload: &[u8]) -> ([u8; 32], Vec<u8>) {
    let o = signer();
    let pk = o.public_key().0;
    let id = message_id(&pk, seq, topic, payload);
    let mut body = Vec::new();
    SignedPublish {
        signature: o.sign(&signing_bytes(&id)),
        publish: Publish {
            hops: 0,
            origin: pk,
            seq,
            topic,
            payload,
        },
    }
    .encode_body(&mut body);
    (id, body)
}

/// The payload of the fragmented vector: 1200 bytes `i mod 256`.
fn big_payload() -> Vec<u8> {
    (0..1200u32).map(|i| i as u8).collect()
}

/// SIGNED_FRAGMENT frames (transfer 7) of `id ‖ body` of the 1200-byte
/// message on topic "big", seq 2.
fn signed_fragments() -> Vec<Vec<u8>> {
    let (id, body) = signed_body(2, "big", &big_payload());
    let mut whole = id.to_vec();
    whole.extend_from_slice(&body);
    let count = whole.len().div_ceil(FRAGMENT_CHUNK) as u16;
    whole
        .chunks(FRAGMENT_CHUNK)
        .enumerate()
        .map(|(i, data)| {
            let mut f = Vec::new();
            Frame::SignedFragment {
                transfer: 7,
                index: i as u16,
                count,
                data,
            }
            .encode(&mut f);
            f
        })
        .collect()
}

fn computed() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    for (name, mesh, psk) in [
        ("global", "global", None),
        ("local+psk", "local", Some([0x11u8; 32])),
    ] {
        let k = MeshKeys::derive(mesh, psk.as_ref());
        v.insert(format!("infohash({name})"), hex::encode(k.infohash));
        v.insert(format!("scramble_key({name})"), hex::encode(k.scramble_key));
        v.insert(format!("beacon_key({name})"), hex::encode(k.beacon_key));
        v.insert(format!("prologue({name})"), hex::encode(k.prologue));
    }
    let origin = [0xAA; 32];
    v.insert(
        "message_id".into(),
        hex::encode(message_id(&origin, 1, "chat", b"hi")),
    );
    let publish = Frame::Publish(Publish {
        hops: 0,
        origin,
        seq: 1,
        topic: "chat",
        payload: b"hi",
    });
    let mut frames = Vec::new();
    Frame::Subscribe("chat").encode(&mut frames);
    publish.encode(&mut frames);
    v.insert("frames".into(), hex::encode(&frames));
    let head = Head::Data {
        receiver: 0x0102_0304,
        counter: 0,
    }
    .encode();
    v.insert("data_head".into(), hex::encode(head));
    // Seal with send key 01..01 and mask with scramble key 42..42.
    let mut cipher = TransportCipher::new(&[1; 32], &[2; 32]);
    let mut datagram = head.to_vec();
    datagram.extend_from_slice(&frames);
    let mut tag = [0u8; TAG_LEN];
    let counter = cipher.seal(&head, &mut datagram[16..], &mut tag).unwrap();
    assert_eq!(counter, 0);
    datagram.extend_from_slice(&tag);
    Scrambler::new([0x42; 32]).toggle_head(&mut datagram);
    v.insert("data_datagram".into(), hex::encode(&datagram));

    let (noise, init) = handshake_init();
    v.insert("handshake_init_noise".into(), hex::encode(noise));
    v.insert("handshake_init_datagram".into(), hex::encode(init));

    let (m1, m2, hash, d) = ik_handshake();
    v.insert("ik_init_noise".into(), hex::encode(m1));
    v.insert("ik_response_noise".into(), hex::encode(m2));
    v.insert("ik_handshake_hash".into(), hex::encode(hash));
    v.insert("ik_init_datagram".into(), hex::encode(d));
    let hint = Hint {
        reason: HintReason::UnknownSession,
        index: 0x0102_0304,
    }
    .encode([0; 11]);
    let keys = MeshKeys::derive("global", None);
    v.insert(
        "hint_datagram".into(),
        hex::encode(handshake_kind_datagram(
            &keys,
            Kind::Hint,
            [7; 12],
            &hint,
            &[],
        )),
    );

    let pk = signer().public_key().0;
    v.insert("signed_origin".into(), hex::encode(pk));
    let (id, body) = signed_body(1, "chat", b"hi");
    v.insert("signed_message_id".into(), hex::encode(id));
    let mut f = vec![0x22];
    f.extend_from_slice(&(body.len() as u16).to_le_bytes());
    f.extend_from_slice(&body);
    v.insert("signed_publish_frame".into(), hex::encode(&f));

    let frags = signed_fragments();
    v.insert("signed_fragment_count".into(), frags.len().to_string());
    v.insert(
        "signed_fragment[0] first 64 bytes".into(),
        hex::encode(&frags[0][..64]),
    );
    v.insert(
        "signed_fragment[0] blake2s".into(),
        hex::encode(Blake2s256::digest(&frags[0])),
    );
    v.insert("signed_fragment[1]".into(), hex::encode(&frags[1]));

    let ids = [id, [0x22; 32]];
    let mut ihave = Vec::new();
    Frame::IHave {
        topic: "chat",
        ids: IdList::new(&ids).unwrap(),
    }
    .encode(&mut ihave);
    v.insert("ihave_frame".into(), hex::encode(ihave));
    v
}

#[test]
fn protocol_md_vectors_match_the_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .unwrap();
    let documented: BTreeMap<String, String> = doc
        .lines()
        .filter_map(|l| l.trim().strip_prefix("vector: "))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let now = computed();
    if std::env::var_os("MOSS_PRINT_VECTORS").is_some() {
        for (k, v) in &now {
            println!("vector: {k} = {v}");
        }
    }
    assert_eq!(
        documented, now,
        "docs/PROTOCOL.md vectors differ from the code"
    );
}

#[test]
fn documented_data_datagram_opens() {
    // The receiving side of the vector: unmask, decode head, open, read frames.
    let v = computed();
    let mut d = hex::decode(&v["data_datagram"]).unwrap();
    Scrambler::new([0x42; 32]).toggle_head(&mut d);
    let head: [u8; 16] = d[..16].try_into().unwrap();
    let Head::Data { receiver, counter } = Head::decode(&head).unwrap() else {
        panic!("not data")
    };
    assert_eq!(receiver, 0x0102_0304);
    let mut cipher = TransportCipher::new(&[2; 32], &[1; 32]);
    let n = cipher.open(counter, &head, &mut d[16..]).unwrap();
    let frames: Vec<_> = moss_mesh::wire::FrameReader::new(&d[16..16 + n])
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0], Frame::Subscribe("chat"));
}

#[test]
fn documented_handshake_datagram_unmasks_to_its_parts() {
    let (noise, mut d) = handshake_init();
    let scr = Scrambler::new(MeshKeys::derive("global", None).scramble_key);
    scr.toggle_head(&mut d);
    let head: [u8; 16] = d[..16].try_into().unwrap();
    // kind 1, version 1, pad_len 4 (u16 LE), then the nonce.
    assert_eq!(&head[..4], &[1, 1, 4, 0]);
    assert_eq!(&head[4..], &[7; 12]);
    scr.toggle_body(&[7; 12], &mut d[16..]);
    // sender (u32 LE), receiver 0, noise_len (u16 LE), noise, padding.
    assert_eq!(&d[16..20], &0x0102_0304u32.to_le_bytes());
    assert_eq!(&d[20..24], &[0; 4]);
    assert_eq!(&d[24..26], &(noise.len() as u16).to_le_bytes());
    assert_eq!(&d[26..26 + noise.len()], &noise[..]);
    assert_eq!(&d[26 + noise.len()..], &[0xee; 4]);
    // Message 1 of XX is the bare ephemeral key.
    assert_eq!(noise.len(), 32);
}

#[test]
fn documented_signed_frames_verify_and_reassemble() {
    let o = signer();
    let v = computed();
    let f = hex::decode(&v["signed_publish_frame"]).unwrap();
    let Some(Ok(Frame::SignedPublish(sp))) = moss_mesh::wire::FrameReader::new(&f).next() else {
        panic!("not a SIGNED_PUBLISH frame")
    };
    let p = sp.publish;
    let id = message_id(&p.origin, p.seq, p.topic, p.payload);
    assert!(o.public_key().verify(&signing_bytes(&id), &sp.signature));
    // The pieces carry `id ‖ body` cut into 1157-byte chunks; the id is not
    // repeated per piece.
    let mut whole = Vec::new();
    for frag in signed_fragments() {
        let Some(Ok(Frame::SignedFragment { data, .. })) =
            moss_mesh::wire::FrameReader::new(&frag).next()
        else {
            panic!("not a SIGNED_FRAGMENT frame")
        };
        whole.extend_from_slice(data);
    }
    let (claimed, body) = whole.split_at(32);
    let sp = SignedPublish::decode_body(body).unwrap();
    let id = message_id(
        &sp.publish.origin,
        sp.publish.seq,
        sp.publish.topic,
        sp.publish.payload,
    );
    assert_eq!(claimed, id);
    assert_eq!(sp.publish.payload, &big_payload()[..]);
    assert!(o.public_key().verify(&signing_bytes(&id), &sp.signature));
}
