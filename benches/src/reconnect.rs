//! Reconnect time, Noise IK vs XX, between two sans-IO nodes over a
//! virtual link with a fixed one-way latency: how many round trips until
//! the dialler holds the session, until it knows the responder's topics
//! (it can publish to it), and until the responder counts the peer; plus
//! the CPU both sides spend per handshake.

use moss_mesh::{Config, Identity, Node};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One-way latency of the virtual link.
pub const LATENCY: Duration = Duration::from_millis(10);

const SERVER: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(10, 0, 0, 1),
    9000,
));

/// Why the scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconnectError {
    /// A handshake did not complete within its virtual deadline.
    #[error("{0} handshake {1} did not complete")]
    Stuck(&'static str, u64),
    /// The second dial did not run IK.
    #[error("the reconnect did not use IK")]
    NotIk,
}

/// Figures of one pattern, means over its handshakes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    /// Round trips until the dialler holds an established session.
    pub rtt_dialler: f64,
    /// Round trips until the dialler knows the responder's subscriptions.
    pub rtt_topics: f64,
    /// Round trips until the responder counts the dialler as a peer.
    pub rtt_both: f64,
    /// Datagrams both sides sent per handshake until then.
    pub datagrams: f64,
    /// Handshakes per second of CPU (both sides in one thread).
    pub per_sec: f64,
}

fn node(seed: u8, now: Duration) -> Node {
    let mut n = Node::new(
        Config::default(),
        Identity::from_seed([seed; 32]),
        "bench",
        None,
        [seed ^ 0x5A; 32],
        now,
    )
    .expect("the default configuration is valid");
    n.subscribe("t");
    n
}

fn client_addr(k: u64) -> SocketAddr {
    SocketAddr::from(([10, 0, 1, (k % 250) as u8 + 1], 1000 + (k / 250) as u16))
}

/// Virtual time `t` in round trips.
fn rtts(t: Duration) -> f64 {
    t.as_secs_f64() / (2.0 * LATENCY.as_secs_f64())
}

/// Drives `c` (at `ca`) and `s` (at [`SERVER`]) over the link from `now`
/// until the responder counts `c` and `c` knows its topics; returns the
/// times (dialler up, topics, both) since `now`, the datagrams sent and
/// the new clock.
fn drive(
    c: &mut Node,
    s: &mut Node,
    ca: SocketAddr,
    now: Duration,
) -> Option<([Duration; 3], usize, Duration)> {
    let start = now;
    let mut now = now;
    let mut q: VecDeque<(Duration, bool, Vec<u8>)> = VecDeque::new();
    let mut times: [Option<Duration>; 3] = [None; 3];
    let mut sent = 0;
    let cid = c.public_key();
    while now < start + Duration::from_secs(5) {
        while let Some(t) = c.poll_transmit() {
            sent += 1;
            q.push_back((now + LATENCY, true, t.bytes));
        }
        while let Some(t) = s.poll_transmit() {
            sent += 1;
            q.push_back((now + LATENCY, false, t.bytes));
        }
        while c.poll_event().is_some() {}
        while s.poll_event().is_some() {}
        if times[0].is_none() && c.peer_count() > 0 {
            times[0] = Some(now - start);
        }
        if times[1].is_none()
            && times[0].is_some()
            && c.peers().iter().any(|p| p.topics.iter().any(|t| t == "t"))
        {
            times[1] = Some(now - start);
        }
        if times[2].is_none() && s.peers().iter().any(|p| p.peer == cid) {
            times[2] = Some(now - start);
        }
        if let [Some(a), Some(b), Some(d)] = times {
            return Some(([a, b, d], sent, now));
        }
        let next = q
            .front()
            .map(|f| f.0)
            .unwrap_or(Duration::MAX)
            .min(c.poll_timeout())
            .min(s.poll_timeout())
            .max(now);
        now = next;
        while q.front().is_some_and(|f| f.0 <= now) {
            let Some((_, to_server, mut b)) = q.pop_front() else {
                break;
            };
            if to_server {
                s.handle_datagram(now, ca, &mut b);
            } else {
                c.handle_datagram(now, SERVER, &mut b);
            }
        }
        c.handle_timeout(now);
        s.handle_timeout(now);
    }
    None
}

/// Ends the dialler's session (CLOSE reaches the responder) and lets the
/// link drain.
fn hang_up(c: &mut Node, s: &mut Node, ca: SocketAddr, now: Duration) -> Duration {
    c.shutdown();
    let now = now + LATENCY;
    while let Some(mut t) = c.poll_transmit() {
        s.handle_datagram(now, ca, &mut t.bytes);
    }
    while s.poll_transmit().is_some() {}
    while c.poll_event().is_some() {}
    while s.poll_event().is_some() {}
    // Past the handshake budget's refill and any echo interval.
    now + Duration::from_millis(50)
}

/// Measures `dur` of CPU per pattern: XX with a fresh dialler each time,
/// IK with one dialler reconnecting (it holds the responder's key from its
/// first, XX, session).
pub fn reconnect(dur: Duration) -> Result<(Figures, Figures), ReconnectError> {
    let mut now = Duration::ZERO;
    let mut s = node(1, now);
    let mut out = [Figures::default(); 2];
    for (slot, ik) in [(0, false), (1, true)] {
        let mut cpu = Duration::ZERO;
        let mut n = 0u64;
        let mut sums = [0.0f64; 4];
        let mut keeper = node(2, now);
        let ka = client_addr(0);
        if ik {
            // The first session is XX and teaches the dialler the key.
            keeper.connect(SERVER);
            let (_, _, t) =
                drive(&mut keeper, &mut s, ka, now).ok_or(ReconnectError::Stuck("IK", 0))?;
            now = hang_up(&mut keeper, &mut s, ka, t);
        }
        while cpu < dur {
            n += 1;
            let (mut fresh, ca) = if ik {
                (None, ka)
            } else {
                (Some(node(3 + (n % 200) as u8, now)), client_addr(n))
            };
            let c = fresh.as_mut().unwrap_or(&mut keeper);
            let before = c.stats().ik_completed;
            let t0 = Instant::now();
            c.connect(SERVER);
            let got = drive(c, &mut s, ca, now);
            cpu += t0.elapsed();
            let name = if ik { "IK" } else { "XX" };
            let ([up, topics, both], sent, t) = got.ok_or(ReconnectError::Stuck(name, n))?;
            if ik && c.stats().ik_completed != before + 1 {
                return Err(ReconnectError::NotIk);
            }
            for (acc, v) in sums
                .iter_mut()
                .zip([rtts(up), rtts(topics), rtts(both), sent as f64])
            {
                *acc += v;
            }
            now = hang_up(c, &mut s, ca, t);
        }
        let k = n as f64;
        out[slot] = Figures {
            rtt_dialler: sums[0] / k,
            rtt_topics: sums[1] / k,
            rtt_both: sums[2] / k,
            datagrams: sums[3] / k,
            per_sec: k / cpu.as_secs_f64(),
        };
    }
    Ok((out[0], out[1]))
}
