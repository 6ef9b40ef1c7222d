//! In-memory network of sans-IO nodes: no sockets, a virtual clock, optional
//! loss, and a hook to tamper with datagrams in flight.
//!
//! Driving it follows quinn's test `Pair`: [`Net::step`] runs the next
//! instant at which something happens, [`Net::run_until_idle`] steps until
//! no datagram is in flight, [`Net::drive`] steps until a condition holds;
//! [`Net::run`] still runs a fixed stretch of virtual time.

#![allow(dead_code)]

use moss_mesh::{Config, Event, Identity, Input, Node, Path, Time};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// One datagram in flight.
pub struct InFlight {
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
    pub at: Time,
}

/// A set of nodes wired together in memory.
pub struct Net {
    pub nodes: Vec<Node>,
    pub addrs: Vec<SocketAddr>,
    pub events: Vec<Vec<Event>>,
    pub now: Time,
    pub latency: Duration,
    pub queue: VecDeque<InFlight>,
    /// Every datagram ever sent (for replay tests).
    pub log: Vec<InFlight>,
    rng: u64,
    /// Fraction of datagrams dropped, in per-mille.
    pub loss_per_mille: u64,
    /// Nodes whose output is discarded (crashed or partitioned away).
    pub muted: Vec<bool>,
    /// Each node's address on a second interface ([`second_addr`]), once
    /// [`Net::add_second_interface`] gave it one.
    pub second: Vec<Option<SocketAddr>>,
}

/// Node `i`'s address on the second interface (a LAN address, as a beacon
/// would announce it).
pub fn second_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], 40000 + i as u16))
}

pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000 + i as u16))
}

/// Longest stretch of virtual time `run_until_idle` and `drive` step
/// through before giving up.
pub const DRIVE_LIMIT: Duration = Duration::from_secs(120);

impl Net {
    pub fn new(n: usize, mesh: &str, psk: Option<[u8; 32]>) -> Self {
        Self::with(n, |_| (mesh.to_string(), psk), Config::default())
    }

    pub fn with(
        n: usize,
        mesh_of: impl Fn(usize) -> (String, Option<[u8; 32]>),
        cfg: Config,
    ) -> Self {
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..n {
            let (mesh, psk) = mesh_of(i);
            let id = Identity::from_seed([i as u8 + 1; 32]);
            let mut seed = [0u8; 32];
            seed[0] = i as u8;
            seed[1] = 0xAA;
            nodes.push(
                Node::new(cfg.clone(), id, &mesh, psk.as_ref(), seed, Duration::ZERO).unwrap(),
            );
            addrs.push(addr(i));
        }
        Self {
            events: vec![Vec::new(); n],
            nodes,
            addrs,
            now: Duration::ZERO,
            latency: Duration::from_millis(5),
            queue: VecDeque::new(),
            log: Vec::new(),
            rng: 0x9E3779B97F4A7C15,
            loss_per_mille: 0,
            muted: vec![false; n],
            second: vec![None; n],
        }
    }

    /// Gives every node a second address ([`second_addr`]). As on one
    /// host with two interfaces, a datagram to a second-interface address
    /// leaves from the sender's own second-interface address, so a peer
    /// dialled at both addresses sees the dialler at two addresses too.
    pub fn add_second_interface(&mut self) {
        for (i, s) in self.second.iter_mut().enumerate() {
            *s = Some(second_addr(i));
        }
    }

    /// The node an address belongs to.
    fn node_at(&self, a: SocketAddr) -> Option<usize> {
        self.addrs
            .iter()
            .position(|x| *x == a)
            .or_else(|| self.second.iter().position(|x| *x == Some(a)))
    }

