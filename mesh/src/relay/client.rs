//! An end's side of relaying: ask a supernode both ends are connected to
//! when a dial times out (or the NAT code reports a failed punch), dial the
//! peer through it, renew the session before its TTL, probe the peer's
//! direct address and migrate when it answers, and move to another
//! supernode when the one in use leaves, revokes or closes.

use super::frames::{Accept, RefuseReason, Relay, Request};
use crate::event::{DisconnectReason, Event};
use crate::liveness::SILENCE;
use crate::node::Node;
use crate::path::Path;
use crate::stats::DropReason;
use crate::wire::Head;
use crate::Time;
use moss_crypto::PeerId;
use rand_core::RngCore;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// How often a relayed session probes the peer's direct address.
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// A request unanswered this long is asked of the next supernode.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// After a supernode closes a session, the ends wait this long for a
/// direct path (a migration in progress) before dropping it.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// Least time between two relay requests for one dialled address.
pub const ADDR_RETRY: Duration = Duration::from_secs(10);
/// A relay session with no local session on its path while the peer is
/// reached no other way is asked of its supernode again after this long
/// (the accept makes its initiator dial through it).
pub const REPAIR_AFTER: Duration = Duration::from_secs(4);
/// A relay session unused this long while the peer is reached another
/// way (both ends asked at once, each another supernode) is released.
pub const RELEASE_AFTER: Duration = Duration::from_secs(10);
/// The id that names the target by address in a request.
const BY_ADDRESS: PeerId = PeerId([0; 32]);
/// Times one supernode is asked for a request before the next one is:
/// the request or its accept may be lost, and for a target named by
/// address only the supernode that sees the peer there can answer.
pub const ASKS_PER_SUPERNODE: u8 = 2;
/// Rounds of a request after every candidate refused or stayed silent:
/// each asks them all again, [`ADDR_RETRY`] after the last round ended.
pub const REQUEST_ROUNDS: u8 = 6;
/// Most requests waiting for their next round.
const MAX_STALLED: usize = 256;
/// Relay sessions whose peer's address [`Node::path_addr`] still knows
/// after they ended (an event about the session may be read later).
const ADDR_MEMO: usize = 64;

#[derive(Debug, Clone)]
struct Pending {
    relay: PeerId,
    target: PeerId,
    addr: Option<SocketAddr>,
    tried: Vec<PeerId>,
    at: Time,
    /// Times `relay` was asked (the signed request is sent again, with
    /// its nonce, when it stays unanswered).
    asks: u8,
    /// The request's round (0: the first).
    round: u8,
}

/// A request every candidate refused or left unanswered: asked again, of
/// them all, at `due`.
#[derive(Debug, Clone, Copy)]
struct Stalled {
    target: PeerId,
    addr: Option<SocketAddr>,
    round: u8,
    due: Time,
}

/// A relay session this node is an end of.
#[derive(Debug, Clone, Copy)]
struct Relayed {
    peer: PeerId,
    /// The peer as the supernode sees it: the direct address to probe.
    peer_addr: SocketAddr,
    /// We asked (and renew, and move it when the supernode goes).
    initiator: bool,
    expires: Time,
    ttl: Duration,
    /// The address we dialled before, if any.
    dialled: Option<SocketAddr>,
    /// Since when no local session is on this relay path.
    unused_since: Option<Time>,
    /// The supernode's address when the session began. What it forwards
    /// may still come from there after our own session with it moved (a
    /// NAT that rewrote its port when it reached us anew): relayed data,
    /// not a direct path.
    via_addr: Option<SocketAddr>,
}

/// The client half of a node's relay state. Its maps are ordered: the
/// order requests are retried and sessions probed in (each consuming the
/// node's seeded random numbers) is the same in every run of a seed.
#[derive(Debug, Default)]
pub struct Client {
    pending: BTreeMap<u64, Pending>,
    sessions: BTreeMap<(PeerId, u64), Relayed>,
    closing: Vec<(PeerId, u64, Time)>,
    stalled: Vec<Stalled>,
    asked: BTreeMap<SocketAddr, Time>,
    /// When we last asked a supernode for a peer the NAT code gave up on.
    asked_peer: BTreeMap<PeerId, Time>,
    kick: Vec<u32>,
    /// The peer's address of the latest relay sessions, newest last (at
    /// most [`ADDR_MEMO`]).
    addr_memo: VecDeque<((PeerId, u64), SocketAddr)>,
    next_probe: Time,
    /// The last refusal a supernode sent.
    pub last_refusal: Option<RefuseReason>,
}

