//! Two endpoints wired to each other in memory (signal envelopes relayed
//! as a `moss-signal` server would, `from` stamped; UDP datagrams handed
//! across), on a virtual clock: real ICE, DTLS and SCTP from str0m.

mod common;

use common::Wire;
use moss_webrtc::{Endpoint, Output};
use std::net::SocketAddr;
use std::time::Instant;

struct Pair {
    now: Instant,
    eps: [Endpoint; 2],
    addrs: [SocketAddr; 2],
    opened: [Vec<(u64, bool)>; 2],
    got: [Vec<(u64, Vec<u8>)>; 2],
    closed: [Vec<u64>; 2],
    /// While true, UDP between the two is lost (signal still crosses).
    cut: bool,
}

impl Wire for Pair {
    fn parts(&mut self) -> (&mut [Endpoint; 2], &mut Instant) {
        (&mut self.eps, &mut self.now)
    }
    fn carry(&mut self, i: usize, o: Output) {
        let j = 1 - i;
        match o {
            Output::Transmit { from, to, bytes } => {
                assert_eq!(from, self.addrs[i]);
                if to == self.addrs[j] && !self.cut {
                    self.eps[j].handle_receive(self.now, from, to, &bytes);
                }
            }
            Output::Signal { text, .. } => self.relay_signal(i, &text),
            Output::Opened { channel, offerer } => self.opened[i].push((channel, offerer)),
            Output::Datagram { channel, bytes } => self.got[i].push((channel, bytes)),
            Output::Junk { .. } => {}
            Output::Closed { channel } => self.closed[i].push(channel),
        }
    }
}

impl Pair {
    fn new() -> Self {
        let addrs: [SocketAddr; 2] = [
            "127.0.0.1:40001".parse().unwrap(),
            "127.0.0.1:40002".parse().unwrap(),
        ];
        Self {
            now: Instant::now(),
            eps: [
                Endpoint::new("aa".into(), vec![addrs[0]]),
                Endpoint::new("bb".into(), vec![addrs[1]]),
            ],
            addrs,
            opened: Default::default(),
            got: Default::default(),
            closed: Default::default(),
            cut: false,
        }
    }

