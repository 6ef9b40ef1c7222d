//! Native nodes meeting over WebRTC DataChannels: a real `moss-signal`
//! (in process, on loopback), two unsharded nodes with `webrtc.enabled`,
//! no trackers, DHT, LAN or static peers, so the only way they can meet is
//! the signal room and a str0m DataChannel on loopback ICE candidates.
//! They exchange pub/sub both ways on `channel:` paths; a node of another
//! mesh (another room) meets nobody; stopping one is seen by the other. A
//! peer that joins the room but holds the wrong PSK gets a DataChannel and
//! no session, and the node closes that link well before ICE would.
#![cfg(feature = "webrtc")]

use moss::Node;
use moss_webrtc::{Endpoint, Output};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// The config of an offline node that meets peers only through `signal`.
fn offline(signal: SocketAddr) -> String {
    config(&format!("ws://{signal}"), r#""ice_ips": ["127.0.0.1"]"#)
}

/// An offline node's config: its only signal server is `url`, and `more`
/// is the rest of its `webrtc` block.
fn config(url: &str, more: &str) -> String {
    format!(
        r#"{{"trackers": [], "dht_enabled": false, "lan_discovery_enabled": false,
            "transport": {{"tcp_enabled": false}},
            "webrtc": {{"enabled": true, "signal": ["{url}"], {more}}}}}"#
    )
}

/// A real component this test needs is missing: skip visibly, or fail
/// under `CI=true`.
fn skip(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true and {what}"
    );
    eprintln!("SKIP: {what}");
}

fn signal_server() -> moss_signal::background::Background {
    moss_signal::background::Background::start(
        "127.0.0.1:0".parse().unwrap(),
        moss_signal::limits::Limits::default(),
    )
    .expect("signal server")
}

/// Two started nodes peer over one DataChannel each and carry a message
/// both ways.
fn exchange(a: &Node, b: &Node) {
    let sa = a.subscribe("t").unwrap();
    let sb = b.subscribe("t").unwrap();
    until("a and b peered", || {
        a.peer_count() == 1 && b.peer_count() == 1
    });
    a.wait_for_subscriber("t", WAIT).unwrap();
    b.wait_for_subscriber("t", WAIT).unwrap();
    a.publish("t", b"a to b").unwrap();
    b.publish("t", b"b to a").unwrap();
    assert_eq!(
        sb.recv_timeout(WAIT).expect("b got nothing").data(),
        b"a to b"
    );
    assert_eq!(
        sa.recv_timeout(WAIT).expect("a got nothing").data(),
        b"b to a"
    );
    for n in [a, b] {
        let p = n.stats().unwrap().peers;
        assert!(p.iter().all(|p| p.addr.starts_with("channel:")), "{p:?}");
    }
}

/// An offline node of `mesh` that meets peers only through `signal`.
fn node(mesh: &str, signal: SocketAddr) -> Node {
    Node::builder(mesh)
        .config_json(&offline(signal))
        .unwrap()
        .start()
        .unwrap()
}

fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_native_nodes_meet_over_a_datachannel_and_exchange_messages() {
    let signal = signal_server();
    let a = node("rtc-mesh", signal.addr());
    let b = node("rtc-mesh", signal.addr());
    let other = node("rtc-other-mesh", signal.addr());
    let sa = a.subscribe("t").unwrap();
    let sb = b.subscribe("t").unwrap();
    let so = other.subscribe("t").unwrap();
    until("a and b peered", || {
        a.peer_count() == 1 && b.peer_count() == 1
    });
    b.wait_for_subscriber("t", WAIT).unwrap();
    a.wait_for_subscriber("t", WAIT).unwrap();
    b.publish("t", b"b to a").unwrap();
    a.publish("t", &[9u8; 3000]).unwrap();
    let m = sa.recv_timeout(WAIT).expect("a got nothing");
    assert_eq!(m.data(), b"b to a");
    let m = sb.recv_timeout(WAIT).expect("b got nothing");
    assert_eq!(
        m.data(),
        &[9u8; 3000][..],
        "a fragmented message crosses too"
    );
    for n in [&a, &b] {
        let s = n.stats().unwrap();
        assert!(
            s.peers.iter().all(|p| p.addr.starts_with("channel:")),
            "every path is a DataChannel: {:?}",
            s.peers
        );
        let w = n.webrtc_stats().unwrap();
        assert_eq!(w.signal_connected, 1, "{w:?}");
        assert_eq!(w.links_open, 1, "{w:?}");
        assert!(w.datagrams_in > 0 && w.datagrams_out > 0, "{w:?}");
    }
    // Another mesh is another room: it never even links.
    assert_eq!(other.peer_count(), 0);
    assert_eq!(other.webrtc_stats().unwrap().links_opened, 0);
    assert!(so.try_recv().is_none());
    // A node that stops is seen leaving at once (its channel closes).
    drop(b);
    until("a saw b leave", || a.peer_count() == 0);
}

