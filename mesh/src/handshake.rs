//! The handshake side of the node: dialling, answering, retransmitting and
//! turning a finished Noise XX exchange into an established session.

use crate::event::Event;
use crate::node::{Node, HANDSHAKE_BURST, HANDSHAKE_RATE, HANDSHAKE_RETRY, MAX_PENDING_HANDSHAKES};
use crate::path::Path;
use crate::session::{Established, Pending, Reassembly, Session, Stamp, State, TokenBucket};
use crate::stats::DropReason;
use crate::wire::{Frame, HandshakeBody, Head, Kind, HANDSHAKE_FIXED};
use crate::Time;
use moss_crypto::noise::MAX_MESSAGE;
use moss_crypto::{
    Handshake, HandshakeError, Identity, LocalStatic, MeshKeys, PeerId, Role, Scrambler,
    TransportCipher,
};
use rand_core::RngCore;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Shortest gap between two answers to repeated copies of one message 1.
pub const ECHO_INTERVAL: Duration = Duration::from_millis(250);
/// How long a session that lost a duplicate still takes the peer's
/// datagrams (below [`crate::node::KEEPALIVE`]).
pub const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// What the handshake side of a node owns: the static key (with its
/// binding signature), the budget of answered initiations, and the mask of
/// handshake datagrams.
pub(crate) struct Handshaker {
    pub local_static: LocalStatic,
    pub budget: TokenBucket,
    pub scrambler: Scrambler,
}

impl Handshaker {
    /// The handshaker of a node with this identity in the mesh of `keys`.
    pub fn new(identity: &Identity, keys: &MeshKeys, now: Time) -> Self {
        Self {
            local_static: LocalStatic::new(identity, &keys.prologue),
            budget: TokenBucket::new(HANDSHAKE_BURST, HANDSHAKE_RATE, now),
            scrambler: Scrambler::new(keys.scramble_key),
        }
    }

    /// Builds a scrambled datagram around one Noise message, padded with
    /// up to `max_pad` random bytes, into `d` (empty).
    pub fn datagram(
        &self,
        rng: &mut impl RngCore,
        max_pad: u32,
        kind: Kind,
        (sender, receiver): (u32, u32),
        noise: &[u8],
        mut d: Vec<u8>,
    ) -> Vec<u8> {
        let room = crate::wire::MAX_DATAGRAM
            .saturating_sub(moss_crypto::scramble::HEAD_LEN + HANDSHAKE_FIXED + noise.len())
            as u32;
        let pad_len = if max_pad == 0 {
            0
        } else {
            rng.next_u32() % (max_pad.min(room) + 1)
        } as u16;
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let head = Head::Handshake {
            kind,
            pad_len,
            nonce,
        }
        .encode();
        d.extend_from_slice(&head);
        HandshakeBody {
            sender,
            receiver,
            noise,
        }
        .encode(&mut d);
        let start = d.len();
        d.resize(start + pad_len as usize, 0);
        rng.fill_bytes(&mut d[start..]);
        // Message 1 with no padding is 42 body bytes, above the 16-byte sample.
        self.scrambler
            .toggle_body(&nonce, &mut d[moss_crypto::scramble::HEAD_LEN..]);
        self.scrambler.toggle_head(&mut d);
        d
    }
}

/// The handshake's extra payload: the address we saw the peer's datagram
/// come from, when the path has one (nothing for relays and channels).
fn encode_observed(p: Path) -> Vec<u8> {
    p.udp().map(encode_addr).unwrap_or_default()
}

/// Encodes an observed address for the handshake's extra payload.
pub(crate) fn encode_addr(a: SocketAddr) -> Vec<u8> {
    let mut v = Vec::with_capacity(19);
    match a.ip() {
        IpAddr::V4(ip) => {
            v.push(4);
            v.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            v.push(6);
            v.extend_from_slice(&ip.octets());
        }
    }
    v.extend_from_slice(&a.port().to_be_bytes());
    v
}

/// Decodes an observed address; `None` for anything malformed.
pub(crate) fn decode_addr(b: &[u8]) -> Option<SocketAddr> {
    match (b.first(), b.len()) {
        (Some(4), 7) => {
            let ip: [u8; 4] = b[1..5].try_into().ok()?;
            Some(SocketAddr::from((ip, u16::from_be_bytes([b[5], b[6]]))))
        }
        (Some(6), 19) => {
            let ip: [u8; 16] = b[1..17].try_into().ok()?;
            Some(SocketAddr::from((ip, u16::from_be_bytes([b[17], b[18]]))))
        }
        _ => None,
    }
}

