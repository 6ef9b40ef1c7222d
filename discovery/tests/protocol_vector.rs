//! The LAN beacon test vector in PROTOCOL.md matches the code.

use moss_discovery::beacon::{self, Beacon};

fn vector_from_doc(label: &str) -> Vec<u8> {
    let doc = include_str!("../PROTOCOL.md");
    let line = doc
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` line in PROTOCOL.md"));
    let hex = line[label.len()..].trim();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn beacon_test_vector_matches_protocol_md() {
    let key: [u8; 32] = core::array::from_fn(|i| i as u8);
    let b = Beacon {
        listen_port: 8080,
        instance_id: [1, 2, 3, 4, 5, 6, 7, 8],
    };
    let expected = vector_from_doc("beacon ");
    assert_eq!(expected.len(), beacon::BEACON_LEN);
    assert_eq!(beacon::encode(&key, &b).to_vec(), expected);
    assert_eq!(&expected[8..16], vector_from_doc("mesh tag ").as_slice());
    assert_eq!(beacon::decode(&key, &expected), Ok(b));
}