impl Client {
    /// Takes every request, pending or waiting for its next round, for
    /// `peer` or for the address `addr` (a supernode's view of it): an
    /// accept for that pair answers them. `Some` with the address the
    /// first one named, if any were found.
    fn take_wanted(&mut self, peer: PeerId, addr: SocketAddr) -> Option<Option<SocketAddr>> {
        let wants = |target: PeerId, a: Option<SocketAddr>| target == peer || a == Some(addr);
        let mut found = None;
        self.pending.retain(|_, p| {
            let hit = wants(p.target, p.addr);
            if hit {
                found.get_or_insert(p.addr);
            }
            !hit
        });
        self.stalled.retain(|s| {
            let hit = wants(s.target, s.addr);
            if hit {
                found.get_or_insert(s.addr);
            }
            !hit
        });
        found
    }
}

#[cfg(test)]
impl Client {
    /// The direct addresses this node probes for its relayed peers.
    pub(crate) fn probe_addrs(&self) -> Vec<SocketAddr> {
        self.sessions.values().map(|r| r.peer_addr).collect()
    }

    /// Requests waiting for an answer.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

impl Client {
    /// Notes the peer's address of relay session `key`.
    fn remember_addr(&mut self, key: (PeerId, u64), addr: SocketAddr) {
        self.addr_memo.retain(|(k, _)| *k != key);
        if self.addr_memo.len() >= ADDR_MEMO {
            self.addr_memo.pop_front();
        }
        self.addr_memo.push_back((key, addr));
    }

    /// Whether `from` is the address supernode `via` had when relay
    /// session `session` began.
    pub(crate) fn began_at(&self, via: PeerId, session: u64, from: Path) -> bool {
        let at = self.sessions.get(&(via, session)).and_then(|r| r.via_addr);
        at.is_some() && at == from.udp()
    }
}

impl Node {
    /// The socket address that stands for `path` in what a host reports
    /// (events 1 and 2): a UDP or TCP path's own; for a relay path, the
    /// peer's address as its supernode sees it (the direct address this
    /// node probes; also after the relay session ended, for the latest 64
    /// relay sessions), else the supernode's own. `None` for a host
    /// channel, or a relay path nothing is known of.
    pub fn path_addr(&self, path: Path) -> Option<SocketAddr> {
        let Path::Relay { via, session } = path else {
            return match path {
                Path::Tcp { addr, .. } => Some(addr),
                p => p.udp(),
            };
        };
        let c = &self.relay.client;
        c.sessions
            .get(&(via, session))
            .map(|r| r.peer_addr)
            .or_else(|| {
                c.addr_memo
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == (via, session))
                    .map(|(_, a)| *a)
            })
            .or_else(|| self.relay_wire_path(path).udp())
    }

    /// Asks a supernode we and `peer` are both connected to for a relay
    /// session, then dials `peer` through it. False if no usable supernode
    /// is connected.
    pub fn connect_via_relay(&mut self, peer: PeerId) -> bool {
        self.request_relay(peer, None, Vec::new())
    }

    /// The NAT code's hook: hole punching to `addr` failed
    /// `hole_punch_attempts` times; reach the peer through a supernode.
    pub fn relay_punch_failed(&mut self, peer: Option<PeerId>, addr: SocketAddr) -> bool {
        self.request_relay(peer.unwrap_or(BY_ADDRESS), Some(addr), Vec::new())
    }

