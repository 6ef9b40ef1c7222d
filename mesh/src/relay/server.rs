//! The supernode's side of relay sessions: admission (signed request,
//! `relay_max_sessions`, one session per pair), the signed accept to both
//! ends, the TTL (a repeated request renews), close, and the control plane
//! that carries the ends' handshake messages and learns their session
//! indices for the data plane ([`super::route`]).

use super::frames::{Accept, RefuseReason, Relay, Request};
use super::route::Route;
use super::sessions::{Admitted, Sessions};
use crate::config::Config;
use crate::node::Node;
use crate::path::Path;
use crate::stats::DropReason;
use crate::wire::{Head, Kind};
use crate::Time;
use moss_crypto::scramble::HEAD_LEN;
use moss_crypto::PeerId;
use moss_nat::relay::{Dropped, Refusal};
use std::net::SocketAddr;
use std::time::Duration;

/// How often the server looks for sessions past their TTL (the TTL is
/// whole seconds).
const EXPIRY_SCAN: Duration = Duration::from_secs(1);

/// A supernode's relay sessions.
pub struct Server {
    sessions: Sessions,
    next_scan: Time,
}

impl Server {
    /// No sessions; limits from `cfg`.
    pub fn new(cfg: &Config) -> Self {
        Self {
            sessions: Sessions::new(cfg),
            next_scan: Time::ZERO,
        }
    }

    /// Sessions served.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True if none is served.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// True if `session` is one of ours.
    pub fn contains(&self, session: u64) -> bool {
        self.sessions.contains(session)
    }
}

/// Bytes a cookie echo puts before the body of the message 1 it carries.
const COOKIE_PREFIX: usize = crate::cookie::COOKIE_LEN + 1;

/// The sender index of a handshake datagram (any message of XX or IK, or a
/// message 1 echoing a cookie), read with the mesh's scramble key like any
/// receiver would.
fn handshake_sender(scrambler: &moss_crypto::Scrambler, datagram: &[u8]) -> Option<u32> {
    let raw = scrambler.peek_head(datagram)?;
    let Ok(Head::Handshake { kind, nonce, .. }) = Head::decode(&raw) else {
        return None;
    };
    let at = match kind {
        Kind::Init | Kind::Response | Kind::Final | Kind::IkInit | Kind::IkResponse => 0,
        Kind::CookieInit => COOKIE_PREFIX,
        Kind::Data | Kind::Hint | Kind::CookieReply | Kind::NatToken => return None,
    };
    let mut body = [0u8; COOKIE_PREFIX + 4];
    let body = &mut body[..at + 4];
    body.copy_from_slice(datagram.get(HEAD_LEN..HEAD_LEN + at + 4)?);
    // The body keystream starts at its first byte; four bytes of the body
    // (after a cookie echo's prefix) are the sender index.
    scrambler.toggle_body(&nonce, body);
    let mut idx = [0u8; 4];
    idx.copy_from_slice(&body[at..]);
    Some(u32::from_le_bytes(idx))
}

impl Node {
    /// The UDP address of `peer`'s session with us.
    fn end_addr(&self, peer: &PeerId) -> Option<SocketAddr> {
        let idx = self.table.by_peer(peer)?;
        self.table.get(idx)?.path.udp()
    }

    fn refuse_relay(&mut self, to: PeerId, r: &Request, reason: RefuseReason) {
        let f = Relay::Refuse {
            nonce: r.nonce,
            target: r.target,
            reason,
        };
        self.send_relay(to, &f);
    }

    /// The signed accept of `session` to one end; `peer_addr` is where the
    /// supernode sees the other end (the address the end probes for a
    /// direct path).
    fn send_accept(
        &mut self,
        to: PeerId,
        session: u64,
        ends: [PeerId; 2],
        nonce: u64,
        peer_addr: SocketAddr,
    ) {
        let mut a = Accept {
            session,
            initiator: ends[0],
            responder: ends[1],
            nonce,
            ttl_sec: self.relay.server.sessions.ttl().as_secs() as u32,
            peer_addr,
            signature: [0; 64],
        };
        a.signature = self.identity.sign(&a.signing_bytes(&self.public_key()));
        self.send_relay(to, &Relay::Accept(a));
    }

    /// Where the supernode sees each of `ends`; `moved` overrides one end's
    /// address (it roamed there and the table has not followed yet).
    fn end_addrs(
        &self,
        ends: [PeerId; 2],
        moved: Option<(PeerId, SocketAddr)>,
    ) -> [Option<SocketAddr>; 2] {
        ends.map(|p| match moved {
            Some((m, to)) if m == p => Some(to),
            _ => self.end_addr(&p),
        })
    }

