//! moss-webrtc: sans-IO WebRTC DataChannel peers for native Moss nodes.
//!
//! An [`Endpoint`] is what a native node needs to meet browser peers (and
//! other native nodes) the way the browser peer (`wasm/peer`) meets its
//! own kind: it reads the envelopes of one or more `moss-signal` servers,
//! offers to peers whose id is larger than its own and answers the rest
//! (complete SDP, no trickle), and runs one str0m `Rtc` per peer with one
//! negotiated DataChannel (`ordered: false, maxRetransmits: 0`), so a
//! DataChannel behaves like the UDP path. It owns no socket, thread or
//! clock: the driver feeds it signal text, UDP datagrams and time, and
//! drains [`Output`]s.
//!
//! ```text
//! loop {
//!     ep.handle_signal(now, server, &text);            // from a signal socket
//!     ep.handle_receive(now, source, local, &bytes);    // from the ICE socket
//!     ep.send(now, channel, &datagram);                 // a node transmit
//!     if ep.poll_timeout() <= now { ep.handle_timeout(now) }
//!     while let Some(o) = ep.poll_output() { /* UDP out, signal out, node in */ }
//! }
//! ```

mod link;
mod room;

/// The peer's half of the signaling envelope (shared with `moss-signal`).
pub use moss_signal_envelope::peer as envelope;

pub use envelope::{EnvelopeError, Signal};
pub use link::LinkError;
pub use room::{MAX_ATTEMPTS, RETRY_MAX, RETRY_MIN};

use link::Link;
use room::Room;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most peer links at once; offers beyond it are refused and counted.
pub const MAX_LINKS: usize = 64;

/// A link whose DataChannel is not open by then is given up (as the
/// browser peer does).
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Most signal envelopes held while candidates are gathered
/// ([`Endpoint::hold_links`]); more are dropped and counted as junk.
pub const MAX_HELD: usize = 2 * MAX_LINKS;

/// The local ICE candidates every new link offers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidates {
    /// The driver's bound UDP socket addresses.
    pub host: Vec<SocketAddr>,
    /// `(address, base)`: what a STUN server saw of a host candidate.
    pub reflexive: Vec<(SocketAddr, SocketAddr)>,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `bytes` from local address `from` to `to` over UDP.
    Transmit {
        /// The local candidate address to send from.
        from: SocketAddr,
        /// The remote address.
        to: SocketAddr,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// Send `text` to signal server `server`.
    Signal {
        /// The index of the server (as the driver numbers them).
        server: usize,
        /// The envelope.
        text: String,
    },
    /// The DataChannel of `channel` opened; `offerer` links dial the node
    /// session on it.
    Opened {
        /// The node channel id.
        channel: u64,
        /// True when this side offered.
        offerer: bool,
    },
    /// A datagram arrived on `channel`.
    Datagram {
        /// The node channel id.
        channel: u64,
        /// The datagram.
        bytes: Vec<u8>,
    },
    /// A text message arrived on `channel`: not Moss, dropped (counted).
    Junk {
        /// The node channel id.
        channel: u64,
    },
    /// `channel` is gone: its session ends.
    Closed {
        /// The node channel id.
        channel: u64,
    },
}

/// Counters of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Links whose DataChannel opened.
    pub links_opened: u64,
    /// Links given up (bad SDP, setup timeout, refused by str0m).
    pub links_failed: u64,
    /// Links open now.
    pub links_open: u64,
    /// Offers refused because [`MAX_LINKS`] links exist.
    pub links_refused: u64,
    /// Signal envelopes not understood, not expected, or beyond
    /// [`MAX_HELD`] while links were held.
    pub signal_junk: u64,
    /// UDP datagrams no link accepted.
    pub udp_unmatched: u64,
    /// Node datagrams not sent (no open channel, or the channel was full).
    pub send_dropped: u64,
    /// Text messages on a DataChannel (not Moss), dropped.
    pub text_dropped: u64,
    /// Offers made again to a peer still in the room after its link
    /// failed or closed (backing off from [`RETRY_MIN`] to [`RETRY_MAX`],
    /// at most [`MAX_ATTEMPTS`] in a row).
    pub links_retried: u64,
}

/// The sans-IO WebRTC side of one native node.
pub struct Endpoint {
    id: String,
    candidates: Candidates,
    links: HashMap<String, Link>,
    by_channel: HashMap<u64, String>,
    next_channel: u64,
    out: VecDeque<Output>,
    stats: EndpointStats,
    /// Envelopes waiting for the candidates (`Some` while held).
    held: Option<VecDeque<(usize, String)>>,
    /// The peers we offer to, and when to offer again.
    room: Room,
    /// The latest time the driver gave (a lost link's retry counts from it).
    now: Option<Instant>,
}