impl Node {
    /// Dials `addr` unless a session (or a dial) to it already exists.
    pub fn connect(&mut self, addr: SocketAddr) {
        self.connect_path(Path::Udp(addr));
    }

    /// Dials the peer at the end of `path` (a UDP address, or a channel the
    /// host carries) unless a session (or a dial) on it already exists.
    pub fn connect_path(&mut self, path: Path) {
        if self.table.by_path(&path).is_some() {
            return;
        }
        if self.table.pending_handshakes() >= MAX_PENDING_HANDSHAKES {
            self.events.push_back(Event::ConnectFailed {
                addr: path,
                reason: "too many handshakes in flight".into(),
            });
            return;
        }
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let msg1 = Handshake::with_static(Role::Initiator, &self.handshaker.local_static, seed)
            .and_then(|mut hs| {
                let mut msg = [0u8; MAX_MESSAGE];
                let n = hs.write(&[], &mut msg)?;
                Ok((hs, msg, n))
            });
        let (hs, msg, n) = match msg1 {
            Ok(x) => x,
            Err(e) => {
                self.events.push_back(Event::ConnectFailed {
                    addr: path,
                    reason: e.to_string(),
                });
                return;
            }
        };
        self.transport.pick_dial_owner();
        let idx = self.random_index();
        let datagram = self.handshake_datagram(Kind::Init, idx, 0, &msg[..n]);
        let now = self.now;
        self.table.insert(
            idx,
            Session {
                remote_index: 0,
                path,
                last_recv: Stamp::at(now),
                last_send: Stamp::at(now),
                state: State::Initiating(Box::new(Pending {
                    hs,
                    last_datagram: datagram.clone(),
                    created: now,
                    attempts: 0,
                    next_retry: now + HANDSHAKE_RETRY,
                    last_echo: now,
                })),
            },
        );
        self.table.bind(path, idx);
        self.stats.handshakes_initiated += 1;
        self.emit(path, datagram);
    }

    /// Builds a scrambled, padded handshake datagram.
    fn handshake_datagram(
        &mut self,
        kind: Kind,
        sender: u32,
        receiver: u32,
        noise: &[u8],
    ) -> Vec<u8> {
        let buf = self.outbox.buffer();
        let max_pad = u32::from(self.cfg.obfs_pad_max);
        self.handshaker
            .datagram(&mut self.rng, max_pad, kind, (sender, receiver), noise, buf)
    }

    pub(crate) fn handle_handshake(&mut self, from: Path, kind: Kind, pad_len: u16, body: &[u8]) {
        let Ok(b) = HandshakeBody::decode(body, pad_len) else {
            return self.drop_input(DropReason::BadHandshake);
        };
        match kind {
            Kind::Init => self.on_init(from, b),
            Kind::Response => self.on_response(from, b),
            Kind::Final => self.on_final(b),
            Kind::Data => self.drop_input(DropReason::BadHandshake),
        }
    }

    fn fail_reason(e: &HandshakeError) -> DropReason {
        match e {
            HandshakeError::Decrypt => DropReason::HandshakeDecrypt,
            HandshakeError::BadSignature | HandshakeError::MissingBinding => {
                DropReason::HandshakeAuth
            }
            _ => DropReason::BadHandshake,
        }
    }

