//! One test per drop reason of the table in `docs/PROTOCOL.md`: a real node
//! is driven through its public API with datagrams crafted here, by a test
//! peer that speaks the protocol from the document (scramble codec, Noise
//! XX, transport cipher, frames). Each test checks the exact counter the
//! table names.

use moss_crypto::msgid::message_id;
use moss_crypto::transport::TAG_LEN;
use moss_crypto::{Handshake, Identity, MeshKeys, Role, Scrambler, TransportCipher};
use moss_mesh::wire::{
    signing_bytes, Frame, HandshakeBody, Head, Kind, Publish, SignedPublish, FRAGMENT_CHUNK,
};
use moss_mesh::{Config, DropReason, Event, Node, TELEMETRY_TOPIC};
use std::net::SocketAddr;
use std::time::Duration;

const MESH: &str = "drops";
const T0: Duration = Duration::ZERO;

fn node_addr() -> SocketAddr {
    "127.0.0.1:50000".parse().unwrap()
}

fn peer_addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 2], 20000 + i))
}

fn node_with(cfg: Config) -> Node {
    Node::new(cfg, Identity::from_seed([1; 32]), MESH, None, [7; 32], T0).unwrap()
}

fn node() -> Node {
    node_with(Config::default())
}

/// Drains the node's output; returns the datagrams sent to `to`.
fn sent_to(node: &mut Node, to: SocketAddr) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit() {
        if t.to == to {
            out.push(t.bytes);
        }
    }
    out
}

fn events(node: &mut Node) -> Vec<Event> {
    std::iter::from_fn(|| node.poll_event()).collect()
}

/// The counter of `r`, asserting every other reason is still zero.
fn only(node: &Node, r: DropReason) -> u64 {
    let d = &node.stats().drops;
    for other in DropReason::ALL {
        if other != r {
            assert_eq!(
                d.get(other),
                0,
                "{} counted besides {}",
                other.as_str(),
                r.as_str()
            );
        }
    }
    d.get(r)
}

/// A handshake datagram as PROTOCOL.md builds it: body scrambled with the
/// head's nonce, then the head masked with a sample of the scrambled body.
fn handshake_datagram(
    scr: &Scrambler,
    kind: Kind,
    nonce: [u8; 12],
    body: HandshakeBody<'_>,
    padding: &[u8],
) -> Vec<u8> {
    let mut d = Head::Handshake {
        kind,
        pad_len: padding.len() as u16,
        nonce,
    }
    .encode()
    .to_vec();
    body.encode(&mut d);
    d.extend_from_slice(padding);
    scr.toggle_body(&nonce, &mut d[16..]);
    scr.toggle_head(&mut d);
    d
}

/// [`handshake_datagram`] without padding, from the body's fields.
fn hs_datagram(
    scr: &Scrambler,
    kind: Kind,
    nonce: [u8; 12],
    sender: u32,
    receiver: u32,
    noise: &[u8],
) -> Vec<u8> {
    let body = HandshakeBody {
        sender,
        receiver,
        noise,
    };
    handshake_datagram(scr, kind, nonce, body, &[])
}

/// Unmasks and unscrambles a handshake datagram: (kind, sender, receiver, noise).
fn open_handshake(scr: &Scrambler, mut d: Vec<u8>) -> (Kind, u32, u32, Vec<u8>) {
    scr.toggle_head(&mut d);
    let head: [u8; 16] = d[..16].try_into().unwrap();
    let Head::Handshake {
        kind,
        pad_len,
        nonce,
    } = Head::decode(&head).unwrap()
    else {
        panic!("not a handshake datagram");
    };
    scr.toggle_body(&nonce, &mut d[16..]);
    let b = HandshakeBody::decode(&d[16..], pad_len).unwrap();
    (kind, b.sender, b.receiver, b.noise.to_vec())
}

/// A data datagram: head, frames sealed under `counter`, tag, head masked.
fn data_datagram(
    scr: &Scrambler,
    cipher: &mut TransportCipher,
    receiver: u32,
    frames: &[u8],
) -> Vec<u8> {
    let head = Head::Data {
        receiver,
        counter: cipher.next_counter(),
    }
    .encode();
    let mut d = head.to_vec();
    d.extend_from_slice(frames);
    let mut tag = [0u8; TAG_LEN];
    cipher.seal(&head, &mut d[16..], &mut tag).unwrap();
    d.extend_from_slice(&tag);
    scr.toggle_head(&mut d);
    d
}

/// A peer of the mesh written from the protocol document.
struct Peer {
    id: Identity,
    addr: SocketAddr,
    scr: Scrambler,
    keys: MeshKeys,
    index: u32,
}

/// An established session of a [`Peer`] with the node.
struct Session {
    cipher: TransportCipher,
    /// The node's index for this session (the receiver of our data).
    remote: u32,
}