    /// Both accepts of `session`, each naming the other end's address in
    /// `addrs` (as [`Self::end_addrs`] gives them). An end whose partner's
    /// address is unknown gets none.
    fn send_accepts(
        &mut self,
        session: u64,
        ends: [PeerId; 2],
        nonce: u64,
        addrs: [Option<SocketAddr>; 2],
    ) {
        for e in 0..2 {
            if let Some(other) = addrs[1 - e] {
                self.send_accept(ends[e], session, ends, nonce, other);
            }
        }
    }

    /// A relay request from `from`.
    pub(crate) fn serve_request(&mut self, from: PeerId, r: Request) {
        if !self.is_supernode() {
            return self.refuse_relay(from, &r, RefuseReason::NotSupernode);
        }
        if !r.verify(&self.public_key(), &from) {
            self.drop_input(DropReason::RelayForged);
            return self.refuse_relay(from, &r, RefuseReason::BadSignature);
        }
        let target = if r.target.0 != [0; 32] {
            Some(r.target)
        } else {
            r.addr
                .and_then(|a| self.table.by_path(&Path::Udp(a)))
                .and_then(|i| self.table.peer_of(i))
        };
        let Some(target) = target else {
            return self.refuse_relay(from, &r, RefuseReason::TargetUnreachable);
        };
        if target == from {
            return self.refuse_relay(from, &r, RefuseReason::SamePeer);
        }
        let reachable = self
            .table
            .by_peer(&target)
            .is_some_and(|i| self.relay_capable(i));
        if !reachable || self.end_addr(&from).is_none() {
            return self.refuse_relay(from, &r, RefuseReason::TargetUnreachable);
        }
        let now = self.now;
        let session = match self.relay.server.sessions.admit(now, from, target) {
            Ok(Admitted::New(id) | Admitted::Renewed(id)) => id,
            Err(Refusal::SamePeer) => return self.refuse_relay(from, &r, RefuseReason::SamePeer),
            Err(Refusal::Full | Refusal::Duplicate) => {
                return self.refuse_relay(from, &r, RefuseReason::Full)
            }
        };
        let Some(ends) = self.relay.server.sessions.ends(session) else {
            return;
        };
        let addrs = self.end_addrs(ends, None);
        self.send_accepts(session, ends, r.nonce, addrs);
    }

    /// A datagram of the ends' session carried in a DATA frame from `from`:
    /// forwarded to the other end within the buckets; a handshake message
    /// teaches the data plane the sender's index.
    pub(crate) fn serve_data(&mut self, from: PeerId, session: u64, datagram: &[u8]) {
        let now = self.now;
        let len = datagram.len();
        let other = match self.relay.server.sessions.forward(now, session, &from, len) {
            Ok(p) => p,
            Err(Dropped::PeerRate) | Err(Dropped::Bandwidth) => {
                return self.drop_input(DropReason::RelayRateLimited)
            }
            Err(Dropped::NoSession) | Err(Dropped::NotMember) => {
                return self.drop_input(DropReason::RelayUnknownSession)
            }
        };
        if let Some(sender_index) = handshake_sender(&self.handshaker.scrambler, datagram) {
            self.relay
                .server
                .sessions
                .set_index(session, &from, sender_index);
            if let (Some(src), Some(dst)) = (self.end_addr(&other), self.end_addr(&from)) {
                // Datagrams for the sender's index come from the other end.
                let route = Route { src, dst, session };
                let limits = super::limits_of(&self.cfg);
                self.transport.route(sender_index, route, limits);
            }
        }
        self.stats.relayed_datagrams += 1;
        self.stats.relayed_bytes += len as u64;
        self.send_relay(other, &Relay::Data { session, datagram });
    }

    /// The authenticated session with relayed end `peer` moved to `to` (its
    /// NAT mapping changed, or it roamed): the data plane of every session
    /// it is an end of follows, both directions, so the pair goes on
    /// without a new request. The session is renewed and both ends hear
    /// its accept again, so the other end probes the moved end's new
    /// address for a direct path. Only the ends' own sessions with the
    /// supernode move a route; a relayed datagram from an unknown address
    /// never does (the supernode cannot authenticate it).
    pub(crate) fn server_end_moved(&mut self, peer: PeerId, to: SocketAddr) {
        let limits = super::limits_of(&self.cfg);
        for id in self.relay.server.sessions.of_peer(&peer) {
            let Some(ends) = self.relay.server.sessions.indexed_ends(id) else {
                continue;
            };
            let pair = [ends[0].0, ends[1].0];
            let addrs = self.end_addrs(pair, Some((peer, to)));
            for e in 0..2 {
                if let (Some(index), Some(dst), Some(src)) = (ends[e].1, addrs[e], addrs[1 - e]) {
                    let route = Route {
                        src,
                        dst,
                        session: id,
                    };
                    self.transport.route(index, route, limits);
                }
            }
            self.stats.relay_routes_moved += 1;
            let now = self.now;
            if let Ok(Admitted::Renewed(renewed)) =
                self.relay.server.sessions.admit(now, pair[0], pair[1])
            {
                // Nonce 0: no end has it pending; both take it as a renewal.
                self.send_accepts(renewed, pair, 0, addrs);
            }
        }
    }

