//! Hostile and broken trackers. The misbehaving servers here are small
//! in-test stand-ins on 127.0.0.1 (no real tracker sends these bytes on
//! purpose); the well-behaved tracker is the real `bittorrent-tracker`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::*;
use moss_discovery::{Discovery, DiscoveryEvent};

/// A UDP "tracker" answering each request with whatever `reply` returns.
struct FakeUdp {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    v6: bool,
}

impl FakeUdp {
    fn start(reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> FakeUdp {
        Self::start_on("127.0.0.1:0", reply)
    }

    fn start_on(bind: &str, reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static) -> FakeUdp {
        let socket = UdpSocket::bind(bind).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let port = socket.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    for datagram in reply(&buf[..n]) {
                        let _ = socket.send_to(&datagram, from);
                    }
                }
            }
        });
        FakeUdp {
            port,
            stop,
            thread: Some(thread),
            v6: bind.starts_with('['),
        }
    }

    fn url(&self) -> String {
        let host = if self.v6 { "[::1]" } else { "127.0.0.1" };
        format!("udp://{host}:{}/announce", self.port)
    }
}

impl Drop for FakeUdp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP "tracker": `respond` = Some(bytes) answers every request with
/// them; None accepts connections and never answers (a hanging tracker).
struct FakeHttp {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHttp {
    fn start(respond: Option<Vec<u8>>) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut stream, _)) => match &respond {
                        Some(bytes) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                            let mut req = Vec::new();
                            let mut buf = [0u8; 1024];
                            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                                match stream.read(&mut buf) {
                                    Ok(0) | Err(_) => break,
                                    Ok(n) => req.extend_from_slice(&buf[..n]),
                                }
                            }
                            let _ = stream.write_all(bytes);
                        }
                        None => held.push(stream),
                    },
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        FakeHttp {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tx(req: &[u8]) -> [u8; 4] {
    [req[12], req[13], req[14], req[15]]
}

fn udp_msg(action: u32, tx: [u8; 4], rest: &[u8]) -> Vec<u8> {
    let mut m = action.to_be_bytes().to_vec();
    m.extend_from_slice(&tx);
    m.extend_from_slice(rest);
    m
}

#[test]
fn malformed_udp_tracker_responses_are_rejected_and_counted() {
    let tracker = FakeUdp::start(|req| {
        let t = tx(req);
        let mut wrong = t;
        wrong[0] ^= 0xff;
        vec![
            vec![0, 0, 0],                                // too short
            udp_msg(9, t, &[0; 8]),                       // unknown action
            udp_msg(0, t, &[1, 2]),                       // truncated connect
            udp_msg(2, t, &[]),                           // scrape: never asked
            udp_msg(0, wrong, &[0, 0, 0, 0, 0, 0, 0, 1]), // wrong transaction id
            udp_msg(3, t, b"go away"),                    // error action
        ]
    });
    let mut c = test_config(random_infohash(), free_port());
    c.trackers = vec![tracker.url()];
    let d = Discovery::start(c).expect("start");
    let events = d.events();
    wait_until("two failed cycles", || d.stats().trackers[0].failures >= 2);
    let s = d.stats();
    assert!(s.drops.malformed_tracker_responses >= 8, "{:?}", s.drops);
    assert!(s.drops.unexpected_tracker_responses >= 2, "{:?}", s.drops);
    let t = &s.trackers[0];
    assert_eq!(t.announces_ok, 0);
    assert_eq!(t.last_error.as_deref(), Some("tracker error: go away"));
    let ev: Vec<DiscoveryEvent> = events.try_iter().collect();
    assert!(ev.iter().any(|e| e.event_id() == 6), "{ev:?}");
    assert!(d.candidates().try_iter().next().is_none());
}

fn announce_with_peers(req: &[u8], count: usize) -> Vec<u8> {
    let mut peers = Vec::with_capacity(count * 6);
    for i in 0..count {
        let i = u16::try_from(i).expect("small");
        peers.extend_from_slice(&[127, 1, (i >> 8) as u8, i as u8, 0x1f, 0x90]);
    }
    udp_msg(
        1,
        tx(req),
        &[&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..], &peers].concat(),
    )
}