impl Peer {
    fn new(i: u16) -> Self {
        let keys = MeshKeys::derive(MESH, None);
        let mut seed = [0x40; 32];
        seed[..2].copy_from_slice(&i.to_le_bytes());
        Self {
            id: Identity::from_seed(seed),
            addr: peer_addr(i),
            scr: Scrambler::new(keys.scramble_key),
            keys,
            index: 0x1000 + u32::from(i),
        }
    }

    fn handshake(&self) -> Handshake {
        Handshake::new(Role::Initiator, &self.id, &self.keys.prologue, [3; 32]).unwrap()
    }

    /// Message 1 of a fresh handshake.
    fn init(&self, hs: &mut Handshake) -> Vec<u8> {
        let mut m = [0u8; 1024];
        let n = hs.write(&[], &mut m).unwrap();
        hs_datagram(&self.scr, Kind::Init, [1; 12], self.index, 0, &m[..n])
    }

    /// Runs message 1 and 2; returns the node's index and message 3.
    fn until_final(&self, node: &mut Node, hs: &mut Handshake) -> (u32, Vec<u8>) {
        let mut d1 = self.init(hs);
        node.handle_datagram(T0, self.addr, &mut d1);
        let d2 = sent_to(node, self.addr).pop().expect("message 2");
        let (kind, sender, receiver, noise) = open_handshake(&self.scr, d2);
        assert_eq!((kind, receiver), (Kind::Response, self.index));
        hs.read(&noise).unwrap();
        let mut m = [0u8; 1024];
        let n = hs.write(&[], &mut m).unwrap();
        let d3 = hs_datagram(&self.scr, Kind::Final, [2; 12], self.index, sender, &m[..n]);
        (sender, d3)
    }

    /// A complete handshake with the node.
    fn connect(&self, node: &mut Node) -> Session {
        let mut hs = self.handshake();
        let (remote, mut d3) = self.until_final(node, &mut hs);
        node.handle_datagram(T0, self.addr, &mut d3);
        let o = hs.finish().unwrap();
        assert!(
            node.peers().iter().any(|p| p.peer == self.id.public_key()),
            "handshake did not complete"
        );
        sent_to(node, self.addr);
        Session {
            cipher: TransportCipher::new(&o.send_key, &o.recv_key),
            remote,
        }
    }

    /// Seals `frames` for the node and delivers them.
    fn send(&self, node: &mut Node, s: &mut Session, frames: &[u8]) {
        self.send_at(node, s, frames, T0);
    }

    /// [`Peer::send`] at time `now`.
    fn send_at(&self, node: &mut Node, s: &mut Session, frames: &[u8], now: Duration) {
        let mut d = data_datagram(&self.scr, &mut s.cipher, s.remote, frames);
        node.handle_datagram(now, self.addr, &mut d);
    }
}

/// `node` with peer 0 connected.
fn connected(mut node: Node) -> (Node, Peer, Session) {
    let p = Peer::new(0);
    let s = p.connect(&mut node);
    (node, p, s)
}

/// A SIGNED_PUBLISH frame by `origin`, signed unless `forge`.
fn signed_publish(
    origin: &Identity,
    hops: u8,
    seq: u64,
    topic: &str,
    payload: &[u8],
    forge: bool,
) -> Vec<u8> {
    let o = origin.public_key().0;
    let id = message_id(&o, seq, topic, payload);
    let mut signature = origin.sign(&signing_bytes(&id));
    if forge {
        signature[0] ^= 1;
    }
    let mut f = Vec::new();
    Frame::SignedPublish(SignedPublish {
        signature,
        publish: Publish {
            hops,
            origin: o,
            seq,
            topic,
            payload,
        },
    })
    .encode(&mut f);
    f
}

fn frame(f: Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    f.encode(&mut out);
    out
}

#[test]
fn too_short_and_oversize() {
    let mut n = node();
    n.handle_datagram(T0, peer_addr(0), &mut [0u8; 31]);
    n.handle_datagram(T0, peer_addr(0), &mut [0u8; 1201]);
    assert_eq!(n.stats().drops.get(DropReason::TooShort), 1);
    assert_eq!(n.stats().drops.get(DropReason::Oversize), 1);
    assert_eq!(n.stats().drops.total(), 2);
}