impl Endpoint {
    /// An endpoint whose signal id is `id` (the node's public key in hex)
    /// and whose ICE host candidates are `candidates` (the bound addresses
    /// of the driver's UDP sockets, IPv4 or IPv6).
    pub fn new(id: String, candidates: Vec<SocketAddr>) -> Self {
        Self {
            id,
            candidates: Candidates {
                host: candidates,
                reflexive: Vec::new(),
            },
            links: HashMap::new(),
            by_channel: HashMap::new(),
            next_channel: 1,
            out: VecDeque::new(),
            stats: EndpointStats::default(),
            held: None,
            room: Room::default(),
            now: None,
        }
    }

    /// While `hold` is true, signal envelopes are kept (in order, at most
    /// [`MAX_HELD`]) instead of making links; set it to false and the
    /// kept ones are handled at `now`. The driver holds links while it
    /// gathers server-reflexive candidates: an SDP goes out once, with the
    /// candidates known when it is made, and a peer behind a
    /// port-restricted (address-and-port-dependent filtering) NAT can be
    /// reached only if both SDPs carry the reflexive addresses, since
    /// each NAT opens only for checks its own side sent out.
    pub fn hold_links(&mut self, hold: bool, now: Instant) {
        self.now = Some(now);
        if hold {
            self.held.get_or_insert_with(VecDeque::new);
            return;
        }
        let Some(held) = self.held.take() else {
            return;
        };
        for (server, text) in held {
            self.handle_signal(now, server, &text);
        }
    }

    /// True while [`Endpoint::hold_links`] holds envelopes back.
    pub fn holding(&self) -> bool {
        self.held.is_some()
    }

    /// Adds a server-reflexive candidate: `addr` is what a STUN server saw
    /// of host candidate `base`. Links made from now on offer it; false
    /// (nothing added) if `base` is not a host candidate, the families
    /// differ, or it is known already.
    pub fn add_reflexive(&mut self, addr: SocketAddr, base: SocketAddr) -> bool {
        let c = &mut self.candidates;
        if !c.host.contains(&base)
            || addr.is_ipv4() != base.is_ipv4()
            || c.reflexive.contains(&(addr, base))
        {
            return false;
        }
        c.reflexive.push((addr, base));
        true
    }

    /// The server-reflexive candidates known, as `(address, base)`.
    pub fn reflexive(&self) -> &[(SocketAddr, SocketAddr)] {
        &self.candidates.reflexive
    }

    /// This endpoint's signal id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The counters.
    pub fn stats(&self) -> EndpointStats {
        let mut s = self.stats;
        s.links_open = self.links.values().filter(|l| l.open).count() as u64;
        s
    }

    /// One text message from signal server `server`. Junk is counted.
    pub fn handle_signal(&mut self, now: Instant, server: usize, text: &str) {
        self.now = Some(now);
        if let Some(held) = &mut self.held {
            if held.len() < MAX_HELD {
                held.push_back((server, text.to_string()));
            } else {
                self.stats.signal_junk += 1;
            }
            return;
        }
        match envelope::decode(text) {
            Ok(Signal::Peers(ids)) => ids.into_iter().for_each(|id| self.seen(now, server, id)),
            Ok(Signal::Join(id)) => self.seen(now, server, id),
            Ok(Signal::Leave(id)) => {
                self.room.left(&id);
                if self.links.get(&id).is_some_and(|l| !l.open) {
                    self.remove(&id);
                }
            }
            Ok(Signal::Offer { from, sdp }) => self.offered(now, server, from, &sdp),
            Ok(Signal::Answer { from, sdp }) => {
                let Some(link) = self.links.get_mut(&from) else {
                    self.stats.signal_junk += 1;
                    return;
                };
                if let Err(e) = link.accept(&sdp, &mut self.out) {
                    tracing::debug!(remote = %from, error = %e, "webrtc answer refused");
                    self.stats.links_failed += 1;
                    self.remove(&from);
                }
                self.reap();
            }
            Err(e) => {
                tracing::trace!(error = %e, "signal envelope dropped");
                self.stats.signal_junk += 1;
            }
        }
    }

    /// A peer is in the room: the smaller id offers, so two peers never both
    /// do, and offers again if that link fails while the peer stays.
    fn seen(&mut self, now: Instant, server: usize, remote: String) {
        if remote == self.id || self.id >= remote {
            return;
        }
        self.room.named(&remote, server);
        if !self.links.contains_key(&remote) {
            self.offer(now, server, remote);
        }
    }

    /// Offers a link to `remote` through signal server `server`.
    fn offer(&mut self, now: Instant, server: usize, remote: String) {
        if self.links.len() >= MAX_LINKS {
            self.stats.links_refused += 1;
            return;
        }
        let channel = self.channel();
        match Link::offer(
            now,
            remote.clone(),
            channel,
            &self.candidates,
            &mut self.out,
        ) {
            Ok((link, sdp)) => {
                self.out.push_back(Output::Signal {
                    server,
                    text: envelope::encode("offer", &remote, sdp),
                });
                self.insert(link);
            }
            Err(e) => {
                tracing::debug!(%remote, error = %e, "webrtc offer failed");
                self.stats.links_failed += 1;
                self.room.lost(&remote, now);
            }
        }
    }