#[test]
fn oversized_peer_list_is_capped_and_channel_overflow_counted() {
    let tracker = FakeUdp::start(|req| {
        if req.len() == 16 {
            vec![udp_msg(0, tx(req), &7u64.to_be_bytes())]
        } else {
            vec![announce_with_peers(req, 1000)]
        }
    });
    let mut c = test_config(random_infohash(), free_port());
    c.trackers = vec![tracker.url()];
    c.max_peers_per_response = 200;
    c.max_candidates = 50;
    let d = Discovery::start(c).expect("start");
    let rx = d.candidates();
    wait_until("two announces", || d.stats().trackers[0].announces_ok >= 2);
    let s = d.stats();
    assert!(s.drops.oversized_peer_lists >= 1600, "{:?}", s.drops);
    assert_eq!(
        s.trackers[0].peers_returned % 200,
        0,
        "200 kept per response"
    );
    assert_eq!(
        s.candidates_emitted, 50,
        "bounded channel of 50, nobody reading"
    );
    assert!(s.drops.channel_full >= 150, "{:?}", s.drops);
    // Reading frees room: later announces deliver more, never more than 200 distinct.
    assert_eq!(rx.len(), 50, "the channel holds its bound");
    // The discoverer may refill a freed slot while this drains, so the
    // drain can see a few more than the bound.
    let first: Vec<_> = rx.try_iter().collect();
    assert!(first.len() >= 50, "{}", first.len());
    wait_until("channel refilled", || rx.len() == 50);
    let second: Vec<_> = rx.try_iter().collect();
    assert!(
        second.iter().all(|c| !first.contains(c)),
        "no duplicate within the window"
    );
}

fn http_response(body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

#[test]
fn malformed_http_tracker_responses_are_reported() {
    let bad_bencode = FakeHttp::start(Some(http_response(b"d8:intervali60e5:peers99:abc")));
    let not_dict = FakeHttp::start(Some(http_response(b"l4:spame")));
    let deep = FakeHttp::start(Some(http_response(
        &[b"l".repeat(500), b"e".repeat(500)].concat(),
    )));
    let failure = FakeHttp::start(Some(http_response(b"d14:failure reason9:forbiddene")));
    let status = FakeHttp::start(Some(b"HTTP/1.0 500 Oops\r\n\r\n".to_vec()));
    let garbage = FakeHttp::start(Some(b"\x00\x01\x02 not http at all".to_vec()));
    let mut huge_body = b"d5:peers300000:".to_vec();
    huge_body.extend(std::iter::repeat_n(1u8, 300_000));
    huge_body.push(b'e');
    let huge = FakeHttp::start(Some(http_response(&huge_body)));

    let mut c = test_config(random_infohash(), free_port());
    let servers = [
        &bad_bencode,
        &not_dict,
        &deep,
        &failure,
        &status,
        &garbage,
        &huge,
    ];
    c.trackers = servers.iter().map(|s| s.url()).collect();
    let d = Discovery::start(c).expect("start");
    wait_until("every tracker failed once", || {
        d.stats().trackers.iter().all(|t| t.failures >= 1)
    });
    let s = d.stats();
    let err = |i: usize| s.trackers[i].last_error.clone().unwrap_or_default();
    assert!(err(0).starts_with("bencode"), "{}", err(0));
    assert_eq!(err(1), "response is not a dictionary");
    assert_eq!(err(2), "bencode: nesting too deep");
    assert_eq!(err(3), "tracker failure: forbidden");
    assert_eq!(err(4), "http status 500");
    assert_eq!(err(5), "no end of headers");
    assert_eq!(err(6), "response larger than 65536 bytes");
    assert!(s.drops.malformed_tracker_responses >= 5, "{:?}", s.drops);
    assert!(s.trackers.iter().all(|t| t.announces_ok == 0));
}

#[test]
fn hanging_dead_unresolvable_and_https_trackers_do_not_block_a_good_one() {
    let real = RealTracker::start();
    let hanging = FakeHttp::start(None);
    let black_hole = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let dead_udp = format!(
        "udp://127.0.0.1:{}/announce",
        black_hole.local_addr().expect("addr").port()
    );
    // A 70-character DNS label is rejected by the resolver library itself, so
    // this exercises the resolution-failure path without sending a DNS query.
    let unresolvable = format!("udp://{}.invalid:6969/announce", "a".repeat(70));
    let https = "https://127.0.0.1:1/announce".to_string();
    let trackers = vec![
        hanging.url(),
        dead_udp.clone(),
        unresolvable.clone(),
        https.clone(),
        real.udp_url(),
    ];

    let infohash = random_infohash();
    let (port_a, port_b) = (free_port(), free_port());
    let mk = |port| {
        let mut c = test_config(infohash, port);
        c.trackers = trackers.clone();
        c.http_response_timeout = Duration::from_millis(800);
        c.udp_retransmit_base = Duration::from_millis(200);
        c.udp_max_retransmits = 1;
        c
    };
    let mut a = Discovery::start(mk(port_a)).expect("a");
    let mut b = Discovery::start(mk(port_b)).expect("b");
    expect_candidate(&a.candidates(), SocketAddr::from(([127, 0, 0, 1], port_b)));
    expect_candidate(&b.candidates(), SocketAddr::from(([127, 0, 0, 1], port_a)));

    wait_until("hanging, dead and unresolvable trackers reported", || {
        let s = a.stats();
        s.trackers[0].failures >= 1 && s.trackers[1].failures >= 1 && s.trackers[2].failures >= 1
    });
    let s = a.stats();
    assert_eq!(
        s.trackers[0].last_error.as_deref(),
        Some("response timed out")
    );
    assert_eq!(
        s.trackers[1].last_error.as_deref(),
        Some("connect timed out after 2 attempts")
    );
    assert!(
        s.trackers[2]
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("cannot resolve")),
        "{:?}",
        s.trackers[2]
    );
    assert!(!s.trackers[3].supported);
    assert_eq!(s.drops.unsupported_trackers, 1);
    assert!(s.trackers[4].announces_ok >= 1);
    let ev: Vec<DiscoveryEvent> = a.events().try_iter().collect();
    assert!(ev
        .iter()
        .any(|e| matches!(e, DiscoveryEvent::TrackerFailure { tracker, .. } if *tracker == https)));
    assert!(ev.iter().any(|e| matches!(e, DiscoveryEvent::TrackerAnnounce { tracker, .. } if *tracker == real.udp_url())));
    // Stopping does not wait on the hanging tracker.
    let (ra, rb) = (a.stop(), b.stop());
    assert_eq!((ra.detached, rb.detached), (0, 0));
}