#[test]
fn unrecognized_garbage_another_mesh_and_wrong_psk() {
    let mut n = node();
    n.handle_datagram(T0, peer_addr(0), &mut [0x5a; 100]);
    assert_eq!(only(&n, DropReason::Unrecognized), 1);
    // Message 1 of another mesh, and of this mesh with a PSK: their heads
    // are masked with another scramble key and unmask to noise.
    for keys in [
        MeshKeys::derive("other", None),
        MeshKeys::derive(MESH, Some(&[9; 32])),
    ] {
        let id = Identity::from_seed([5; 32]);
        let mut hs = Handshake::new(Role::Initiator, &id, &keys.prologue, [3; 32]).unwrap();
        let mut m = [0u8; 1024];
        let len = hs.write(&[], &mut m).unwrap();
        let scr = Scrambler::new(keys.scramble_key);
        let mut d = hs_datagram(&scr, Kind::Init, [1; 12], 77, 0, &m[..len]);
        n.handle_datagram(T0, peer_addr(1), &mut d);
    }
    assert_eq!(only(&n, DropReason::Unrecognized), 3);
    assert!(sent_to(&mut n, peer_addr(1)).is_empty(), "no answer");
}

#[test]
fn unknown_session_for_data_and_stray_messages_2_and_3() {
    let mut n = node();
    let p = Peer::new(0);
    // Data to an index the node never handed out.
    let mut c = TransportCipher::new(&[1; 32], &[2; 32]);
    let mut d = data_datagram(&p.scr, &mut c, 0xdead_beef, &[]);
    n.handle_datagram(T0, p.addr, &mut d);
    assert_eq!(only(&n, DropReason::UnknownSession), 1);
    // Message 2 and message 3 naming an index the node does not have.
    for kind in [Kind::Response, Kind::Final] {
        let mut d = hs_datagram(&p.scr, kind, [4; 12], 5, 0x0bad_0bad, &[0u8; 64]);
        n.handle_datagram(T0, p.addr, &mut d);
    }
    assert_eq!(only(&n, DropReason::UnknownSession), 3);
}

#[test]
fn not_established_for_data_to_a_half_open_index() {
    let (mut n, p) = (node(), Peer::new(0));
    let mut hs = p.handshake();
    // Message 1 and 2 only: the node's index exists but is still handshaking.
    let (remote, _final) = p.until_final(&mut n, &mut hs);
    let mut c = TransportCipher::new(&[1; 32], &[2; 32]);
    let mut d = data_datagram(&p.scr, &mut c, remote, &[]);
    n.handle_datagram(T0, p.addr, &mut d);
    assert_eq!(only(&n, DropReason::NotEstablished), 1);
}

#[test]
fn replay_bad_tag_and_counters_near_the_end() {
    let (mut n, p, mut s) = connected(node());
    let d = data_datagram(&p.scr, &mut s.cipher, s.remote, &[]);
    n.handle_datagram(T0, p.addr, &mut d.clone());
    n.handle_datagram(T0, p.addr, &mut d.clone());
    assert_eq!(only(&n, DropReason::Replay), 1, "the same counter twice");
    // A flipped tag byte (past the 16-byte head-mask sample: a flipped
    // sample unmasks the head to noise, `unrecognized`).
    let sub = frame(Frame::Subscribe("abcdefgh"));
    let mut bad = data_datagram(&p.scr, &mut s.cipher, s.remote, &sub);
    let last = bad.len() - 1;
    bad[last] ^= 1;
    n.handle_datagram(T0, p.addr, &mut bad);
    assert_eq!(n.stats().drops.get(DropReason::BadTag), 1);
    // A counter at or past 2^64 - 2048 is refused before the tag is
    // checked, and counted as a replay.
    let head = Head::Data {
        receiver: s.remote,
        counter: u64::MAX - 100,
    }
    .encode();
    let mut d = head.to_vec();
    d.extend_from_slice(&[0u8; 32]);
    p.scr.toggle_head(&mut d);
    n.handle_datagram(T0, p.addr, &mut d);
    assert_eq!(n.stats().drops.get(DropReason::Replay), 2);
    assert_eq!(n.stats().drops.total(), 3);
    // The window: with H the highest accepted counter, H - 1983 is still
    // accepted, H - 1984 is too old.
    let sealed: Vec<Vec<u8>> = (0..2000)
        .map(|_| data_datagram(&p.scr, &mut s.cipher, s.remote, &[]))
        .collect();
    n.handle_datagram(T0, p.addr, &mut sealed[1999].clone());
    n.handle_datagram(T0, p.addr, &mut sealed[1999 - 1983].clone());
    assert_eq!(n.stats().drops.total(), 3, "inside the window");
    n.handle_datagram(T0, p.addr, &mut sealed[1999 - 1984].clone());
    assert_eq!(n.stats().drops.get(DropReason::Replay), 3, "too old");
}

#[test]
fn malformed_frame_unknown_type_and_fragment_index_past_count() {
    let (mut n, p, mut s) = connected(node());
    // An unknown frame type (0x7f) is not skipped: the rest of the datagram goes.
    p.send(&mut n, &mut s, &[0x7f, 1, 0, 0]);
    assert_eq!(only(&n, DropReason::MalformedFrame), 1);
    // FRAGMENT with index 3 of count 3.
    let mut f = vec![0x23, 8 + 4, 0];
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&3u16.to_le_bytes());
    f.extend_from_slice(&3u16.to_le_bytes());
    f.extend_from_slice(b"data");
    p.send(&mut n, &mut s, &f);
    assert_eq!(only(&n, DropReason::MalformedFrame), 2);
}