    /// A pair that met in the room while no UDP crossed, driven until aa
    /// gave the link up (str0m's ICE, or the setup timeout at the
    /// latest); UDP still cut.
    fn first_link_failed() -> Self {
        let mut p = Self::new();
        p.cut = true;
        p.eps[0].handle_signal(p.now, 0, r#"{"type":"peers","peers":["bb"]}"#);
        p.eps[1].handle_signal(p.now, 0, r#"{"type":"join","from":"aa"}"#);
        p.drive(20_000, |p| p.eps[0].stats().links_failed > 0);
        p
    }

    /// [`common::drive`] on this pair.
    fn drive(&mut self, steps: usize, until: impl Fn(&Self) -> bool) {
        common::drive(self, steps, until);
    }
}

#[test]
fn the_smaller_id_offers_and_datagrams_cross_both_ways() {
    let mut p = Pair::new();
    // Both learn of each other as the server tells them.
    p.eps[0].handle_signal(p.now, 0, r#"{"type":"peers","peers":["bb"]}"#);
    p.eps[1].handle_signal(p.now, 0, r#"{"type":"join","from":"aa"}"#);
    p.drive(2000, |p| !p.opened[0].is_empty() && !p.opened[1].is_empty());
    assert_eq!(p.opened[0].len(), 1, "aa's channel opened");
    assert_eq!(p.opened[1].len(), 1, "bb's channel opened");
    assert!(p.opened[0][0].1, "aa (smaller id) offered");
    assert!(!p.opened[1][0].1, "bb answered");
    let (ca, cb) = (p.opened[0][0].0, p.opened[1][0].0);
    assert!(p.eps[0].send(ca, b"from aa"));
    assert!(p.eps[1].send(cb, &[7u8; 1200]));
    p.drive(2000, |p| !p.got[0].is_empty() && !p.got[1].is_empty());
    assert_eq!(p.got[1], vec![(cb, b"from aa".to_vec())]);
    assert_eq!(p.got[0], vec![(ca, vec![7u8; 1200])]);
    assert_eq!(p.eps[0].stats().links_open, 1);
    assert_eq!(p.eps[0].stats().links_opened, 1);
    // A channel that is not ours drops and counts.
    assert!(!p.eps[0].send(999, b"x"));
    assert_eq!(p.eps[0].stats().send_dropped, 1);
    // Closing one side is seen by the other.
    p.eps[0].close_all();
    p.drive(20_000, |p| !p.closed[1].is_empty());
    assert_eq!(p.closed[0], vec![ca]);
    assert_eq!(p.closed[1], vec![cb]);
}

#[test]
fn junk_signal_is_counted_and_a_bad_offer_fails_cleanly() {
    let mut p = Pair::new();
    let now = p.now;
    let ep = &mut p.eps[1];
    for junk in [
        "",
        "{",
        "[]",
        r#"{"type":"offer","from":"aa","data":{"sdp":"not sdp"}}"#,
    ] {
        ep.handle_signal(now, 0, junk);
    }
    ep.handle_signal(
        now,
        0,
        r#"{"type":"answer","from":"zz","data":{"sdp":"v=0"}}"#,
    );
    let s = ep.stats();
    assert_eq!(
        s.signal_junk, 4,
        "three undecodable envelopes and an unexpected answer"
    );
    assert_eq!(s.links_failed, 1, "the bad offer");
    assert_eq!(s.links_open, 0);
    // The larger id never offers.
    ep.handle_signal(now, 0, r#"{"type":"join","from":"aa"}"#);
    assert!(ep.poll_output().is_none());
    // Junk UDP is unmatched and counted.
    ep.handle_receive(now, p.addrs[0], p.addrs[1], &[0xff; 40]);
    assert_eq!(ep.stats().udp_unmatched, 1);
}

#[test]
fn a_link_closed_by_channel_is_seen_closed_by_the_peer_at_once() {
    let mut p = Pair::new();
    p.eps[0].handle_signal(p.now, 0, r#"{"type":"peers","peers":["bb"]}"#);
    p.eps[1].handle_signal(p.now, 0, r#"{"type":"join","from":"aa"}"#);
    p.drive(2000, |p| !p.opened[0].is_empty() && !p.opened[1].is_empty());
    let (ca, cb) = (p.opened[0][0].0, p.opened[1][0].0);
    let opened_at = p.now;
    assert!(!p.eps[1].close_channel(cb + 100), "no such channel");
    assert!(p.eps[1].close_channel(cb));
    assert_eq!(p.eps[1].stats().links_open, 0);
    // SCTP shutdown and DTLS close_notify reach the other side: it closes
    // without waiting for ICE consent to run out.
    p.drive(200, |p| !p.closed[0].is_empty());
    assert_eq!(p.closed[0], vec![ca]);
    assert_eq!(p.closed[1], vec![cb]);
    assert!(
        p.now.duration_since(opened_at) < std::time::Duration::from_secs(5),
        "closed on the shutdown, not on a consent timeout ({:?} of virtual time)",
        p.now.duration_since(opened_at)
    );
}

#[test]
fn a_link_that_failed_is_offered_again_while_the_peer_stays_in_the_room() {
    use moss_webrtc::{RETRY_MIN, SETUP_TIMEOUT};
    let t0 = Instant::now();
    let mut p = Pair::first_link_failed();
    assert!(p.now <= t0 + SETUP_TIMEOUT + std::time::Duration::from_secs(1));
    assert!(p.opened[0].is_empty() && p.opened[1].is_empty());
    assert_eq!(p.eps[0].stats().links_retried, 0);
    // The path heals; nobody rejoins the room, yet aa offers again.
    p.cut = false;
    let failed_at = p.now;
    p.drive(20_000, |p| {
        !p.opened[0].is_empty() && !p.opened[1].is_empty()
    });
    assert_eq!(p.opened[0].len(), 1, "aa's second link opened");
    assert_eq!(p.opened[1].len(), 1, "bb answered the second offer");
    assert!(p.opened[0][0].1, "aa offered again, bb never offers");
    assert_eq!(p.eps[0].stats().links_retried, 1);
    assert_eq!(p.eps[1].stats().links_retried, 0);
    assert!(p.now >= failed_at + RETRY_MIN, "after the backoff");
    let (ca, cb) = (p.opened[0][0].0, p.opened[1][0].0);
    assert!(p.eps[0].send(ca, b"again"));
    p.drive(2000, |p| !p.got[1].is_empty());
    assert_eq!(p.got[1], vec![(cb, b"again".to_vec())]);
}

#[test]
fn a_peer_that_left_the_room_is_not_offered_again() {
    let mut p = Pair::first_link_failed();
    p.eps[0].handle_signal(p.now, 0, r#"{"type":"leave","from":"bb"}"#);
    p.cut = false;
    p.drive(20_000, |_| false);
    assert_eq!(p.eps[0].stats().links_retried, 0);
    assert!(p.opened[0].is_empty());
    assert_eq!(p.eps[0].poll_timeout(), None, "nothing left to do");
}