    fn on_init(&mut self, from: Path, b: HandshakeBody<'_>) {
        if b.receiver != 0 {
            return self.drop_input(DropReason::BadHandshake);
        }
        // A retransmitted message 1: answer with the same message 2, but at
        // most once per echo interval, so replayed message 1s cannot turn
        // the node into a reflector.
        let now = self.now;
        if let Some(s) = self
            .table
            .by_path(&from)
            .and_then(|idx| self.table.sessions.get_mut(&idx))
        {
            if s.remote_index == b.sender {
                if let State::Responding(p) = &mut s.state {
                    if now.saturating_sub(p.last_echo) < ECHO_INTERVAL {
                        return self.drop_input(DropReason::HandshakeRateLimited);
                    }
                    p.last_echo = now;
                    let d = p.last_datagram.clone();
                    return self.emit(from, d);
                }
                if s.established().is_some() {
                    // Already established with this dial; ignore the echo.
                    return;
                }
            }
        }
        if self.table.pending_handshakes() >= MAX_PENDING_HANDSHAKES
            || self.table.by_peer.len() >= self.cfg.max_peers as usize
        {
            return self.drop_input(DropReason::Capacity);
        }
        // Answering costs three X25519 operations: a flood of bogus message
        // 1s is cut off here, before any of them, so established sessions
        // keep their CPU.
        if !self.handshaker.budget.take(1, now) {
            return self.drop_input(DropReason::HandshakeRateLimited);
        }
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let mut hs =
            match Handshake::with_static(Role::Responder, &self.handshaker.local_static, seed) {
                Ok(hs) => hs,
                Err(_) => return self.drop_input(DropReason::BadHandshake),
            };
        if let Err(e) = hs.read(b.noise) {
            return self.drop_input(Self::fail_reason(&e));
        }
        let mut msg = [0u8; MAX_MESSAGE];
        let n = match hs.write(&encode_observed(from), &mut msg) {
            Ok(n) => n,
            Err(e) => return self.drop_input(Self::fail_reason(&e)),
        };
        let idx = self.random_index();
        let datagram = self.handshake_datagram(Kind::Response, idx, b.sender, &msg[..n]);
        // A dial of ours to the same path loses to the incoming one only
        // after it completes; keep both slots, index maps point at the newest.
        self.table.insert(
            idx,
            Session {
                remote_index: b.sender,
                path: from,
                last_recv: Stamp::at(now),
                last_send: Stamp::at(now),
                state: State::Responding(Box::new(Pending {
                    hs,
                    last_datagram: datagram.clone(),
                    created: now,
                    attempts: 0,
                    next_retry: now + HANDSHAKE_RETRY * 2,
                    last_echo: now,
                })),
            },
        );
        self.table.by_path.entry(from).or_insert(idx);
        self.reach.on_init(from, idx);
        self.emit(from, datagram);
    }

    fn on_response(&mut self, from: Path, b: HandshakeBody<'_>) {
        let idx = b.receiver;
        let Some(s) = self.table.sessions.get_mut(&idx) else {
            return self.drop_input(DropReason::UnknownSession);
        };
        if let State::Established(e) = &s.state {
            // Our message 3 was lost: the responder repeated message 2.
            if s.remote_index == b.sender {
                if let Some(d) = e.final_datagram.as_deref().map(<[u8]>::to_vec) {
                    let to = s.path;
                    return self.emit(to, d);
                }
            }
            return self.drop_input(DropReason::BadHandshake);
        }
        let State::Initiating(p) = &mut s.state else {
            return self.drop_input(DropReason::BadHandshake);
        };
        let read = p.hs.read(b.noise).and_then(|extra| {
            let mut msg = [0u8; MAX_MESSAGE];
            let n = p.hs.write(&encode_observed(from), &mut msg)?;
            Ok((extra, msg, n))
        });
        let (extra, msg, n) = match read {
            Ok(x) => x,
            Err(e) => {
                self.fail_handshake(idx, &e.to_string());
                return self.drop_input(Self::fail_reason(&e));
            }
        };
        let observed = decode_addr(&extra);
        s.remote_index = b.sender;
        // The reply may come from elsewhere than we dialled (a NAT): the
        // session follows it; the dialled path stays an alias of it, so a
        // static peer dialled there counts as connected (until the session
        // goes).
        let dialled = std::mem::replace(&mut s.path, from);
        if dialled != from {
            self.table.alias(dialled, idx);
        }
        let datagram = self.handshake_datagram(Kind::Final, idx, b.sender, &msg[..n]);
        self.emit(from, datagram.clone());
        self.establish(idx, observed, Some(datagram.into_boxed_slice()));
    }

    fn on_final(&mut self, b: HandshakeBody<'_>) {
        let idx = b.receiver;
        let Some(s) = self.table.sessions.get_mut(&idx) else {
            return self.drop_input(DropReason::UnknownSession);
        };
        if s.remote_index != b.sender {
            return self.drop_input(DropReason::BadHandshake);
        }
        let State::Responding(p) = &mut s.state else {
            // A duplicate message 3 for an established session.
            return;
        };
        match p.hs.read(b.noise) {
            Ok(extra) => {
                let observed = decode_addr(&extra);
                self.establish(idx, observed, None);
            }
            Err(e) => {
                self.fail_handshake(idx, &e.to_string());
                self.drop_input(Self::fail_reason(&e));
            }
        }
    }