#[test]
fn bad_handshake_for_undecodable_bodies_and_a_message_1_naming_a_receiver() {
    let (mut n, p) = (node(), Peer::new(0));
    let mut hs = p.handshake();
    let mut m = [0u8; 1024];
    let len = hs.write(&[], &mut m).unwrap();
    let mut d = hs_datagram(&p.scr, Kind::Init, [1; 12], 1, 99, &m[..len]);
    n.handle_datagram(T0, p.addr, &mut d);
    assert_eq!(only(&n, DropReason::BadHandshake), 1);
    // pad_len larger than the body.
    let mut d = hs_datagram(&p.scr, Kind::Init, [1; 12], 1, 0, &m[..len]);
    p.scr.toggle_head(&mut d);
    d[2..4].copy_from_slice(&2000u16.to_le_bytes());
    p.scr.toggle_head(&mut d);
    n.handle_datagram(T0, p.addr, &mut d);
    assert_eq!(only(&n, DropReason::BadHandshake), 2);
}

#[test]
fn handshake_decrypt_for_a_corrupted_message_3_of_this_mesh() {
    let (mut n, p) = (node(), Peer::new(0));
    let mut hs = p.handshake();
    let (_, mut d3) = p.until_final(&mut n, &mut hs);
    // Flip a byte of the Noise message (inside the scrambled body, past the
    // 16-byte sample so the head still unmasks).
    let at = d3.len() - 5;
    d3[at] ^= 0x80;
    n.handle_datagram(T0, p.addr, &mut d3);
    assert_eq!(only(&n, DropReason::HandshakeDecrypt), 1);
    assert_eq!(n.peer_count(), 0);
}

/// Message 3 from a raw Noise initiator whose payload is `payload`
/// instead of a valid identity binding.
fn final_with_payload(n: &mut Node, p: &Peer, payload: &[u8]) {
    let (secret, _) = moss_crypto::noise::static_keypair(&p.id);
    let params = moss_crypto::noise::PATTERN.parse().unwrap();
    let mut hs = snow::Builder::with_resolver(params, Box::new(snow::resolvers::DefaultResolver))
        .local_private_key(&secret)
        .prologue(&p.keys.prologue)
        .build_initiator()
        .unwrap();
    let mut m = [0u8; 1024];
    let len = hs.write_message(&[], &mut m).unwrap();
    let mut d1 = hs_datagram(&p.scr, Kind::Init, [1; 12], p.index, 0, &m[..len]);
    n.handle_datagram(T0, p.addr, &mut d1);
    let (_, sender, _, noise) = open_handshake(&p.scr, sent_to(n, p.addr).pop().unwrap());
    let mut out = [0u8; 1024];
    hs.read_message(&noise, &mut out).unwrap();
    let len = hs.write_message(payload, &mut m).unwrap();
    let mut d3 = hs_datagram(&p.scr, Kind::Final, [2; 12], p.index, sender, &m[..len]);
    n.handle_datagram(T0, p.addr, &mut d3);
}

#[test]
fn handshake_auth_for_a_bad_or_missing_identity_binding() {
    let mut n = node();
    // A binding whose signature does not verify.
    let p = Peer::new(0);
    let mut binding = p.id.public_key().0.to_vec();
    binding.extend_from_slice(&[0u8; 64]);
    final_with_payload(&mut n, &p, &binding);
    assert_eq!(only(&n, DropReason::HandshakeAuth), 1);
    // A payload too short to hold one.
    final_with_payload(&mut n, &Peer::new(1), &[1, 2, 3]);
    assert_eq!(only(&n, DropReason::HandshakeAuth), 2);
    assert_eq!(n.peer_count(), 0);
}

#[test]
fn capacity_at_256_handshakes_in_flight_before_the_rate_budget() {
    let mut n = node();
    for i in 0..300u16 {
        let p = Peer::new(i);
        let mut d = p.init(&mut p.handshake());
        n.handle_datagram(T0, p.addr, &mut d);
    }
    assert_eq!(only(&n, DropReason::Capacity), 300 - 256);
}