/// A peer that knows a mesh's signal room (the infohash, which trackers
/// and the DHT carry in clear) but holds another PSK: a real sans-IO
/// `moss_mesh::Node` behind a real str0m endpoint, its own ICE socket and
/// a WebSocket signal client, driven on the test thread. Its id `0` sorts
/// before every hex key, so it offers and dials.
struct Rogue {
    ep: Endpoint,
    node: moss_mesh::Node,
    sock: UdpSocket,
    local: SocketAddr,
    ws: tungstenite::WebSocket<TcpStream>,
    origin: Instant,
    opened: usize,
    closed: usize,
}

impl Rogue {
    fn join(signal: SocketAddr, room: &str, mesh: &str, psk: [u8; 32]) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        let local = sock.local_addr().unwrap();
        let stream = TcpStream::connect(signal).unwrap();
        // The upgrade waits as long as the test does (a 5 ms timeout here
        // made a loaded machine's handshake fail as `Interrupted`); only
        // the polling reads after it are short.
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let url = format!("ws://{signal}/signal?room={room}&id=0");
        let (ws, _) = tungstenite::client::client(url, stream).unwrap();
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let cfg = moss_mesh::Config::default();
        let node = moss_mesh::Node::new(
            cfg,
            moss_mesh::Identity::from_seed([7; 32]),
            mesh,
            Some(&psk),
            [8; 32],
            Duration::ZERO,
        )
        .unwrap();
        Self {
            ep: Endpoint::new("0".into(), vec![local]),
            node,
            sock,
            local,
            ws,
            origin: Instant::now(),
            opened: 0,
            closed: 0,
        }
    }

    /// One round: signal in, UDP in, timers, and every output moved on.
    fn turn(&mut self) {
        let now = Instant::now();
        let t = now - self.origin;
        match self.ws.read() {
            Ok(tungstenite::Message::Text(text)) => self.ep.handle_signal(now, 0, text.as_str()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => panic!("signal connection failed: {e}"),
        }
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            self.ep.handle_receive(now, from, self.local, &buf[..n]);
        }
        if self.ep.poll_timeout().is_some_and(|d| d <= now) {
            self.ep.handle_timeout(now);
        }
        if self.node.poll_timeout() <= t {
            self.node.handle(t, moss_mesh::Input::Timeout);
        }
        while let Some(o) = self.ep.poll_output() {
            match o {
                Output::Transmit { to, bytes, .. } => {
                    let _ = self.sock.send_to(&bytes, to);
                }
                Output::Signal { text, .. } => {
                    self.ws.send(tungstenite::Message::text(text)).unwrap();
                }
                Output::Opened { channel, offerer } => {
                    self.opened += 1;
                    assert!(offerer, "id 0 offers");
                    self.node.connect_path(moss_mesh::Path::Channel(channel));
                }
                Output::Datagram { channel, mut bytes } => self.node.handle(
                    t,
                    moss_mesh::Input::Datagram {
                        from: moss_mesh::Path::Channel(channel),
                        bytes: &mut bytes,
                    },
                ),
                Output::Junk { .. } => {}
                Output::Closed { .. } => self.closed += 1,
            }
        }
        while let Some(tx) = self.node.poll_transmit() {
            if let moss_mesh::Path::Channel(c) = tx.to {
                self.ep.send(c, &tx.bytes);
            }
        }
        while self.node.poll_event().is_some() {}
    }
}

