//! Sessions on host-owned channels (`Path::Channel`): what a browser peer's
//! WebRTC DataChannel will be. The "host" here is the test moving datagrams
//! between two nodes' channels in memory: a handshake and pub/sub run over
//! them with no socket address anywhere.

use moss_mesh::{Config, Event, Identity, Input, Node, Path, Transmit};
use std::time::Duration;

fn node(i: u8) -> Node {
    Node::new(
        Config::default(),
        Identity::from_seed([i; 32]),
        "channel-test",
        None,
        [i.wrapping_add(40); 32],
        Duration::ZERO,
    )
    .unwrap()
}

/// Node `a` reaches `b` on its channel `A_TO_B`; `b` hears `a` on its
/// channel `B_TO_A`.
const A_TO_B: Path = Path::Channel(1);
const B_TO_A: Path = Path::Channel(7);

/// The host's part: everything `src` sends (always on its channel `out`)
/// arrives at `dst` on `dst`'s channel `arrives_on`. True if anything moved.
fn carry(src: &mut Node, dst: &mut Node, out: Path, arrives_on: Path, now: Duration) -> bool {
    let sent: Vec<Transmit> = std::iter::from_fn(|| src.poll_transmit()).collect();
    let moved = !sent.is_empty();
    for mut t in sent {
        assert_eq!(
            t.to, out,
            "a node answers on the channel it heard its peer on"
        );
        let input = Input::Datagram {
            from: arrives_on,
            bytes: &mut t.bytes,
        };
        dst.handle(now, input);
    }
    moved
}

struct Pair {
    a: Node,
    b: Node,
    now: Duration,
    events: (Vec<Event>, Vec<Event>),
}

impl Pair {
    /// Moves every queued datagram across its channel; true if any moved.
    fn step(&mut self) -> bool {
        let moved = carry(&mut self.a, &mut self.b, A_TO_B, B_TO_A, self.now)
            | carry(&mut self.b, &mut self.a, B_TO_A, A_TO_B, self.now);
        self.events
            .0
            .extend(std::iter::from_fn(|| self.a.poll_event()));
        self.events
            .1
            .extend(std::iter::from_fn(|| self.b.poll_event()));
        moved
    }

    /// Steps until no datagram is queued, advancing the clock between
    /// rounds so timers run (bounded).
    fn run_until_idle(&mut self) {
        for _ in 0..1000 {
            if !self.step() {
                return;
            }
            self.now += Duration::from_millis(5);
            self.a.handle(self.now, Input::Timeout);
            self.b.handle(self.now, Input::Timeout);
        }
        panic!("the channel never went quiet");
    }
}

#[test]
fn handshake_and_pubsub_run_over_host_channels() {
    let mut p = Pair {
        a: node(1),
        b: node(2),
        now: Duration::ZERO,
        events: (Vec::new(), Vec::new()),
    };
    p.b.subscribe("chat");
    p.a.connect_path(A_TO_B);
    p.run_until_idle();
    let (pa, pb) = (p.a.public_key(), p.b.public_key());
    assert!(p.events.0.iter().any(
        |e| matches!(e, Event::PeerConnected { peer, addr } if *peer == pb && *addr == A_TO_B)
    ));
    assert!(p.events.1.iter().any(
        |e| matches!(e, Event::PeerConnected { peer, addr } if *peer == pa && *addr == B_TO_A)
    ));
    let peers = p.a.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].addr, A_TO_B);
    assert_eq!(
        peers[0].observed, None,
        "a channel has no address to observe"
    );
    assert_eq!(peers[0].topics, ["chat"]);

    let now = p.now;
    p.a.publish(now, "chat", b"over a channel").unwrap();
    p.run_until_idle();
    let got: Vec<_> = p
        .events
        .1
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.topic().to_owned(), m.data().to_vec(), m.from)),
            _ => None,
        })
        .collect();
    assert_eq!(got, [("chat".to_owned(), b"over a channel".to_vec(), pa)]);
    assert_eq!(p.b.stats().drops.total(), 0);
}

#[test]
fn a_closed_channel_ends_its_session_at_once() {
    let mut p = Pair {
        a: node(1),
        b: node(2),
        now: Duration::ZERO,
        events: (Vec::new(), Vec::new()),
    };
    p.a.connect_path(A_TO_B);
    p.run_until_idle();
    assert_eq!(p.a.peer_count(), 1);
    p.a.close_path(Path::Channel(99));
    assert_eq!(
        p.a.peer_count(),
        1,
        "another channel closing changes nothing"
    );
    p.a.close_path(A_TO_B);
    assert_eq!((p.a.peer_count(), p.a.session_count()), (0, 0));
    let pb = p.b.public_key();
    assert!(matches!(
        p.a.poll_event(),
        Some(Event::PeerDisconnected { peer, addr, reason: moss_mesh::DisconnectReason::Closed })
            if peer == pb && addr == A_TO_B
    ));
    assert!(
        p.a.poll_transmit().is_none(),
        "nothing is sent on a closed channel"
    );
}
