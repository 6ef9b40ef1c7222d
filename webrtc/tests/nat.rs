//! Two endpoints, each behind a simulated port-restricted cone NAT
//! (endpoint-independent mapping, address-and-port-dependent filtering:
//! Linux masquerade, natlab's `port_restricted_cone`), on a virtual clock
//! with real ICE, DTLS and SCTP from str0m. Host candidates are private
//! and unroutable; only the reflexive (public) addresses carry packets,
//! and a NAT lets a packet in only from an address its own side has sent
//! to. This is why `webrtc/scripts/nat-lab.sh`'s port-restricted pair did
//! not link: an SDP made before its side's STUN answer came back carries
//! no reflexive candidate, so the other side never sends the check that
//! would open its own NAT, and every check through it is filtered.

mod common;

use common::Wire;
use moss_webrtc::{Endpoint, Output, MAX_HELD};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Instant;

struct Lab {
    now: Instant,
    eps: [Endpoint; 2],
    host: [SocketAddr; 2],
    public: [SocketAddr; 2],
    /// The remote addresses NAT `i` has sent to (its filter's holes).
    holes: [HashSet<SocketAddr>; 2],
    opened: [Vec<u64>; 2],
    /// Packets NAT `i` filtered on the way in.
    filtered: [u64; 2],
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("an address")
}

impl Wire for Lab {
    fn parts(&mut self) -> (&mut [Endpoint; 2], &mut Instant) {
        (&mut self.eps, &mut self.now)
    }
    /// Signal goes through the server; UDP through both NATs.
    fn carry(&mut self, i: usize, o: Output) {
        let j = 1 - i;
        match o {
            Output::Transmit { from, to, bytes } => {
                assert_eq!(from, self.host[i], "sent from the ICE socket");
                // Anything but the other NAT's public address is a
                // private, unroutable one.
                if to != self.public[j] {
                    return;
                }
                self.holes[i].insert(to);
                if self.holes[j].contains(&self.public[i]) {
                    let (src, dst) = (self.public[i], self.host[j]);
                    self.eps[j].handle_receive(self.now, src, dst, &bytes);
                } else {
                    self.filtered[j] += 1;
                }
            }
            Output::Signal { text, .. } => self.relay_signal(i, &text),
            Output::Opened { channel, .. } => self.opened[i].push(channel),
            _ => {}
        }
    }
}

impl Lab {
    fn new() -> Self {
        let host = [addr("192.168.3.2:50000"), addr("192.168.13.2:50000")];
        Self {
            now: Instant::now(),
            eps: [
                Endpoint::new("aa".into(), vec![host[0]]),
                Endpoint::new("bb".into(), vec![host[1]]),
            ],
            host,
            // Masquerade keeps the source port when it is free.
            public: [addr("203.0.113.103:50000"), addr("203.0.113.113:50000")],
            holes: Default::default(),
            opened: Default::default(),
            filtered: [0; 2],
        }
    }

    /// What a STUN server would tell side `i`.
    fn learn_reflexive(&mut self, i: usize) {
        assert!(self.eps[i].add_reflexive(self.public[i], self.host[i]));
    }

    /// Both sides hear of each other from the signal server.
    fn meet(&mut self) {
        self.eps[0].handle_signal(self.now, 0, r#"{"type":"peers","peers":["bb"]}"#);
        self.eps[1].handle_signal(self.now, 0, r#"{"type":"join","from":"aa"}"#);
    }

    /// [`common::drive`] on this lab.
    fn drive(&mut self, steps: usize, until: impl Fn(&Self) -> bool) {
        common::drive(self, steps, until);
    }

    fn both_open(&self) -> bool {
        !self.opened[0].is_empty() && !self.opened[1].is_empty()
    }
}

#[test]
fn reflexive_candidates_on_both_sides_cross_two_port_restricted_nats() {
    let mut lab = Lab::new();
    lab.learn_reflexive(0);
    lab.learn_reflexive(1);
    lab.meet();
    lab.drive(20_000, Lab::both_open);
    assert!(lab.both_open(), "linked through both NATs");
    // The first checks met a closed filter: the NATs were real obstacles.
    assert!(
        lab.filtered.iter().sum::<u64>() > 0,
        "some checks were filtered"
    );
    let (ca, cb) = (lab.opened[0][0], lab.opened[1][0]);
    assert!(lab.eps[0].send(ca, b"through two NATs"));
    assert!(lab.eps[1].send(cb, b"and back"));
}

#[test]
fn an_sdp_made_before_its_side_knew_its_reflexive_address_never_links() {
    // The offerer's STUN answer is not in yet when it hears of the peer:
    // its offer carries the host candidate only.
    let mut lab = Lab::new();
    lab.learn_reflexive(1);
    lab.meet();
    lab.learn_reflexive(0);
    lab.drive(200_000, |l| l.eps[0].stats().links_failed > 0);
    assert!(
        lab.opened[0].is_empty() && lab.opened[1].is_empty(),
        "no link"
    );
    assert_eq!(
        lab.eps[0].stats().links_failed,
        1,
        "given up at the setup timeout"
    );
    assert!(
        lab.filtered[1] > 0,
        "the offerer's checks died at the answerer's NAT"
    );
    assert_eq!(
        lab.filtered[0], 0,
        "the answerer never learnt where to send"
    );
}

#[test]
fn links_held_while_gathering_carry_the_reflexive_candidates_and_link() {
    let mut lab = Lab::new();
    for ep in &mut lab.eps {
        ep.hold_links(true, lab.now);
        assert!(ep.holding());
    }
    lab.meet();
    assert!(lab.eps[0].poll_output().is_none(), "no offer while held");
    lab.learn_reflexive(0);
    lab.learn_reflexive(1);
    for ep in &mut lab.eps {
        ep.hold_links(false, lab.now);
        assert!(!ep.holding());
    }
    lab.drive(20_000, Lab::both_open);
    assert!(lab.both_open(), "the held offer linked through both NATs");
}

#[test]
fn envelopes_beyond_the_hold_queue_are_dropped_and_counted() {
    let mut lab = Lab::new();
    let now = lab.now;
    let ep = &mut lab.eps[0];
    ep.hold_links(true, now);
    for _ in 0..MAX_HELD + 3 {
        ep.handle_signal(now, 0, "not an envelope");
    }
    assert_eq!(ep.stats().signal_junk, 3, "the ones beyond the queue");
    ep.hold_links(false, now);
    assert_eq!(
        ep.stats().signal_junk,
        MAX_HELD as u64 + 3,
        "the held ones are judged when released"
    );
}