    /// Ends session `session`: both ends hear CLOSE (except `skip`).
    fn end_served(&mut self, session: u64, skip: Option<PeerId>) {
        let Some(ends) = self.relay.server.sessions.close(session) else {
            return;
        };
        self.transport.unroute(session);
        for p in ends {
            if Some(p) != skip {
                self.send_relay(p, &Relay::Close { session });
            }
        }
    }

    /// An end closes `session`.
    pub(crate) fn serve_close(&mut self, from: PeerId, session: u64) {
        let member = self
            .relay
            .server
            .sessions
            .ends(session)
            .is_some_and(|e| e.contains(&from));
        if !member {
            return self.drop_input(DropReason::RelayUnknownSession);
        }
        self.end_served(session, Some(from));
    }

    /// Sessions past their TTL end (looked for once a second).
    pub(crate) fn server_tick(&mut self, now: Time) {
        if self.relay.server.is_empty() || now < self.relay.server.next_scan {
            return;
        }
        self.relay.server.next_scan = now + EXPIRY_SCAN;
        for id in self.relay.server.sessions.expired(now) {
            self.end_served(id, None);
        }
    }

    /// An end left: its sessions end (the other end hears CLOSE).
    pub(crate) fn server_peer_down(&mut self, peer: PeerId) {
        for id in self.relay.server.sessions.of_peer(&peer) {
            self.end_served(id, Some(peer));
        }
    }

    /// A one-line view, for diagnosis in the simulator, of the relay
    /// sessions this supernode serves for `peer`: each with its ends and
    /// the session indices learnt from their handshakes.
    #[doc(hidden)]
    pub fn served_debug(&self, peer: &PeerId) -> String {
        let mut out = String::new();
        for id in self.relay.server.sessions.of_peer(peer) {
            out += &format!(
                "served {id}: {:?}; ",
                self.relay.server.sessions.indexed_ends(id)
            );
        }
        out
    }

    /// Every session ends (the node stepped down).
    pub(crate) fn close_all_served(&mut self) {
        for id in self.relay.server.sessions.all() {
            self.end_served(id, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moss_crypto::{MeshKeys, Scrambler};

    #[test]
    fn the_sender_index_of_a_handshake_is_read_back() {
        let keys = MeshKeys::derive("relay-unit", None);
        let sc = Scrambler::new(keys.scramble_key);
        let nonce = [7u8; 12];
        let mut d = Head::Handshake {
            kind: Kind::Init,
            pad_len: 0,
            nonce,
        }
        .encode()
        .to_vec();
        let mut body = Vec::new();
        crate::wire::HandshakeBody {
            sender: 0x0102_0304,
            receiver: 0,
            noise: &[9; 32],
        }
        .encode(&mut body);
        sc.toggle_body(&nonce, &mut body);
        d.extend_from_slice(&body);
        sc.toggle_head(&mut d);
        assert_eq!(handshake_sender(&sc, &d), Some(0x0102_0304));
        // IK's messages carry it at the same place (the CI run of the
        // real-NAT suite: an end dialling again through the same relay
        // session uses IK, and its route was never learnt).
        for kind in [Kind::IkInit, Kind::IkResponse] {
            let mut d = Head::Handshake {
                kind,
                pad_len: 0,
                nonce,
            }
            .encode()
            .to_vec();
            d.extend_from_slice(&body);
            sc.toggle_head(&mut d);
            assert_eq!(handshake_sender(&sc, &d), Some(0x0102_0304), "{kind:?}");
        }
        // A data head is no handshake.
        let mut data = Head::Data {
            receiver: 5,
            counter: 0,
        }
        .encode()
        .to_vec();
        data.extend_from_slice(&[0; 32]);
        sc.toggle_head(&mut data);
        assert_eq!(handshake_sender(&sc, &data), None);
        assert_eq!(handshake_sender(&sc, &[0; 8]), None);
    }
}