#[test]
fn a_wrong_psk_peer_gets_a_link_and_no_session_and_the_link_is_closed() {
    let signal = signal_server();
    let psk = [1u8; 32];
    let a = Node::builder("rtc-psk")
        .psk(psk)
        .config_json(&offline(signal.addr()))
        .unwrap()
        .start()
        .unwrap();
    let keys = moss_crypto::MeshKeys::derive("rtc-psk", Some(&psk));
    let room: String = keys.infohash.iter().map(|b| format!("{b:02x}")).collect();
    let mut rogue = Rogue::join(signal.addr(), &room, "rtc-psk", [2u8; 32]);
    let started = Instant::now();
    let deadline = started + WAIT;
    while rogue.closed == 0 {
        assert!(
            Instant::now() < deadline,
            "the link was not closed: rogue opened {}, node {:?}",
            rogue.opened,
            a.webrtc_stats()
        );
        rogue.turn();
    }
    let closed_after = started.elapsed();
    assert_eq!(rogue.opened, 1, "the DataChannel itself opened");
    let n = rogue.node.stats();
    assert!(n.handshakes_initiated > 0, "the rogue dialled: {n:?}");
    assert_eq!(n.handshakes_completed, 0, "and no session formed: {n:?}");
    until("the node counted the link closed", || {
        let w = a.webrtc_stats().unwrap();
        w.links_open == 0 && w.links_no_session == 1
    });
    let w = a.webrtc_stats().unwrap();
    assert_eq!(w.links_opened, 1, "{w:?}");
    assert_eq!(w.links_session_ended, 0, "{w:?}");
    assert_eq!(a.peer_count(), 0);
    // Well before ICE or the 20 s setup bound could have ended it: within
    // the node's handshake timeout (5 s) plus the 2 s slack, plus setup.
    eprintln!("link closed {closed_after:?} after the rogue joined");
}