#[test]
fn capacity_at_max_peers() {
    let cfg = Config::from_json(r#"{"max_peers":1}"#).unwrap();
    let mut n = node_with(cfg);
    Peer::new(0).connect(&mut n);
    let p = Peer::new(1);
    let mut d = p.init(&mut p.handshake());
    n.handle_datagram(T0, p.addr, &mut d);
    assert_eq!(only(&n, DropReason::Capacity), 1);
}

#[test]
fn handshake_rate_limited_for_an_early_repeat_and_past_the_burst() {
    let (mut n, p) = (node(), Peer::new(0));
    let mut hs = p.handshake();
    let d = p.init(&mut hs);
    n.handle_datagram(T0, p.addr, &mut d.clone());
    // The same message 1 again within the echo interval is not answered.
    n.handle_datagram(T0, p.addr, &mut d.clone());
    assert_eq!(only(&n, DropReason::HandshakeRateLimited), 1);
    assert_eq!(sent_to(&mut n, p.addr).len(), 1, "one message 2");
    // Past the echo interval it is answered with the same message 2.
    n.handle_datagram(Duration::from_millis(300), p.addr, &mut d.clone());
    assert_eq!(sent_to(&mut n, p.addr).len(), 1, "message 2 repeated");

    // The budget: completed handshakes leave the in-flight set, so the
    // 512-token burst is what refuses the 513th message 1 in one instant.
    let cfg = Config::from_json(r#"{"max_peers":1000}"#).unwrap();
    let mut n = node_with(cfg);
    for i in 0..512u16 {
        Peer::new(i).connect(&mut n);
    }
    assert_eq!(n.stats().drops.total(), 0);
    let p = Peer::new(600);
    let mut d = p.init(&mut p.handshake());
    n.handle_datagram(T0, p.addr, &mut d);
    assert_eq!(only(&n, DropReason::HandshakeRateLimited), 1);
}

#[test]
fn self_connect() {
    let mut n = node();
    n.add_static_peer(node_addr());
    // Loop everything the node sends to its own address back into it.
    let mut now = T0;
    for _ in 0..20 {
        n.handle_timeout(now);
        while let Some(t) = n.poll_transmit() {
            let mut b = t.bytes;
            if t.to == node_addr() {
                n.handle_datagram(now, node_addr(), &mut b);
            }
        }
        now += Duration::from_millis(100);
    }
    assert!(n.stats().drops.get(DropReason::SelfConnect) >= 1);
    assert_eq!(n.peer_count(), 0);
}

#[test]
fn message_too_large_and_gossip_not_limited_by_the_relay_buckets() {
    // Tiny relay buckets: gossip inbound must not be held to them.
    let cfg = Config::from_json(
        r#"{"security":{"max_message_size_bytes":100,"rate_limit_burst":400,"rate_limit_sustained":1}}"#,
    )
    .unwrap();
    let (mut n, p, mut s) = connected(node_with(cfg));
    n.subscribe("t");
    let f = signed_publish(&p.id, 0, 1, "t", &[0; 101], false);
    p.send(&mut n, &mut s, &f);
    assert_eq!(only(&n, DropReason::MessageTooLarge), 1);
    // 50 bodies of 207 bytes, 25 times the 400-byte bucket: all delivered.
    events(&mut n);
    for seq in 10..60 {
        let f = signed_publish(&p.id, 0, seq, "t", &[0; 100], false);
        p.send(&mut n, &mut s, &f);
    }
    let got = events(&mut n)
        .iter()
        .filter(|e| matches!(e, Event::Message(_)))
        .count();
    assert_eq!(got, 50, "every honest message delivered");
    assert_eq!(only(&n, DropReason::MessageTooLarge), 1);
}

#[test]
fn a_peer_flooding_forged_signatures_is_graylisted() {
    let (mut n, p, mut s) = connected(node());
    n.subscribe("t");
    let mut forged = 0u64;
    let mut now = T0;
    while n.stats().drops.get(DropReason::Graylisted) == 0 {
        assert!(forged < 200, "never graylisted");
        let f = signed_publish(&p.id, 0, forged, "t", b"x", true);
        let mut d = data_datagram(&p.scr, &mut s.cipher, s.remote, &f);
        n.handle_datagram(now, p.addr, &mut d);
        // Sent by their origin, they were delivered at once; the node
        // checks their signatures when it next flushes its output.
        sent_to(&mut n, p.addr);
        forged += 1;
        now += Duration::from_millis(1);
    }
    eprintln!("graylisted after {forged} forged messages");
    // P4 = -10 · count² reaches the graylist (-10 000) at 32 invalid
    // messages; the next datagram is the first dropped unread.
    assert_eq!(forged, 33);
    assert_eq!(n.stats().drops.get(DropReason::InvalidMessage), 32);
    // Each came straight from its origin over the session that
    // authenticated it, so it reached this node's application, but none
    // was forwarded (checked first, and found forged).
    let delivered = events(&mut n)
        .iter()
        .filter(|e| matches!(e, Event::Message(_)))
        .count();
    assert_eq!(delivered, 32);
    // A genuine message from it is now dropped unread as well.
    let f = signed_publish(&p.id, 0, 1000, "t", b"y", false);
    p.send_at(&mut n, &mut s, &f, now);
    assert!(events(&mut n)
        .iter()
        .all(|e| !matches!(e, Event::Message(_))));
}

#[test]
fn bad_fragment_counts_every_piece_of_an_over_limit_message() {
    let (mut n, p, mut s) = connected(node());
    // max_message_size_bytes 65536: the bound is 65536 + 393 bytes, so 58
    // full pieces (57 · 1157 = 65949 ≥ 65929) can never be accepted.
    let chunk = vec![0u8; FRAGMENT_CHUNK];
    for index in 0..3u16 {
        let f = frame(Frame::SignedFragment {
            transfer: 1,
            index,
            count: 58,
            data: &chunk,
        });
        p.send(&mut n, &mut s, &f);
    }
    assert_eq!(only(&n, DropReason::BadFragment), 3, "one per piece");
    // 57 pieces fit the bound: accepted (incomplete, nothing counted).
    let f = frame(Frame::SignedFragment {
        transfer: 2,
        index: 0,
        count: 57,
        data: &chunk,
    });
    p.send(&mut n, &mut s, &f);
    assert_eq!(only(&n, DropReason::BadFragment), 3);
    // A piece whose count disagrees with the transfer's.
    let f = frame(Frame::SignedFragment {
        transfer: 2,
        index: 1,
        count: 56,
        data: &chunk,
    });
    p.send(&mut n, &mut s, &f);
    assert_eq!(only(&n, DropReason::BadFragment), 4);
}

/// (seq, hops) of the signed messages `n` sent to peer `q`.
fn forwarded_to(n: &mut Node, q: &Peer, sq: &mut Session) -> Vec<(u64, u8)> {
    let mut forwarded = Vec::new();
    for mut d in sent_to(n, q.addr) {
        q.scr.toggle_head(&mut d);
        let head: [u8; 16] = d[..16].try_into().unwrap();
        let Ok(Head::Data { counter, .. }) = Head::decode(&head) else {
            continue;
        };
        let len = sq.cipher.open(counter, &head, &mut d[16..]).unwrap();
        for f in moss_mesh::wire::FrameReader::new(&d[16..16 + len]) {
            if let Ok(Frame::SignedPublish(sp)) = f {
                forwarded.push((sp.publish.seq, sp.publish.hops));
            }
        }
    }
    forwarded
}

/// `n` subscribed to "t" with peers 0 and 1 connected, subscribed and in
/// its mesh of "t".
fn two_mesh_peers() -> (Node, Peer, Session, Peer, Session, Duration) {
    let mut n = node();
    n.subscribe("t");
    let p = Peer::new(0);
    let q = Peer::new(1);
    let mut s = p.connect(&mut n);
    let mut sq = q.connect(&mut n);
    p.send(&mut n, &mut s, &frame(Frame::Subscribe("t")));
    q.send(&mut n, &mut sq, &frame(Frame::Subscribe("t")));
    // A heartbeat grafts both into the node's mesh of "t".
    let later = Duration::from_secs(2);
    n.handle_timeout(later);
    events(&mut n);
    sent_to(&mut n, q.addr);
    (n, p, s, q, sq, later)
}

#[test]
fn first_hop_from_the_origin_is_delivered_at_once_and_checked_before_forwarding() {
    let (mut n, p, mut s, q, mut sq, later) = two_mesh_peers();
    // p publishes its own messages: one genuine, one forged.
    let genuine = signed_publish(&p.id, 0, 1, "t", b"genuine", false);
    let forged = signed_publish(&p.id, 0, 2, "t", b"forged", true);
    p.send_at(&mut n, &mut s, &genuine, later);
    p.send_at(&mut n, &mut s, &forged, later);
    // Both reached the application before any signature check: the
    // session authenticated their sender as their origin.
    let delivered = events(&mut n)
        .iter()
        .filter(|e| matches!(e, Event::Message(_)))
        .count();
    assert_eq!(delivered, 2);
    assert_eq!(n.stats().drops.total(), 0, "nothing checked yet");
    // The checks run before forwarding: only the genuine one goes on.
    assert_eq!(forwarded_to(&mut n, &q, &mut sq), vec![(1, 1)]);
    assert_eq!(only(&n, DropReason::InvalidMessage), 1);
    // A copy of the forgery relayed by q (not its origin) is verified
    // before delivery, and is not delivered.
    q.send_at(&mut n, &mut sq, &forged, later);
    assert!(events(&mut n).is_empty());
    assert_eq!(only(&n, DropReason::InvalidMessage), 2);
}

#[test]
fn hop_limit_is_delivered_but_not_forwarded() {
    // q subscribes too, so a forwardable message would go to it.
    let (mut n, p, mut s, q, mut sq, later) = two_mesh_peers();
    let origin = Identity::from_seed([0x77; 32]);
    let far = signed_publish(&origin, 32, 1, "t", b"far", false);
    p.send_at(&mut n, &mut s, &far, later);
    // Delivered here, so not a drop although it goes no further.
    assert_eq!(only(&n, DropReason::HopLimit), 0);
    let delivered: Vec<u8> = events(&mut n)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m.hops),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![33], "delivered, hops counted on arrival");
    // hops 31 is forwarded (as 32) to q; hops 32 was not.
    let near = signed_publish(&origin, 31, 2, "t", b"near", false);
    p.send_at(&mut n, &mut s, &near, later);
    assert_eq!(forwarded_to(&mut n, &q, &mut sq), vec![(2, 32)]);
    // At the limit on a topic nobody here subscribes to: it goes nowhere,
    // which is the drop.
    let stray = signed_publish(&origin, 32, 3, "u", b"stray", false);
    p.send_at(&mut n, &mut s, &stray, later);
    assert_eq!(only(&n, DropReason::HopLimit), 1);
}