    /// Peers reached through a relay now.
    pub fn relayed_peers(&self) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = self
            .table
            .by_peer
            .iter()
            .filter(|(_, &i)| {
                self.table
                    .get(i)
                    .is_some_and(|s| matches!(s.path, Path::Relay { .. }))
            })
            .map(|(p, _)| *p)
            .collect();
        v.sort();
        v
    }

    /// Our dial to `path` timed out: a UDP address nobody answered at is
    /// asked of a supernode (at most every [`ADDR_RETRY`] per address).
    pub(crate) fn relay_dial_failed(&mut self, path: Path) {
        let Path::Udp(addr) = path else {
            return;
        };
        let c = &self.relay.client;
        let busy = c.pending.values().any(|p| p.addr == Some(addr))
            || c.sessions.values().any(|r| r.dialled == Some(addr));
        let recent = c
            .asked
            .get(&addr)
            .is_some_and(|&t| self.now < t + ADDR_RETRY);
        if busy || recent {
            return;
        }
        if self.request_relay(BY_ADDRESS, Some(addr), Vec::new()) {
            let now = self.now;
            self.relay.client.asked.insert(addr, now);
            if self.relay.client.asked.len() > 1024 {
                self.relay.client.asked.retain(|_, t| now < *t + ADDR_RETRY);
            }
        }
    }

    /// Peers the NAT code could not punch to (unpunchable pair, or the
    /// punch failed): asked of a supernode, each at most every
    /// [`ADDR_RETRY`], unless a request or relay session for it exists.
    fn relay_unpunchable(&mut self, now: Time) {
        for peer in self.punches_given_up(now) {
            let c = &self.relay.client;
            let busy = c.pending.values().any(|p| p.target == peer)
                || c.sessions.values().any(|r| r.peer == peer);
            let recent = c
                .asked_peer
                .get(&peer)
                .is_some_and(|&t| now < t + ADDR_RETRY);
            if busy || recent {
                continue;
            }
            if self.request_relay(peer, None, Vec::new()) {
                let asked = &mut self.relay.client.asked_peer;
                asked.insert(peer, now);
                if asked.len() > 1024 {
                    asked.retain(|_, t| now < *t + ADDR_RETRY);
                }
            }
        }
    }

    /// A random nonce for a request, never 0: a supernode's own accepts
    /// (an end moved) carry nonce 0, which no end may have pending, so such
    /// an accept is only ever a renewal of a session the end holds.
    fn request_nonce(&mut self) -> u64 {
        self.rng.next_u64().max(1)
    }

    /// Sends a signed request for `target` (or the peer at `addr`) to the
    /// best usable supernode not in `tried`.
    fn request_relay(
        &mut self,
        target: PeerId,
        addr: Option<SocketAddr>,
        tried: Vec<PeerId>,
    ) -> bool {
        self.request_relay_round(target, addr, tried, 0)
    }

    /// [`Self::request_relay`] in round `round`. When no candidate is
    /// left after some were tried, the request waits [`ADDR_RETRY`] and
    /// asks them all again, for at most [`REQUEST_ROUNDS`] rounds.
    fn request_relay_round(
        &mut self,
        target: PeerId,
        addr: Option<SocketAddr>,
        tried: Vec<PeerId>,
        round: u8,
    ) -> bool {
        let me = self.public_key();
        let mut candidates = self.usable_supernodes();
        candidates.retain(|c| !tried.contains(&c.id) && c.id != target && c.id != me);
        // The pair's own salt spreads pairs over near-tied supernodes.
        let salt = u64::from_le_bytes([
            target.0[0] ^ me.0[0],
            target.0[1] ^ me.0[1],
            target.0[2] ^ me.0[2],
            target.0[3] ^ me.0[3],
            target.0[4] ^ me.0[4],
            target.0[5] ^ me.0[5],
            target.0[6] ^ me.0[6],
            target.0[7] ^ me.0[7],
        ]);
        let Some(relay) = super::choose::pick(&candidates, salt) else {
            self.stall(target, addr, &tried, round);
            return false;
        };
        let nonce = self.request_nonce();
        let r = Request::sign(&self.identity, &relay, target, addr, nonce);
        if !self.send_relay(relay, &Relay::Request(r)) {
            self.stall(target, addr, &tried, round);
            return false;
        }
        let now = self.now;
        self.relay.client.pending.insert(
            nonce,
            Pending {
                relay,
                target,
                addr,
                tried,
                at: now,
                asks: 1,
                round,
            },
        );
        true
    }

    /// A request of round `round` found no candidate to ask: after some
    /// were `tried`, it waits for its next round (if any is left).
    fn stall(&mut self, target: PeerId, addr: Option<SocketAddr>, tried: &[PeerId], round: u8) {
        let c = &mut self.relay.client;
        if tried.is_empty() || round + 1 >= REQUEST_ROUNDS {
            return;
        }
        if c.stalled.len() >= MAX_STALLED {
            c.stalled.remove(0);
        }
        c.stalled.push(Stalled {
            target,
            addr,
            round: round + 1,
            due: self.now + ADDR_RETRY,
        });
    }

    /// An accept from supernode `from`.
    pub(crate) fn on_accept(&mut self, from: PeerId, a: Accept) {
        if !a.verify(&from) {
            self.pubsub.router.penalise(&from, 1.0);
            return self.drop_input(DropReason::RelayForged);
        }
        let me = self.public_key();
        let now = self.now;
        let ttl = Duration::from_secs(u64::from(a.ttl_sec));
        let key = (from, a.session);
        let via_addr = self
            .relay_wire_path(Path::Relay {
                via: from,
                session: a.session,
            })
            .udp();
        if a.initiator == me {
            let asked = self
                .relay
                .client
                .pending
                .get(&a.nonce)
                .is_some_and(|p| p.relay == from);
            let p = asked
                .then(|| self.relay.client.pending.remove(&a.nonce))
                .flatten();
            if let Some(r) = self.relay.client.sessions.get_mut(&key) {
                // A renewal of what we have: ours, or the answer to the
                // other end's request for our session (both asked at once,
                // or it lost the session and asks again). The supernode
                // names us initiator: we dial through it if nothing else
                // reaches the peer.
                r.expires = now + ttl;
                r.initiator = true;
                r.peer_addr = a.peer_addr;
                self.relay.client.remember_addr(key, a.peer_addr);
                return self.dial_relayed(from, a.session, a.responder);
            }
            // Our request's answer; or, with the other end's nonce, its
            // repair of a session whose first accept we lost (it names us
            // initiator), taken while we still ask for that peer.
            let wanted = match p {
                Some(p) => Some(p.addr),
                // Nonce 0 answers nothing asked (an end moved).
                None if a.nonce == 0 => None,
                None => self.relay.client.take_wanted(a.responder, a.peer_addr),
            };
            let Some(dialled) = wanted else {
                // Nobody asked for this pair.
                return self.drop_input(DropReason::RelayForged);
            };
            self.relay.client.sessions.insert(
                key,
                Relayed {
                    peer: a.responder,
                    peer_addr: a.peer_addr,
                    initiator: true,
                    expires: now + ttl,
                    ttl,
                    dialled,
                    unused_since: None,
                    via_addr,
                },
            );
            self.relay.client.remember_addr(key, a.peer_addr);
            let direct = self
                .table
                .by_peer(&a.responder)
                .and_then(|i| self.table.get(i))
                .is_some_and(|s| s.path.udp().is_some());
            if direct {
                // A direct session came up meanwhile.
                self.relay.client.sessions.remove(&key);
                self.send_relay(from, &Relay::Close { session: a.session });
                return;
            }
            self.dial_relayed(from, a.session, a.responder);
        } else if a.responder == me {
            // We may have asked too: the other end's session answers us.
            if self
                .relay
                .client
                .pending
                .get(&a.nonce)
                .is_some_and(|p| p.relay == from)
            {
                self.relay.client.pending.remove(&a.nonce);
            }
            let r = self.relay.client.sessions.entry(key).or_insert(Relayed {
                peer: a.initiator,
                peer_addr: a.peer_addr,
                initiator: false,
                expires: now + ttl,
                ttl,
                dialled: None,
                unused_since: None,
                via_addr,
            });
            r.expires = now + ttl;
            r.initiator = false;
            r.peer_addr = a.peer_addr;
            self.relay.client.remember_addr(key, a.peer_addr);
        } else {
            self.drop_input(DropReason::RelayForged);
        }
    }

    /// A refusal from supernode `from`: ask the next one when another
    /// could do better.
    pub(crate) fn on_refuse(&mut self, from: PeerId, nonce: u64, reason: RefuseReason) {
        let Some(mut p) = self
            .relay
            .client
            .pending
            .remove(&nonce)
            .filter(|p| p.relay == from)
        else {
            return self.drop_input(DropReason::RelayUnknownSession);
        };
        self.relay.client.last_refusal = Some(reason);
        // Whatever this supernode held for the pair is gone.
        let target = p.target;
        self.relay
            .client
            .sessions
            .retain(|k, r| !(k.0 == from && r.peer == target));
        if matches!(
            reason,
            RefuseReason::Full | RefuseReason::NotSupernode | RefuseReason::TargetUnreachable
        ) {
            p.tried.push(from);
            self.request_relay_round(p.target, p.addr, p.tried, p.round);
        }
    }

    /// A handshake message of our session with the other end, carried by
    /// supernode `from`. Only handshakes travel this way: data goes by the
    /// data plane.
    pub(crate) fn on_relayed_datagram(&mut self, from: PeerId, session: u64, datagram: &[u8]) {
        if !self.relay.client.sessions.contains_key(&(from, session)) {
            return self.drop_input(DropReason::RelayUnknownSession);
        }
        let handshake = self
            .handshaker
            .scrambler
            .peek_head(datagram)
            .is_some_and(|h| matches!(Head::decode(&h), Ok(Head::Handshake { .. })));
        if !handshake {
            return self.drop_input(DropReason::Unrecognized);
        }
        let mut buf = self.outbox.buffer();
        buf.extend_from_slice(datagram);
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += buf.len() as u64;
        self.on_datagram(Path::Relay { via: from, session }, &mut buf);
        self.outbox.recycle(buf);
    }

    /// The local session whose own path is relay path (`via`,
    /// `session`), if any (not one the path is only an alias of: a
    /// session that won a duplicate over the one on this path).
    fn relayed_index(&self, via: PeerId, session: u64) -> Option<u32> {
        let path = Path::Relay { via, session };
        self.table
            .by_path(&path)
            .filter(|&i| self.table.get(i).is_some_and(|s| s.path == path))
    }

    /// As the initiator of relay session (`via`, `session`) with `peer`:
    /// dial the peer through it unless a session with it exists or is
    /// being set up there.
    fn dial_relayed(&mut self, via: PeerId, session: u64, peer: PeerId) {
        if self.table.by_peer(&peer).is_none() {
            self.connect_path(Path::Relay { via, session });
        }
    }

    /// Asks supernode `via` for the pair with `peer` again (it renews the
    /// session it has and sends both accepts), unless such a request is
    /// pending.
    fn ask_again(&mut self, via: PeerId, peer: PeerId) {
        let now = self.now;
        let pending = self
            .relay
            .client
            .pending
            .values()
            .any(|p| p.relay == via && p.target == peer);
        if pending {
            return;
        }
        let nonce = self.request_nonce();
        let req = Request::sign(&self.identity, &via, peer, None, nonce);
        if self.send_relay(via, &Relay::Request(req)) {
            self.relay.client.pending.insert(
                nonce,
                Pending {
                    relay: via,
                    target: peer,
                    addr: None,
                    tried: Vec::new(),
                    at: now,
                    asks: 1,
                    round: 0,
                },
            );
        }
    }

    /// Supernode `from` closed `session`: unless a direct path takes over
    /// within [`CLOSE_GRACE`], the session goes and the initiator asks
    /// another supernode.
    pub(crate) fn on_relay_closed(&mut self, from: PeerId, session: u64) {
        if !self.relay.client.sessions.contains_key(&(from, session)) {
            return self.drop_input(DropReason::RelayUnknownSession);
        }
        let deadline = self.now + CLOSE_GRACE;
        self.relay.client.closing.push((from, session, deadline));
    }

    /// Session `idx` with `peer`, relayed through `via`, heard the peer at
    /// `to`: a direct path works. Event 7; the relay session is released.
    pub(crate) fn relay_migrated(
        &mut self,
        idx: u32,
        peer: PeerId,
        via: PeerId,
        session: u64,
        to: Path,
    ) {
        self.events.push_back(Event::RelayMigrated {
            peer,
            from: Path::Relay { via, session },
            to,
        });
        if self.relay.client.sessions.remove(&(via, session)).is_some() {
            self.send_relay(via, &Relay::Close { session });
        }
        // Our next datagram goes direct at once, so the peer moves too.
        self.relay.client.kick.push(idx);
    }

    /// A relay session ends for us: its local session (if still relayed)
    /// goes, and as initiator we ask another supernode.
    /// A session on another path (one that won a duplicate, or a direct
    /// one) is left alone, and then nobody needs asking.
    fn drop_relayed(&mut self, via: PeerId, session: u64, exclude: PeerId) {
        let r = self.relay.client.sessions.remove(&(via, session));
        if let Some(idx) = self.relayed_index(via, session) {
            self.remove_session(idx, Some(DisconnectReason::Closed));
        }
        let Some(r) = r.filter(|r| r.initiator) else {
            return;
        };
        if self.table.by_peer(&r.peer).is_none() {
            self.request_relay(r.peer, r.dialled, vec![exclude]);
        }
    }

    /// True while our session with supernode `via` is established and
    /// heard from within [`SILENCE`]: it is alive, and a silence of a
    /// session relayed through it is the relayed peer's or the way's.
    fn supernode_alive(&self, via: PeerId) -> bool {
        self.table
            .by_peer(&via)
            .and_then(|i| self.table.get(i))
            .is_some_and(|s| s.established().is_some() && s.last_recv.since(self.now) < SILENCE)
    }

    /// Supernodes carrying relay sessions of ours that have gone silent:
    /// our established session with the supernode is not
    /// [`Self::supernode_alive`], and no local session relayed through it
    /// was heard within [`SILENCE`] either (a supernode that still
    /// forwards our peer's datagrams is alive, only its own datagrams were
    /// lost). A crashed supernode is left this way within seconds instead
    /// of at [`crate::IDLE_TIMEOUT`] of the relayed sessions. Runs every
    /// tick: allocates only when a supernode is silent.
    fn silent_supernodes(&self) -> Vec<PeerId> {
        let c = &self.relay.client;
        let mut silent = Vec::new();
        let mut last = None;
        for &(via, _) in c.sessions.keys() {
            if last == Some(via) {
                continue;
            }
            last = Some(via);
            let established = self
                .table
                .by_peer(&via)
                .and_then(|i| self.table.get(i))
                .is_some_and(|s| s.established().is_some());
            if !established || self.supernode_alive(via) {
                continue;
            }
            let relayed_heard = c
                .sessions
                .range((via, 0)..=(via, u64::MAX))
                .filter_map(|(&(v, session), _)| self.relayed_index(v, session))
                .filter_map(|i| self.table.get(i))
                .any(|r| r.last_recv.since(self.now) < SILENCE);
            if !relayed_heard {
                silent.push(via);
            }
        }
        silent
    }

    /// Peer `peer` is gone (its last session was on `path`).
    pub(crate) fn client_peer_down(&mut self, peer: PeerId, path: Path) {
        if let Path::Relay { via, session } = path {
            if self.relay.client.sessions.contains_key(&(via, session)) && self.supernode_alive(via)
            {
                // The supernode is alive: it is the one that sees both
                // ends (others may not). The relay session stays; as its
                // initiator we ask the supernode again at once (the accept
                // makes us dial through it), else the repair of an unused
                // relay session does after REPAIR_AFTER. If the peer left,
                // the supernode closes the session when it notices.
                let r = self.relay.client.sessions.get(&(via, session)).copied();
                if let Some(r) = r.filter(|r| r.initiator) {
                    self.ask_again(via, r.peer);
                }
                return self.relay_supernode_gone(peer);
            }
            // The relayed end went silent or left: release the relay
            // session. The silence may be the supernode's (dead, its own
            // session not timed out yet): as initiator, ask another one;
            // if the peer really left, each refuses (target unreachable).
            if let Some(r) = self.relay.client.sessions.remove(&(via, session)) {
                self.send_relay(via, &Relay::Close { session });
                if r.initiator {
                    self.request_relay(r.peer, r.dialled, vec![via]);
                }
            }
        }
        self.relay_supernode_gone(peer);
    }

    /// Supernode `node` left or revoked: every session through it moves
    /// to another supernode (or to direct, if that works by then).
    pub(crate) fn relay_supernode_gone(&mut self, node: PeerId) {
        let via: Vec<u64> = self
            .relay
            .client
            .sessions
            .keys()
            .filter(|(r, _)| *r == node)
            .map(|(_, s)| *s)
            .collect();
        for session in via {
            self.drop_relayed(node, session, node);
        }
        self.retry_pending(|p| p.relay == node, false);
    }

    /// Retries every pending request `pick` selects: with `again`, one
    /// asked fewer than [`ASKS_PER_SUPERNODE`] times is sent to the same
    /// supernode again (same nonce: a late accept of the first still
    /// answers it); otherwise the next supernode is asked (the one asked
    /// is added to those tried).
    fn retry_pending(&mut self, pick: impl Fn(&Pending) -> bool, again: bool) {
        let retry: Vec<u64> = self
            .relay
            .client
            .pending
            .iter()
            .filter(|(_, p)| pick(p))
            .map(|(n, _)| *n)
            .collect();
        for nonce in retry {
            let Some(mut p) = self.relay.client.pending.remove(&nonce) else {
                continue;
            };
            if again && p.asks < ASKS_PER_SUPERNODE {
                let r = Request::sign(&self.identity, &p.relay, p.target, p.addr, nonce);
                if self.send_relay(p.relay, &Relay::Request(r)) {
                    p.asks += 1;
                    p.at = self.now;
                    self.relay.client.pending.insert(nonce, p);
                    continue;
                }
            }
            p.tried.push(p.relay);
            self.request_relay_round(p.target, p.addr, p.tried, p.round);
        }
    }

    /// Requests whose round is due ask every candidate again, unless the
    /// peer is reached (or being asked for) by then.
    fn retry_stalled(&mut self, now: Time) {
        let c = &mut self.relay.client;
        if !c.stalled.iter().any(|s| s.due <= now) {
            return;
        }
        let (due, wait): (Vec<Stalled>, Vec<Stalled>) =
            c.stalled.iter().partition(|s| s.due <= now);
        c.stalled = wait;
        for s in due {
            let c = &self.relay.client;
            let reached = if s.target != BY_ADDRESS {
                self.table.by_peer(&s.target).is_some()
                    || c.sessions.values().any(|r| r.peer == s.target)
            } else {
                s.addr.is_some_and(|a| {
                    self.table.by_path(&Path::Udp(a)).is_some()
                        || c.sessions.values().any(|r| r.dialled == Some(a))
                })
            };
            let busy = c
                .pending
                .values()
                .any(|p| p.target == s.target && p.addr == s.addr);
            if !reached && !busy {
                self.request_relay_round(s.target, s.addr, Vec::new(), s.round);
            }
        }
    }

    /// Probes, renewals, request timeouts, grace expiry.
    pub(crate) fn client_tick(&mut self, now: Time) {
        for idx in std::mem::take(&mut self.relay.client.kick) {
            self.seal_and_send(idx, true);
        }
        let due: Vec<(PeerId, u64)> = self
            .relay
            .client
            .closing
            .iter()
            .filter(|c| c.2 <= now)
            .map(|c| (c.0, c.1))
            .collect();
        self.relay.client.closing.retain(|c| c.2 > now);
        for (via, session) in due {
            self.drop_relayed(via, session, via);
        }
        self.retry_pending(|p| now >= p.at + REQUEST_TIMEOUT, true);
        self.retry_stalled(now);
        for via in self.silent_supernodes() {
            self.relay_supernode_gone(via);
        }
        if now < self.relay.client.next_probe {
            return;
        }
        self.relay.client.next_probe = now + PROBE_EVERY;
        self.relay_unpunchable(now);
        let sessions: Vec<((PeerId, u64), Relayed)> = self
            .relay
            .client
            .sessions
            .iter()
            .map(|(k, r)| (*k, *r))
            .collect();
        for ((via, session), r) in sessions {
            let Some(idx) = self.relayed_index(via, session) else {
                self.unused_relayed(now, via, session, r);
                continue;
            };
            if let Some(e) = self.relay.client.sessions.get_mut(&(via, session)) {
                e.unused_since = None;
            }
            if self.table.established(idx).is_none() {
                continue;
            }
            if let Some(d) = r.dialled {
                if self.table.by_path(&Path::Udp(d)).is_none() {
                    // The dialled address is this session's: no re-dial.
                    self.table.alias(Path::Udp(d), idx);
                }
            }
            self.transport
                .probe(&mut self.outbox, &mut self.stats, idx, r.peer_addr);
            self.reach.note_sent(Path::Udp(r.peer_addr));
            if r.initiator && now + r.ttl / 2 >= r.expires {
                // Renew: the same request again (the supernode extends the
                // session it has for the pair).
                self.ask_again(via, r.peer);
            }
        }
    }

    /// Relay session (`via`, `session`) has no local session on its path:
    /// past its TTL it is forgotten; while the peer is reached another
    /// way, released after [`RELEASE_AFTER`]; while it is not reached at
    /// all, asked of the supernode again after [`REPAIR_AFTER`], so that
    /// the accept makes its initiator dial (an end that lost the session
    /// it carried, or never got the handshake through it).
    fn unused_relayed(&mut self, now: Time, via: PeerId, session: u64, r: Relayed) {
        let key = (via, session);
        let since = r.unused_since.unwrap_or(now);
        if let Some(e) = self.relay.client.sessions.get_mut(&key) {
            e.unused_since = Some(since);
        }
        if now >= r.expires {
            self.relay.client.sessions.remove(&key);
        } else if self.table.by_peer(&r.peer).is_some() {
            if now >= since + RELEASE_AFTER {
                self.relay.client.sessions.remove(&key);
                self.send_relay(via, &Relay::Close { session });
            }
        } else if now >= since + REPAIR_AFTER {
            self.ask_again(via, r.peer);
        }
    }
}