#[test]
fn ipv6_host_candidates_carry_a_session() {
    if UdpSocket::bind("[::1]:0").is_err() {
        return skip("no IPv6 loopback (::1) here");
    }
    let signal = signal_server();
    let url = format!("ws://{}", signal.addr());
    let v6 = config(&url, r#""ice_ips": ["::1"]"#);
    let a = Node::builder("rtc-v6")
        .config_json(&v6)
        .unwrap()
        .start()
        .unwrap();
    let b = Node::builder("rtc-v6")
        .config_json(&v6)
        .unwrap()
        .start()
        .unwrap();
    exchange(&a, &b);
}

/// A self-signed certificate for 127.0.0.1 and its key.
fn self_signed() -> (
    openssl::pkey::PKey<openssl::pkey::Private>,
    openssl::x509::X509,
) {
    use openssl::x509::{extension::SubjectAlternativeName, X509NameBuilder, X509};
    use openssl::{asn1::Asn1Time, bn::BigNum, ec, hash::MessageDigest, nid::Nid, pkey::PKey};
    let group = ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(ec::EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "moss-signal test").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (key, b.build())
}

/// A TLS front for the signal server at `backend` (what a reverse proxy
/// does in front of `moss-signal`): one thread per connection moving
/// bytes both ways. Returns its address and a PEM file of its
/// certificate (the CA to trust).
fn tls_front(backend: SocketAddr) -> (SocketAddr, std::path::PathBuf) {
    use openssl::ssl::{SslAcceptor, SslMethod};
    use std::io::{ErrorKind, Read, Write};
    let (key, cert) = self_signed();
    let mut acc = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    acc.set_private_key(&key).unwrap();
    acc.set_certificate(&cert).unwrap();
    let acc = std::sync::Arc::new(acc.build());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let acc = acc.clone();
            std::thread::spawn(move || {
                let Ok(mut tls) = acc.accept(tcp) else { return };
                let Ok(mut back) = TcpStream::connect(backend) else {
                    return;
                };
                let tick = Some(Duration::from_millis(2));
                tls.get_ref().set_read_timeout(tick).unwrap();
                back.set_read_timeout(tick).unwrap();
                let mut buf = [0u8; 16 * 1024];
                let idle = |e: &std::io::Error| {
                    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                };
                loop {
                    match tls.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if back.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(e) if idle(&e) => {}
                        Err(_) => return,
                    }
                    match back.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                        Err(e) if idle(&e) => {}
                        Err(_) => return,
                    }
                }
            });
        }
    });
    let dir = std::env::temp_dir().join(format!("moss-webrtc-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cert.to_pem().unwrap()).unwrap();
    (addr, ca)
}

#[test]
fn wss_signal_servers_are_joined_over_tls_and_their_certificate_checked() {
    let signal = signal_server();
    let (front, ca) = tls_front(signal.addr());
    let url = format!("wss://{front}");
    let trusting = config(
        &url,
        &format!(
            r#""ice_ips": ["127.0.0.1"], "signal_ca": "{}""#,
            ca.display()
        ),
    );
    let a = Node::builder("rtc-wss")
        .config_json(&trusting)
        .unwrap()
        .start()
        .unwrap();
    let b = Node::builder("rtc-wss")
        .config_json(&trusting)
        .unwrap()
        .start()
        .unwrap();
    exchange(&a, &b);
    for n in [&a, &b] {
        assert_eq!(n.webrtc_stats().unwrap().signal_connected, 1);
    }
    // Without the CA the self-signed certificate is refused: no room.
    let wary = config(&url, r#""ice_ips": ["127.0.0.1"]"#);
    let c = Node::builder("rtc-wss")
        .config_json(&wary)
        .unwrap()
        .start()
        .unwrap();
    until("c's TLS handshake failed", || {
        c.webrtc_stats().unwrap().signal_failed >= 1
    });
    let w = c.webrtc_stats().unwrap();
    assert_eq!(w.signal_connected, 0, "{w:?}");
    assert_eq!(w.links_opened, 0, "{w:?}");
    // A CA file that is not there is an error naming the field.
    let missing = config(&url, r#""signal_ca": "/nonexistent/moss-ca.pem""#);
    let e = Node::builder("rtc-wss")
        .config_json(&missing)
        .unwrap()
        .start()
        .err()
        .expect("a missing CA file fails the start")
        .to_string();
    assert!(e.contains("webrtc.signal_ca"), "{e}");
    let _ = std::fs::remove_dir_all(ca.parent().unwrap());
}

/// A real coturn (`turnserver -S`: STUN only) on a loopback port.
struct Coturn {
    child: std::process::Child,
    addr: SocketAddr,
    db: std::path::PathBuf,
}

impl Coturn {
    fn start() -> Option<Self> {
        let bin = ["/usr/bin/turnserver", "/usr/sbin/turnserver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let db = std::env::temp_dir().join(format!("moss-webrtc-turndb-{}", std::process::id()));
        let child = std::process::Command::new(bin)
            .args(["-n", "-S", "--no-cli", "--no-tls", "--no-dtls", "--no-auth"])
            .args([
                "--listening-ip=127.0.0.1",
                &format!("--listening-port={port}"),
            ])
            .arg(format!("--userdb={}", db.display()))
            .args(["--log-file=stdout", "--simple-log"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let c = Self { child, addr, db };
        c.wait_ready();
        Some(c)
    }

    /// Until a Binding request of ours is answered (bounded).
    fn wait_ready(&self) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut req = vec![0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        req.extend_from_slice(&[5; 12]);
        let mut buf = [0u8; 512];
        until("coturn answers", || {
            s.send_to(&req, self.addr).unwrap();
            matches!(s.recv_from(&mut buf), Ok((n, _)) if n >= 20 && buf[..2] == [1, 1])
        });
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.db);
    }
}

#[test]
fn stun_servers_give_a_reflexive_address_and_links_still_form() {
    let Some(stun) = Coturn::start() else {
        return skip("no coturn (turnserver) here: apt-get install coturn");
    };
    // A second server that never answers is given up, counted, harmless.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let signal = signal_server();
    let url = format!("ws://{}", signal.addr());
    let with_stun = config(
        &url,
        &format!(
            r#""ice_ips": ["127.0.0.1"], "stun": ["{}", "{}"]"#,
            stun.addr,
            dead.local_addr().unwrap()
        ),
    );
    let a = Node::builder("rtc-stun")
        .config_json(&with_stun)
        .unwrap()
        .start()
        .unwrap();
    until("a's STUN bindings ended", || {
        let w = a.webrtc_stats().unwrap();
        w.stun_mapped + w.stun_failed == 2
    });
    let w = a.webrtc_stats().unwrap();
    assert_eq!((w.stun_mapped, w.stun_failed), (1, 1), "{w:?}");
    let b = node("rtc-stun", signal.addr());
    exchange(&a, &b);
    drop(dead);
}