#[test]
fn invalid_message_for_a_bad_signature_and_an_unsigned_publish() {
    let (mut n, p, mut s) = connected(node());
    p.send(
        &mut n,
        &mut s,
        &signed_publish(&p.id, 0, 1, "t", b"x", true),
    );
    assert_eq!(only(&n, DropReason::InvalidMessage), 1);
    let f = frame(Frame::Publish(Publish {
        hops: 0,
        origin: p.id.public_key().0,
        seq: 2,
        topic: "t",
        payload: b"x",
    }));
    p.send(&mut n, &mut s, &f);
    assert_eq!(only(&n, DropReason::InvalidMessage), 2);
}

#[test]
fn graylisted_after_enough_misbehaviour() {
    let (mut n, p, mut s) = connected(node());
    // Each malformed frame is one behaviour penalty (P7 = -10 · (count - 1)²).
    let mut malformed = 0;
    let mut now = T0;
    while n.stats().drops.get(DropReason::Graylisted) == 0 {
        assert!(malformed < 100, "never graylisted");
        let mut d = data_datagram(&p.scr, &mut s.cipher, s.remote, &[0x7f, 0, 0]);
        n.handle_datagram(now, p.addr, &mut d);
        malformed += 1;
        now += Duration::from_millis(10);
    }
    let before = n.stats().drops.get(DropReason::MalformedFrame);
    p.send(&mut n, &mut s, &[0x7f, 0, 0]);
    assert_eq!(
        n.stats().drops.get(DropReason::MalformedFrame),
        before,
        "dropped unread"
    );
    assert!(n.stats().drops.get(DropReason::Graylisted) >= 2);
}