#[test]
fn invalid_config_is_refused() {
    let mut c = test_config(random_infohash(), 0);
    assert!(matches!(
        Discovery::start(c.clone()),
        Err(moss_discovery::DiscoveryError::ZeroListenPort)
    ));
    c.listen_port = 1;
    c.announce_interval = Duration::ZERO;
    assert!(matches!(
        Discovery::start(c.clone()),
        Err(moss_discovery::DiscoveryError::ZeroInterval)
    ));
    c.announce_interval = Duration::from_secs(1);
    c.max_candidates = 0;
    assert!(matches!(
        Discovery::start(c),
        Err(moss_discovery::DiscoveryError::ZeroCapacity)
    ));
}

#[test]
fn ipv6_udp_tracker_peers_are_18_bytes() {
    // bittorrent-tracker answers IPv6 UDP announces with IPv4-format peers, so
    // BEP 15's 18-byte IPv6 peer format is exercised with an in-test tracker.
    let tracker = FakeUdp::start_on("[::1]:0", |req| {
        if req.len() == 16 {
            vec![udp_msg(0, tx(req), &7u64.to_be_bytes())]
        } else {
            let mut peer = std::net::Ipv6Addr::LOCALHOST.octets().to_vec();
            peer.extend_from_slice(&4242u16.to_be_bytes());
            vec![udp_msg(
                1,
                tx(req),
                &[&[0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 1][..], &peer].concat(),
            )]
        }
    });
    let mut c = test_config(random_infohash(), free_port());
    c.trackers = vec![tracker.url()];
    let d = Discovery::start(c).expect("start");
    let want = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 4242));
    let (got, _) = expect_candidate(&d.candidates(), want);
    assert_eq!(got.source, moss_discovery::Source::Tracker(tracker.url()));
}

#[test]
fn closed_udp_tracker_port_reports_the_icmp_error() {
    let closed = {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr").port()
    };
    let mut c = test_config(random_infohash(), free_port());
    c.trackers = vec![format!("udp://127.0.0.1:{closed}/announce")];
    c.udp_retransmit_base = Duration::from_millis(100);
    c.udp_max_retransmits = 0;
    let d = Discovery::start(c).expect("start");
    wait_until("failure reported", || d.stats().trackers[0].failures >= 1);
    let err = d.stats().trackers[0].last_error.clone().unwrap_or_default();
    assert!(
        err.starts_with("connect timed out after 1 attempts"),
        "{err}"
    );
    assert!(err.contains("last socket error"), "{err}");
}