    /// `from` offers: answer it. A fresh offer from a peer we hold a link
    /// to means it restarted (the server stamps `from`): the new link wins.
    fn offered(&mut self, now: Instant, server: usize, from: String, sdp: &str) {
        if from == self.id {
            self.stats.signal_junk += 1;
            return;
        }
        self.remove(&from);
        if self.links.len() >= MAX_LINKS {
            self.stats.links_refused += 1;
            return;
        }
        let channel = self.channel();
        match Link::answer(
            now,
            from.clone(),
            channel,
            &self.candidates,
            sdp,
            &mut self.out,
        ) {
            Ok((link, answer)) => {
                self.out.push_back(Output::Signal {
                    server,
                    text: envelope::encode("answer", &from, answer),
                });
                self.insert(link);
            }
            Err(e) => {
                tracing::debug!(remote = %from, error = %e, "webrtc offer refused");
                self.stats.links_failed += 1;
            }
        }
    }

    /// One UDP datagram from `source` to local address `destination`.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        self.now = Some(now);
        let Some(link) = self
            .links
            .values_mut()
            .find(|l| l.accepts(now, source, destination, bytes))
        else {
            self.stats.udp_unmatched += 1;
            return;
        };
        link.receive(now, source, destination, bytes, &mut self.out);
        self.reap();
    }

    /// Sends one node datagram on `channel`; false (and counted) if it
    /// cannot go now.
    pub fn send(&mut self, channel: u64, bytes: &[u8]) -> bool {
        let sent = match self
            .by_channel
            .get(&channel)
            .and_then(|r| self.links.get_mut(r))
        {
            Some(link) => link.send(bytes, &mut self.out),
            None => false,
        };
        if !sent {
            self.stats.send_dropped += 1;
        }
        self.reap();
        sent
    }

    /// The earliest time a link wants [`Endpoint::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .values()
            .map(|l| {
                if l.open {
                    l.timeout
                } else {
                    l.timeout.min(l.created + SETUP_TIMEOUT)
                }
            })
            .chain(self.room.poll_timeout())
            .min()
    }

    /// Runs every due timer; gives up links that did not open in time, and
    /// offers again to peers whose link was lost while they stayed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        let mut late = Vec::new();
        for (id, l) in &mut self.links {
            if !l.open && now >= l.created + SETUP_TIMEOUT {
                late.push(id.clone());
            } else if l.timeout <= now {
                l.tick(now, &mut self.out);
            }
        }
        for id in late {
            self.stats.links_failed += 1;
            self.remove(&id);
        }
        self.reap();
        for (id, server) in self.room.take_due(now) {
            if !self.links.contains_key(&id) {
                tracing::debug!(remote = %id, "webrtc: offering again");
                self.stats.links_retried += 1;
                self.offer(now, server, id);
            }
        }
    }

    /// Closes the link carrying `channel` (the node found no use for it:
    /// no session formed on it in time, or its session ended); false if no
    /// link carries it.
    pub fn close_channel(&mut self, channel: u64) -> bool {
        let Some(remote) = self.by_channel.get(&channel).cloned() else {
            return false;
        };
        self.remove(&remote);
        true
    }

    /// Closes every link, and offers to nobody again.
    pub fn close_all(&mut self) {
        self.room.clear();
        let ids: Vec<String> = self.links.keys().cloned().collect();
        for id in ids {
            self.remove(&id);
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        let o = self.out.pop_front()?;
        match o {
            Output::Opened { channel, .. } => {
                self.stats.links_opened += 1;
                if let Some(remote) = self.by_channel.get(&channel) {
                    self.room.opened(remote);
                }
            }
            Output::Junk { .. } => self.stats.text_dropped += 1,
            _ => {}
        }
        Some(o)
    }

    fn channel(&mut self) -> u64 {
        let c = self.next_channel;
        self.next_channel += 1;
        c
    }

    fn insert(&mut self, link: Link) {
        self.by_channel.insert(link.channel, link.remote.clone());
        self.links.insert(link.remote.clone(), link);
        self.reap();
    }

    /// Closes and forgets the link to `remote`.
    fn remove(&mut self, remote: &str) {
        if let Some(mut l) = self.links.remove(remote) {
            l.close(&mut self.out);
            self.forget(&l);
        }
    }

    /// Forgets links that died (str0m gave up, the channel closed).
    fn reap(&mut self) {
        let dead: Vec<String> = self
            .links
            .values()
            .filter(|l| l.dead)
            .map(|l| l.remote.clone())
            .collect();
        for id in dead {
            if let Some(l) = self.links.remove(&id) {
                if !l.open {
                    self.stats.links_failed += 1;
                }
                self.forget(&l);
            }
        }
    }

    fn forget(&mut self, l: &Link) {
        self.by_channel.remove(&l.channel);
        if let Some(now) = self.now {
            self.room.lost(&l.remote, now);
        }
        self.out.push_back(Output::Closed { channel: l.channel });
    }
}