#[test]
fn bad_stat_delta_and_stat_delta_rejected() {
    let cfg = Config::from_json(r#"{"telemetry":{"enabled":true}}"#).unwrap();
    let (mut n, p, mut s) = connected(node_with(cfg));
    let f = signed_publish(&p.id, 0, 1, TELEMETRY_TOPIC, b"\x01garbage", false);
    p.send(&mut n, &mut s, &f);
    assert_eq!(only(&n, DropReason::BadStatDelta), 1);
    // A delta that decodes but whose epoch length is not ours (300 s).
    let delta = moss_telemetry::StatDelta::new(7, 0, None, []).unwrap();
    let f = signed_publish(&p.id, 0, 2, TELEMETRY_TOPIC, &delta.encode(), false);
    p.send(&mut n, &mut s, &f);
    events(&mut n);
    assert_eq!(n.stats().drops.get(DropReason::StatDeltaRejected), 1);
    assert_eq!(n.stats().drops.total(), 2);
}

/// A hint datagram (kind 7) with body `body` and `pad_len` 0.
fn hint_datagram(scr: &Scrambler, body: &[u8]) -> Vec<u8> {
    let nonce = [5u8; 12];
    let mut d = Head::Handshake {
        kind: Kind::Hint,
        pad_len: 0,
        nonce,
    }
    .encode()
    .to_vec();
    d.extend_from_slice(body);
    scr.toggle_body(&nonce, &mut d[16..]);
    scr.toggle_head(&mut d);
    d
}

#[test]
fn bad_hint_for_undecodable_hints_and_hints_naming_nothing_of_ours() {
    use moss_mesh::hint::{Hint, HintReason};
    let (mut n, p, s) = connected(node());
    // Undecodable: unknown reason, index 0, a longer body.
    let mut bad = Hint {
        reason: HintReason::UnknownSession,
        index: 9,
    }
    .encode([0; 11]);
    bad[0] = 9;
    let zero = Hint {
        reason: HintReason::UnknownSession,
        index: 0,
    }
    .encode([0; 11]);
    let mut long = zero.to_vec();
    long[1] = 1;
    long.push(0);
    // Well-formed but naming nothing here: an index that is not the peer's
    // index of the session on that path, an IK dial we never made.
    let stranger = Hint {
        reason: HintReason::UnknownSession,
        index: p.index ^ 1,
    }
    .encode([0; 11]);
    let refused = Hint {
        reason: HintReason::IkRefused,
        index: s.remote,
    }
    .encode([0; 11]);
    for body in [&bad[..], &zero[..], &long[..], &stranger[..], &refused[..]] {
        let mut d = hint_datagram(&p.scr, body);
        n.handle_datagram(T0, p.addr, &mut d);
    }
    assert_eq!(only(&n, DropReason::BadHint), 5);
    // A good hint from another address names nothing either.
    let good = Hint {
        reason: HintReason::UnknownSession,
        index: p.index,
    }
    .encode([0; 11]);
    let mut d = hint_datagram(&p.scr, &good);
    n.handle_datagram(T0, peer_addr(9), &mut d);
    assert_eq!(only(&n, DropReason::BadHint), 6);
    assert!(sent_to(&mut n, peer_addr(9)).is_empty());
    // From the session's own path it makes the node handshake again (IK:
    // it holds our static key), and the session stays.
    let mut d = hint_datagram(&p.scr, &good);
    n.handle_datagram(T0, p.addr, &mut d);
    assert_eq!(only(&n, DropReason::BadHint), 6);
    let out = sent_to(&mut n, p.addr);
    assert_eq!(out.len(), 1);
    let mut d = out[0].clone();
    p.scr.toggle_head(&mut d);
    assert_eq!(d[0], Kind::IkInit as u8);
    assert_eq!(n.peer_count(), 1);
}

#[test]
fn handshake_decrypt_for_an_ik_message_1_to_another_key_answered_by_a_hint() {
    use moss_crypto::LocalStatic;
    use moss_mesh::hint::{Hint, HintReason};
    let (mut n, p) = (node(), Peer::new(0));
    let local = LocalStatic::new(&p.id, &p.keys.prologue);
    // The key of someone else (the node is seed 1).
    let stale = moss_crypto::noise::static_keypair(&Identity::from_seed([9; 32])).1;
    let mut hs = Handshake::ik_initiator(&local, &stale, [3; 32]).unwrap();
    let mut m = [0u8; 1024];
    let len = hs.write(&[], &mut m).unwrap();
    let mut d = hs_datagram(&p.scr, Kind::IkInit, [1; 12], p.index, 0, &m[..len]);
    let prompt = d.len();
    n.handle_datagram(T0, p.addr, &mut d);
    assert_eq!(only(&n, DropReason::HandshakeDecrypt), 1);
    let out = sent_to(&mut n, p.addr);
    assert_eq!(out.len(), 1, "one ik_refused hint");
    let mut h = out[0].clone();
    assert!(h.len() <= prompt && h.len() == 32);
    p.scr.toggle_head(&mut h);
    let head: [u8; 16] = h[..16].try_into().unwrap();
    let Head::Handshake { kind, nonce, .. } = Head::decode(&head).unwrap() else {
        panic!("not a hint");
    };
    assert_eq!(kind, Kind::Hint);
    p.scr.toggle_body(&nonce, &mut h[16..]);
    assert_eq!(
        Hint::decode(&h[16..], 0),
        Ok(Hint {
            reason: HintReason::IkRefused,
            index: p.index
        })
    );
    // The right key completes in two messages.
    let right = moss_crypto::noise::static_keypair(&Identity::from_seed([1; 32])).1;
    let mut hs = Handshake::ik_initiator(&local, &right, [3; 32]).unwrap();
    let len = hs.write(&[], &mut m).unwrap();
    let mut d = hs_datagram(&p.scr, Kind::IkInit, [1; 12], p.index + 1, 0, &m[..len]);
    n.handle_datagram(T0, p.addr, &mut d);
    // Message 2 first (the capability SUBSCRIBEs follow it in a data datagram).
    let d2 = sent_to(&mut n, p.addr)
        .into_iter()
        .next()
        .expect("IK message 2");
    let (kind, sender, receiver, noise) = open_handshake(&p.scr, d2);
    assert_eq!((kind, receiver), (Kind::IkResponse, p.index + 1));
    hs.read(&noise).unwrap();
    let o = hs.finish().unwrap();
    // Unconfirmed until our first data arrives on it.
    assert_eq!(n.peer_count(), 0);
    let mut s = Session {
        cipher: TransportCipher::new(&o.send_key, &o.recv_key),
        remote: sender,
    };
    p.send(&mut n, &mut s, &frame(Frame::Subscribe("x")));
    assert_eq!(n.peer_count(), 1);
    assert_eq!(only(&n, DropReason::HandshakeDecrypt), 1);
}