    /// The address node `i` sends from towards `to`.
    fn source(&self, i: usize, to: SocketAddr) -> SocketAddr {
        match self.second[i] {
            Some(s) if self.second.contains(&Some(to)) => s,
            _ => self.addrs[i],
        }
    }

    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn collect(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].poll_transmit() {
                // This network carries UDP paths only.
                let Some(to) = t.to.udp() else {
                    continue;
                };
                let f = InFlight {
                    from: self.source(i, to),
                    to,
                    bytes: t.bytes,
                    at: self.now + self.latency,
                };
                self.log.push(InFlight {
                    from: f.from,
                    to: f.to,
                    bytes: f.bytes.clone(),
                    at: f.at,
                });
                if self.muted[i] {
                    continue;
                }
                if self.loss_per_mille > 0 && self.rand() % 1000 < self.loss_per_mille {
                    continue;
                }
                self.queue.push_back(f);
            }
            while let Some(e) = self.nodes[i].poll_event() {
                self.events[i].push(e);
            }
        }
    }

    /// Delivers one datagram directly (for tests that craft input).
    pub fn inject(&mut self, to: usize, from: SocketAddr, mut bytes: Vec<u8>) {
        self.nodes[to].handle_datagram(self.now, from, &mut bytes);
        self.collect();
    }

    /// Moves the clock to the next instant a datagram arrives or a timer is
    /// due and runs everything due then. True if a datagram was delivered.
    pub fn step(&mut self) -> bool {
        self.collect();
        let next_timer = self.nodes.iter().map(|n| n.poll_timeout()).min();
        let next_pkt = self.queue.front().map(|f| f.at);
        let Some(next) = next_timer.into_iter().chain(next_pkt).min() else {
            return false;
        };
        self.now = next.max(self.now);
        let delivered = self.deliver_due();
        self.fire_timers();
        self.collect();
        delivered
    }

    /// Steps until no datagram is in flight (timers that come due first
    /// run too). False if the network was still busy after [`DRIVE_LIMIT`].
    pub fn run_until_idle(&mut self) -> bool {
        self.collect();
        let end = self.now + DRIVE_LIMIT;
        while !self.queue.is_empty() && self.now < end {
            self.step();
        }
        self.queue.is_empty()
    }

    /// Steps until `done` holds; false if it still did not after
    /// [`DRIVE_LIMIT`] of virtual time.
    pub fn drive(&mut self, mut done: impl FnMut(&Net) -> bool) -> bool {
        self.collect();
        let end = self.now + DRIVE_LIMIT;
        while !done(self) {
            if self.now >= end {
                return false;
            }
            self.step();
        }
        true
    }

    fn deliver_due(&mut self) -> bool {
        let mut delivered = false;
        while self.queue.front().is_some_and(|f| f.at <= self.now) {
            let Some(mut f) = self.queue.pop_front() else {
                break;
            };
            if let Some(j) = self.node_at(f.to) {
                let input = Input::Datagram {
                    from: Path::Udp(f.from),
                    bytes: &mut f.bytes,
                };
                self.nodes[j].handle(self.now, input);
                delivered = true;
            }
        }
        delivered
    }

    fn fire_timers(&mut self) {
        for n in &mut self.nodes {
            if n.poll_timeout() <= self.now {
                n.handle(self.now, Input::Timeout);
            }
        }
    }

    /// Runs the network for `d` of virtual time.
    pub fn run(&mut self, d: Duration) {
        let end = self.now + d;
        self.collect();
        while self.now < end {
            let next_timer = self
                .nodes
                .iter()
                .map(|n| n.poll_timeout())
                .min()
                .unwrap_or(end);
            let next_pkt = self.queue.front().map(|f| f.at).unwrap_or(end);
            let next = next_timer.min(next_pkt).min(end).max(self.now);
            self.now = next;
            self.deliver_due();
            self.fire_timers();
            self.collect();
            if next == end {
                break;
            }
        }
    }

    pub fn messages(&self, i: usize) -> Vec<(String, Vec<u8>)> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some((m.topic().to_owned(), m.data().to_vec())),
                _ => None,
            })
            .collect()
    }
}
