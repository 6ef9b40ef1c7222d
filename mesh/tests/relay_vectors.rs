//! Checks the relay frame vectors of `docs/PROTOCOL.md` ("Relay frames",
//! lines `relay-vector: name = hex`) against the code, and that each
//! decodes back to what made it. `MOSS_PRINT_VECTORS=1` prints them.

use moss_mesh::relay::frames::{Accept, Announce, Load, RefuseReason, Relay, Request};
use moss_mesh::{Identity, PeerId};
use std::collections::BTreeMap;

fn id(seed: u8) -> Identity {
    Identity::from_seed([seed; 32])
}

const SESSION: u64 = 0x0000_0001_0000_0001;

fn frames() -> Vec<(&'static str, Relay<'static>)> {
    let relay = id(1);
    let (a, b) = (id(2).public_key(), id(3).public_key());
    let request = Request::sign(
        &id(2),
        &relay.public_key(),
        b,
        Some("192.0.2.7:4000".parse().unwrap()),
        7,
    );
    let mut accept = Accept {
        session: SESSION,
        initiator: a,
        responder: b,
        nonce: 7,
        ttl_sec: 1800,
        peer_addr: "198.51.100.9:5000".parse().unwrap(),
        signature: [0; 64],
    };
    accept.signature = relay.sign(&accept.signing_bytes(&relay.public_key()));
    vec![
        (
            "announce_frame",
            Relay::Announce(Announce::sign(&relay, false, 1)),
        ),
        (
            "revoke_frame",
            Relay::Revoke(Announce::sign(&relay, true, 2)),
        ),
        ("request_frame", Relay::Request(request)),
        ("accept_frame", Relay::Accept(accept)),
        (
            "refuse_frame",
            Relay::Refuse {
                nonce: 7,
                target: b,
                reason: RefuseReason::Full,
            },
        ),
        (
            "data_frame",
            Relay::Data {
                session: SESSION,
                datagram: &[0xab; 8],
            },
        ),
        ("close_frame", Relay::Close { session: SESSION }),
        ("load_frame", Relay::Load(Load::sign(&relay, 1, 3, 12, 50))),
    ]
}

#[test]
fn protocol_md_relay_vectors_match_the_code() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .unwrap();
    let documented: BTreeMap<String, String> = doc
        .lines()
        .filter_map(|l| l.trim().strip_prefix("relay-vector: "))
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut now = BTreeMap::new();
    for (name, f) in frames() {
        let mut out = Vec::new();
        f.encode(&mut out);
        // type ‖ body_len ‖ body, and the body decodes to the same frame.
        assert_eq!(out[0], f.frame_type());
        assert_eq!(
            usize::from(u16::from_le_bytes([out[1], out[2]])),
            out.len() - 3
        );
        assert_eq!(Relay::decode(out[0], &out[3..]), Ok(f));
        now.insert(name.to_string(), hex::encode(&out));
    }
    now.insert("relay_public_key".into(), hex::encode(id(1).public_key().0));
    if std::env::var_os("MOSS_PRINT_VECTORS").is_some() {
        for (k, v) in &now {
            println!("relay-vector: {k} = {v}");
        }
    }
    assert_eq!(documented, now, "docs/PROTOCOL.md relay vectors differ");
    // The signatures verify, and only for the keys and fields they bind.
    let f = frames();
    let Relay::Accept(acc) = f[3].1 else { panic!() };
    assert!(acc.verify(&id(1).public_key()));
    assert!(!acc.verify(&PeerId([0; 32])));
    let Relay::Request(req) = f[2].1 else {
        panic!()
    };
    assert!(req.verify(&id(1).public_key(), &id(2).public_key()));
    let Relay::Announce(ann) = f[0].1 else {
        panic!()
    };
    assert!(ann.verify(false) && !ann.verify(true));
    let Relay::Load(load) = f[7].1 else { panic!() };
    assert!(load.verify());
    let mut forged = load;
    forged.used = 0;
    assert!(!forged.verify());
}
