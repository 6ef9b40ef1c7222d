//! The relay data plane on engine shards: a real engine node (every
//! backend, 1 and 2 shards) is promoted to supernode, two sans-IO ends on
//! their own loopback sockets meet through it by the protocol, and pub/sub
//! goes both ways through its shards (the core thread never sees the ends'
//! data). The supernode reports event 3 to the host. And an engine node
//! relayed to a sans-IO end whose direct path to it is cut reports event 7
//! to its host when the cut heals and the session moves to the direct
//! path; its events 1 and 2 and its mesh info name a relayed peer's
//! address and supernode.

mod common;

use common::backends;
use moss::{Event, Node};
use moss_mesh::{Identity, Node as Core, Path};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const MESH: &str = "relay-test";

struct End {
    core: Core,
    sock: UdpSocket,
    /// The direct path to this address is cut: what comes from it is
    /// dropped, and nothing is sent to it.
    cut: Option<SocketAddr>,
}

impl End {
    fn new(seed: u8) -> Self {
        let mut cfg = moss_mesh::Config::default();
        cfg.nat.supernode_min_uptime_sec = 1;
        let core = Core::new(
            cfg,
            Identity::from_seed([seed; 32]),
            MESH,
            None,
            [seed; 32],
            Duration::ZERO,
        )
        .unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_nonblocking(true).unwrap();
        Self {
            core,
            sock,
            cut: None,
        }
    }

    fn pump(&mut self, now: Duration) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            if self.cut != Some(from) {
                self.core.handle_datagram(now, from, &mut buf[..n]);
            }
        }
        self.core.handle_timeout(now);
        while let Some(t) = self.core.poll_transmit() {
            if let Some(to) = t.to.udp().filter(|&to| self.cut != Some(to)) {
                let _ = self.sock.send_to(&t.bytes, to);
            }
        }
    }
}