    /// The rank of established session `idx` among duplicates with
    /// `remote` (lowest is kept), computed alike at both ends: first the
    /// session the smaller peer id initiated, then (both initiated by the
    /// same side) the one with the smaller initiator's index. Neither
    /// depends on the order in which the two ends saw the sessions come up.
    fn duplicate_key(&self, idx: u32, me: PeerId, remote: PeerId) -> (bool, u32) {
        let Some(s) = self.table.get(idx) else {
            return (true, u32::MAX);
        };
        let initiator = s.established().is_some_and(|e| e.initiator);
        let (by, index) = if initiator {
            (me, idx)
        } else {
            (remote, s.remote_index)
        };
        (by != me.min(remote), index)
    }

    /// Turns a finished handshake into an established session, resolving
    /// duplicates (both sides dialled each other) the same way on both ends.
    fn establish(
        &mut self,
        idx: u32,
        observed: Option<SocketAddr>,
        final_datagram: Option<Box<[u8]>>,
    ) {
        let now = self.now;
        let burst = self.cfg.security.rate_limit_burst;
        let rate = self.cfg.security.rate_limit_sustained;
        let Some(mut s) = self.table.take(idx) else {
            return;
        };
        let (pending, initiator) = match s.state {
            State::Initiating(p) => (p, true),
            State::Responding(p) => (p, false),
            State::Established(_) => {
                self.table.insert(idx, s);
                return;
            }
        };
        let out = match pending.hs.finish() {
            Ok(o) => o,
            Err(e) => {
                self.table.unbind(idx, s.path);
                self.stats.handshakes_failed += 1;
                if initiator {
                    self.events.push_back(Event::ConnectFailed {
                        addr: s.path,
                        reason: e.to_string(),
                    });
                }
                return self.drop_input(DropReason::HandshakeAuth);
            }
        };
        let me = self.identity.public_key();
        if out.remote == me {
            // We dialled ourselves (our own address, or a mirror of it).
            self.table.unbind(idx, s.path);
            self.stats.handshakes_failed += 1;
            if initiator {
                self.events.push_back(Event::ConnectFailed {
                    addr: s.path,
                    reason: "connected to self".into(),
                });
            }
            return self.drop_input(DropReason::SelfConnect);
        }
        s.last_recv = Stamp::at(now);
        let path = s.path;
        self.transport.install(
            idx,
            s.remote_index,
            self.relay_wire_path(path),
            TransportCipher::new(&out.send_key, &out.recv_key),
        );
        s.state = State::Established(Box::new(Established {
            peer: out.remote,
            initiator,
            topics: Default::default(),
            pending: Vec::new(),
            final_datagram,
            reassembly: Reassembly::default(),
            bucket: TokenBucket::new(burst, rate, now),
            next_transfer: 0,
            observed,
            retired: None,
        }));
        self.table.insert(idx, s);
        self.stats.handshakes_completed += 1;
        if !initiator {
            self.reach.on_settled(idx, path.udp(), now);
        }
        self.table.bind(path, idx);
        if let Some(old) = self.table.by_peer(&out.remote) {
            if old != idx {
                let key_new = self.duplicate_key(idx, me, out.remote);
                let key_old = self.duplicate_key(old, me, out.remote);
                let (loser, winner) = if key_new < key_old {
                    (old, idx)
                } else {
                    (idx, old)
                };
                // Both ends rank the pair alike, so each drops the same
                // session. The loser is retired, not removed: what the peer
                // sent on it before it saw the winner is still taken, and so
                // is the peer's CLOSE for it, which is then harmless. The
                // CLOSE matters when the peer never completed the winner:
                // the loser was its only session, and the CLOSE makes it
                // dial again. The loser's paths stay mapped to the winner,
                // so the same peer is not dialled there again.
                self.queue_frame(loser, &Frame::Close(1));
                self.seal_and_send(loser, false);
                self.table.by_peer.insert(out.remote, winner);
                self.table.merge_paths(loser, winner);
                if let Some(e) = self.table.established_mut(loser) {
                    e.retired = Some(now + RETIRE_GRACE);
                    e.pending.clear();
                }
                if let Some(w) = self.table.get(winner).map(|w| w.path) {
                    self.table.bind(w, winner);
                }
                if winner == idx {
                    self.send_subscriptions(idx);
                }
                return;
            }
        }
        self.table.by_peer.insert(out.remote, idx);
        self.events.push_back(Event::PeerConnected {
            peer: out.remote,
            addr: path,
        });
        self.send_subscriptions(idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_addr_round_trip() {
        for a in ["1.2.3.4:5", "[::1]:65535"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(decode_addr(&encode_addr(a)), Some(a));
        }
        assert_eq!(decode_addr(&[4, 1]), None);
        assert_eq!(decode_addr(&[]), None);
    }
}
