//! Checks the test vectors written in `docs/PROTOCOL.md` against the code.
//! Run with `MOSS_PRINT_VECTORS=1` to print the current values.

use moss_crypto::msgid::message_id;
use moss_crypto::transport::TAG_LEN;
use moss_crypto::{MeshKeys, Scrambler, TransportCipher};
use moss_mesh::wire::{Frame, Head, Publish};
use std::collections::BTreeMap;

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
