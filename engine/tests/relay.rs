//! The relay data plane on engine shards: a real engine node (every
//! backend, 1 and 2 shards) is promoted to supernode, two sans-IO ends on
//! their own loopback sockets meet through it by the protocol, and pub/sub
//! goes both ways through its shards (the core thread never sees the ends'
//! data). The supernode reports event 3 to the host.

mod common;

use common::backends;
use moss::Node;
use moss_mesh::{Identity, Node as Core, Path};
use std::net::UdpSocket;
use std::time::{Duration, Instant};

const MESH: &str = "relay-test";

struct End {
    core: Core,
    sock: UdpSocket,
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
        Self { core, sock }
    }

    fn pump(&mut self, now: Duration) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.sock.recv_from(&mut buf) {
            self.core.handle_datagram(now, from, &mut buf[..n]);
        }
        self.core.handle_timeout(now);
        while let Some(t) = self.core.poll_transmit() {
            if let Some(to) = t.to.udp() {
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