impl Node {
    /// A one-line view, for diagnosis in the simulator, of this node's
    /// session with `peer` (index, peer's index, path, state, last heard
    /// and sent) and the relay sessions and requests it holds for `peer`.
    #[doc(hidden)]
    pub fn relay_debug(&self, peer: &PeerId) -> String {
        use crate::session::State;
        let mut out = String::new();
        if let Some(idx) = self.table.by_peer(peer) {
            if let Some(s) = self.table.get(idx) {
                let state = match &s.state {
                    State::Initiating(_) => "initiating".to_string(),
                    State::Responding(_) => "responding".to_string(),
                    State::Established(e) => format!(
                        "established (initiator {}, retired {:?}, unconfirmed {}, up {:?})",
                        e.initiator, e.retired, e.unconfirmed, e.up
                    ),
                };
                out += &format!(
                    "session {idx} (peer's {}) on {:?}, {state}, heard {:?} ago, sent {:?} ago",
                    s.remote_index,
                    s.path,
                    s.last_recv.since(self.now),
                    s.last_send.since(self.now)
                );
            }
        } else {
            out += "no session";
        }
        let c = &self.relay.client;
        for ((via, session), r) in c.sessions.iter().filter(|(_, r)| r.peer == *peer) {
            out += &format!(
                "; relay {via:?}/{session} (initiator {}, expires in {:?}, unused since {:?}, probes {})",
                r.initiator,
                r.expires.saturating_sub(self.now),
                r.unused_since,
                r.peer_addr
            );
        }
        for (n, p) in c.pending.iter().filter(|(_, p)| p.target == *peer) {
            out += &format!(
                "; pending {n:x} at {:?} (asks {}, round {}, tried {})",
                p.relay,
                p.asks,
                p.round,
                p.tried.len()
            );
        }
        out
    }
}