/// Pumps both ends until `done` (at most 20 s).
fn pump_until(ends: &mut [End; 2], t0: Instant, mut done: impl FnMut(&[End; 2]) -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        for e in ends.iter_mut() {
            e.pump(t0.elapsed());
        }
        if done(ends) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn supernode(backend: &str, shards: u32) -> Node {
    let mut c = common::cfg(backend, Some(shards));
    c.nat.supernode_min_uptime_sec = 1;
    Node::builder(MESH)
        .config(c)
        .bind("127.0.0.1:0".parse().unwrap())
        .start()
        .unwrap()
}

#[test]
fn ends_exchange_pubsub_through_a_sharded_supernode_on_every_backend() {
    for b in backends() {
        for shards in [1, 2] {
            let mut s = supernode(b, shards);
            let events = s.events().clone();
            let t0 = Instant::now();
            let mut ends = [End::new(21), End::new(22)];
            for e in ends.iter_mut() {
                e.core.add_static_peer(s.local_addr());
            }
            let sid = s.public_key();
            assert!(
                pump_until(&mut ends, t0, |e| e.iter().all(|x| x
                    .core
                    .relay_info()
                    .known_supernodes
                    .contains(&sid))),
                "{b}/{shards}: promoted and announced"
            );
            assert!(s.mesh_info().unwrap().supernode_ready);
            let (ida, idb) = (ends[0].core.public_key(), ends[1].core.public_key());
            assert!(ends[0].core.connect_via_relay(idb));
            assert!(
                pump_until(&mut ends, t0, |e| e[0].core.relayed_peers() == vec![idb]
                    && e[1].core.relayed_peers() == vec![ida]),
                "{b}/{shards}: relayed session"
            );
            let relay_path = |e: &End, peer| {
                e.core.peers().into_iter().any(|p| {
                    p.peer == peer && matches!(p.addr, Path::Relay { via, .. } if via == sid)
                })
            };
            assert!(relay_path(&ends[0], idb) && relay_path(&ends[1], ida));
            for e in ends.iter_mut() {
                e.core.subscribe("chat");
            }
            assert!(pump_until(&mut ends, t0, |e| e[0]
                .core
                .peers()
                .iter()
                .any(|p| p.peer == idb && p.topics.iter().any(|t| t == "chat"))
                && e[1].core.peers().iter().any(
                    |p| p.peer == ida && p.topics.iter().any(|t| t == "chat")
                )));
            let now = t0.elapsed();
            ends[0]
                .core
                .publish(now, "chat", b"via the shards a")
                .unwrap();
            ends[1]
                .core
                .publish(now, "chat", b"via the shards b")
                .unwrap();
            let mut got = [false, false];
            let deadline = Instant::now() + Duration::from_secs(20);
            while got != [true, true] && Instant::now() < deadline {
                for (i, e) in ends.iter_mut().enumerate() {
                    e.pump(t0.elapsed());
                    while let Some(ev) = e.core.poll_event() {
                        if let moss_mesh::Event::Message(m) = ev {
                            got[i] |= m.data().starts_with(b"via the shards");
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(got, [true, true], "{b}/{shards}: both directions");
            let st = s.stats().unwrap();
            assert!(
                st.counters.relayed_datagrams > 0,
                "{b}/{shards}: relayed on the shards"
            );
            s.stop();
            let mut seen = Vec::new();
            while let Ok(e) = events.try_recv() {
                seen.push(e.id());
            }
            assert!(seen.contains(&3), "{b}/{shards}: event 3 {seen:?}");
        }
    }
}

/// What a pumped end and the engine node beside it delivered.
#[derive(Default)]
struct Heard {
    /// Messages the engine node's subscription got.
    at_a: Vec<Vec<u8>>,
    /// Messages the sans-IO end's node delivered.
    at_b: Vec<Vec<u8>>,
    /// The engine node's host events.
    events: Vec<Event>,
}

/// Pumps `b` until `done` (at most 20 s), collecting what `a`'s
/// subscription, `a`'s host events and `b` deliver into `heard`.
fn pump_beside(
    b: &mut End,
    t0: Instant,
    a: (&moss::Subscription, &crossbeam_channel::Receiver<Event>),
    heard: &mut Heard,
    mut done: impl FnMut(&mut End, &Heard) -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        b.pump(t0.elapsed());
        while let Some(ev) = b.core.poll_event() {
            if let moss_mesh::Event::Message(m) = ev {
                heard.at_b.push(m.data().to_vec());
            }
        }
        while let Some(m) = a.0.try_recv() {
            heard.at_a.push(m.data().to_vec());
        }
        while let Ok(e) = a.1.try_recv() {
            heard.events.push(e);
        }
        if done(b, heard) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

/// A publishes "`tag` a" and B "`tag` b" on `chat`; true once each heard
/// the other's (within [`pump_beside`]'s bound). A publishes only once
/// its stats show B on `chat`: a message published before the publisher
/// knows any subscriber reaches one only through gossip, within the
/// message cache's few heartbeats (this failed CI once under load).
fn exchange(
    a: &Node,
    b: &mut End,
    t0: Instant,
    ax: (&moss::Subscription, &crossbeam_channel::Receiver<Event>),
    heard: &mut Heard,
    tag: &str,
) -> bool {
    let b_hex = b.core.public_key().to_hex();
    let a_knows_b = pump_beside(b, t0, ax, heard, |_, _| {
        a.stats().is_ok_and(|st| {
            st.peers
                .iter()
                .any(|p| p.peer_id == b_hex && p.topics.iter().any(|t| t == "chat"))
        })
    });
    if !a_knows_b {
        eprintln!("{tag}: A never listed B on chat");
        return false;
    }
    let (from_a, from_b) = (
        format!("{tag} a").into_bytes(),
        format!("{tag} b").into_bytes(),
    );
    a.publish("chat", &from_a).unwrap();
    b.core.publish(t0.elapsed(), "chat", &from_b).unwrap();
    let both = pump_beside(b, t0, ax, heard, |_, h| {
        h.at_a.contains(&from_b) && h.at_b.contains(&from_a)
    });
    if !both {
        let (at_a, at_b) = (heard.at_a.contains(&from_b), heard.at_b.contains(&from_a));
        eprintln!("{tag}: A heard B's {at_a}, B heard A's {at_b}");
    }
    both
}

/// Engine node A and sans-IO end B, both connected to an engine
/// supernode S, whose direct path is cut (B drops A's datagrams and sends
/// none to A's address), relayed through S.
struct Relayed {
    what: String,
    s: Node,
    a: Node,
    a_sub: moss::Subscription,
    a_events: crossbeam_channel::Receiver<Event>,
    b: End,
    t0: Instant,
    heard: Heard,
}

impl Relayed {
    /// Starts S and A on `backend` (A with `shards` shards), connects B
    /// to S with A's direct path cut, and has B ask S for a relay session
    /// until the pair is relayed at both ends and A's host heard event 1.
    fn new(backend: &str, shards: u32) -> Self {
        let what = format!("{backend}/{shards}");
        let s = supernode(backend, 1);
        let sid = s.public_key();
        let a = Node::builder(MESH)
            .config(common::cfg(backend, Some(shards)))
            .bind("127.0.0.1:0".parse().unwrap())
            .start()
            .unwrap();
        let a_id = a.public_key();
        let a_addr = a.local_addr();
        let a_events = a.events().clone();
        let a_sub = a.subscribe("chat").unwrap();
        a.connect(&s.local_addr().to_string()).unwrap();
        let t0 = Instant::now();
        let mut b = End::new(41);
        b.cut = Some(a_addr);
        let b_id = b.core.public_key();
        b.core.add_static_peer(s.local_addr());
        b.core.subscribe("chat");
        let mut heard = Heard::default();
        let ax = (&a_sub, &a_events);
        assert!(
            pump_beside(&mut b, t0, ax, &mut heard, |b, _| b
                .core
                .relay_info()
                .known_supernodes
                .contains(&sid)
                && s.peer_count() == 2),
            "{what}: supernode promoted, both ends connected"
        );
        // The supernode may not know A is relay-capable yet: B asks
        // again every 3 s until the pair is relayed.
        let mut asked: Option<Instant> = None;
        let relayed_at_a = |a: &Node| {
            a.mesh_info()
                .unwrap()
                .peers
                .iter()
                .any(|p| p.starts_with(&format!("relay:{sid}")))
        };
        assert!(
            pump_beside(&mut b, t0, ax, &mut heard, |b, _| {
                if b.core.relayed_peers() == vec![a_id] {
                    return relayed_at_a(&a);
                }
                if asked.is_none_or(|t| t.elapsed() >= Duration::from_secs(3)) {
                    asked = Some(Instant::now());
                    assert!(b.core.connect_via_relay(a_id), "{what}: a usable supernode");
                }
                false
            }),
            "{what}: relayed"
        );
        // Host events trail the snapshot that showed the relayed peer.
        let joined = |h: &Heard| {
            h.events
                .iter()
                .any(|e| matches!(e, Event::PeerJoined { peer, .. } if *peer == b_id))
        };
        assert!(
            pump_beside(&mut b, t0, ax, &mut heard, |_, h| joined(h)),
            "{what}: event 1 for B at A: {:?}",
            heard.events
        );
        Self {
            what,
            s,
            a,
            a_sub,
            a_events,
            b,
            t0,
            heard,
        }
    }

    /// [`pump_beside`] over this pair.
    fn pump(&mut self, done: impl FnMut(&mut End, &Heard) -> bool) -> bool {
        let ax = (&self.a_sub, &self.a_events);
        pump_beside(&mut self.b, self.t0, ax, &mut self.heard, done)
    }

    /// [`exchange`] over this pair.
    fn exchange(&mut self, tag: &str) -> bool {
        let ax = (&self.a_sub, &self.a_events);
        exchange(&self.a, &mut self.b, self.t0, ax, &mut self.heard, tag)
    }

    /// A's mesh info entry for B (A's one peer besides S): address, path
    /// kind, relay; the stats' entry for B must agree.
    fn a_sees_b(&self) -> Option<(String, String, Option<String>)> {
        let info = self.a.mesh_info().unwrap();
        let s_addr = self.s.local_addr().to_string();
        let i = info.peers.iter().position(|p| *p != s_addr)?;
        let b = (
            info.peers[i].clone(),
            info.paths[i].clone(),
            info.relays[i].clone(),
        );
        let b_hex = self.b.core.public_key().to_hex();
        let st = self.a.stats().unwrap();
        let stat = st.peers.iter().find(|p| p.peer_id == b_hex)?;
        assert_eq!(
            (stat.addr.clone(), stat.path.to_string(), stat.relay.clone()),
            b,
            "{}: stats and mesh info agree",
            self.what
        );
        Some(b)
    }
}

/// Runs `f` on a fresh [`Relayed`] pair for every backend, A with 1 and
/// 2 shards, and stops the nodes after.
fn each_relayed(mut f: impl FnMut(&mut Relayed)) {
    for backend in backends() {
        for shards in [1, 2] {
            let mut r = Relayed::new(backend, shards);
            f(&mut r);
            r.a.stop();
            r.s.stop();
        }
    }
}

/// Event 7 at host level: engine node A (every backend, 1 and 2 shards)
/// relayed to sans-IO end B ([`Relayed`]): A's events and mesh info name
/// the relay (event 1 carries B's address as the supernode sees it, the
/// path is `relayed` through S); pub/sub goes both ways through it. Then
/// the cut heals: the ends' direct probes get through, the session moves
/// to the direct path, A's host hears event 7 (`moss::Node::events`, its
/// detail naming B's address), A's path to B is `direct`, and pub/sub goes
/// on, direct, with no event 2 and one migration. (This failed before
/// session 9: a datagram the supernode forwarded after the migration moved
/// the session back to the supernode's address, where its sends were
/// dropped, and the relay's close then ended it with event 2.)
#[test]
fn a_relayed_engine_node_gaining_a_direct_path_reports_event_7() {
    each_relayed(|r| {
        let what = r.what.clone();
        let sid = r.s.public_key();
        let a_id = r.a.public_key();
        let a_addr = r.a.local_addr();
        let b_id = r.b.core.public_key();
        let b_addr = r.b.sock.local_addr().unwrap();
        let e1 = r.heard.events.iter().find_map(|e| match e {
            Event::PeerJoined { peer, addr } if *peer == b_id => Some(*addr),
            _ => None,
        });
        assert_eq!(e1, Some(b_addr), "{what}: event 1 names B's address");
        let (addr, path, relay) = r.a_sees_b().expect("B in A's mesh info");
        assert!(addr.starts_with(&format!("relay:{sid}")), "{what}: {addr}");
        assert_eq!(path, "relayed", "{what}");
        assert_eq!(relay, Some(sid.to_hex()), "{what}");
        // Pub/sub through the relay, both ways.
        let subscribed = |b: &End| {
            b.core
                .peers()
                .iter()
                .any(|p| p.peer == a_id && p.topics.iter().any(|t| t == "chat"))
        };
        assert!(
            r.pump(|b, _| subscribed(b)),
            "{what}: A's subscription reached B"
        );
        assert!(r.exchange("relayed"), "{what}: both ways through the relay");
        assert!(
            !r.heard.events.iter().any(|e| e.id() == 7),
            "{what}: no migration while the direct path is cut"
        );
        // The direct path heals.
        r.b.cut = None;
        let direct = Path::Udp(a_addr);
        assert!(
            r.pump(|b, h| {
                let b_direct = b
                    .core
                    .peers()
                    .iter()
                    .any(|p| p.peer == a_id && p.addr == direct);
                b_direct && h.events.iter().any(|e| e.id() == 7)
            }),
            "{what}: migrated, event 7 at A: {:?}",
            r.heard.events
        );
        let Some(e7) = r.heard.events.iter().find(|e| e.id() == 7) else {
            unreachable!("found above");
        };
        let Event::RelayMigrated { peer, from, to } = e7 else {
            panic!("{what}: event 7 is {e7:?}");
        };
        assert_eq!(*peer, b_id, "{what}");
        assert!(from.starts_with(&format!("relay:{sid}")), "{what}: {from}");
        assert_eq!(*to, b_addr.to_string(), "{what}");
        let detail = e7.detail_json();
        assert!(
            detail.contains(&format!("\"addr\":\"{b_addr}\"")),
            "{detail}"
        );
        assert_eq!(
            r.a_sees_b(),
            Some((b_addr.to_string(), "direct".into(), None)),
            "{what}: A's path to B is direct"
        );
        // Pub/sub goes on, direct.
        assert!(r.exchange("direct"), "{what}: both ways, direct");
        assert_eq!(
            r.a_sees_b(),
            Some((b_addr.to_string(), "direct".into(), None)),
            "{what}: still direct after the relay's close"
        );
        let migrations = r.heard.events.iter().filter(|e| e.id() == 7).count();
        assert_eq!(migrations, 1, "{what}: one migration");
        let left = r.heard.events.iter().filter(|e| e.id() == 2).count();
        assert_eq!(left, 0, "{what}: no event 2: {:?}", r.heard.events);
    });
}

/// Event 2 for a relayed peer names its address too: B, relayed to A
/// ([`Relayed`]), shuts down; A's host hears event 2 for B carrying B's
/// address as the supernode saw it (not `0.0.0.0:0`), and A's mesh info
/// no longer lists it.
#[test]
fn a_relayed_peer_leaving_reports_event_2_with_its_address() {
    each_relayed(|r| {
        let what = r.what.clone();
        let b_id = r.b.core.public_key();
        let b_addr = r.b.sock.local_addr().unwrap();
        r.b.core.shutdown();
        let now = r.t0.elapsed();
        r.b.pump(now);
        let left = |h: &Heard| {
            h.events.iter().find_map(|e| match e {
                Event::PeerLeft { peer, addr, .. } if *peer == b_id => Some(*addr),
                _ => None,
            })
        };
        assert!(
            r.pump(|_, h| left(h).is_some()),
            "{what}: event 2 for B: {:?}",
            r.heard.events
        );
        assert_eq!(left(&r.heard), Some(b_addr), "{what}: {:?}", r.heard.events);
        assert_eq!(r.a_sees_b(), None, "{what}: B gone from A's mesh info");
    });
}
