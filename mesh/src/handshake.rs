//! The handshake side of the node: dialling, answering, retransmitting and
//! turning a finished Noise XX exchange into an established session.

use crate::event::Event;
use crate::node::{Node, HANDSHAKE_RETRY, MAX_PENDING_HANDSHAKES};
use crate::session::{Established, Pending, Reassembly, Session, Stamp, State, TokenBucket};
use crate::stats::DropReason;
use crate::wire::{Frame, HandshakeBody, Head, Kind, HANDSHAKE_FIXED};
use moss_crypto::noise::MAX_MESSAGE;
use moss_crypto::{Handshake, HandshakeError, Role, TransportCipher};
use rand_core::RngCore;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Shortest gap between two answers to repeated copies of one message 1.
pub const ECHO_INTERVAL: Duration = Duration::from_millis(250);

/// Encodes an observed address for the handshake's extra payload.
fn encode_addr(a: SocketAddr) -> Vec<u8> {
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
fn decode_addr(b: &[u8]) -> Option<SocketAddr> {
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
        if self.by_addr.contains_key(&addr) {
            return;
        }
        if self.pending_handshakes() >= MAX_PENDING_HANDSHAKES {
            self.events.push_back(Event::ConnectFailed {
                addr,
                reason: "too many handshakes in flight".into(),
            });
            return;
        }
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let mut hs = match Handshake::with_static(Role::Initiator, &self.local_static, seed) {
            Ok(hs) => hs,
            Err(e) => {
                self.events.push_back(Event::ConnectFailed {
                    addr,
                    reason: e.to_string(),
                });
                return;
            }
        };
        let mut msg = [0u8; MAX_MESSAGE];
        let n = match hs.write(&[], &mut msg) {
            Ok(n) => n,
            Err(e) => {
                self.events.push_back(Event::ConnectFailed {
                    addr,
                    reason: e.to_string(),
                });
                return;
            }
        };
        self.pick_dial_owner();
        let idx = self.random_index();
        let datagram = self.handshake_datagram(Kind::Init, idx, 0, &msg[..n]);
        let now = self.now;
        self.sessions.insert(
            idx,
            Session {
                remote_index: 0,
                addr,
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
        self.by_addr.insert(addr, idx);
        self.stats.handshakes_initiated += 1;
        self.emit(addr, datagram);
    }

    fn pending_handshakes(&self) -> usize {
        self.sessions.len() - self.by_peer.len()
    }

    /// Builds a scrambled, padded handshake datagram.
    fn handshake_datagram(
        &mut self,
        kind: Kind,
        sender: u32,
        receiver: u32,
        noise: &[u8],
    ) -> Vec<u8> {
        let max_pad = u32::from(self.cfg.obfs_pad_max);
        let room = crate::wire::MAX_DATAGRAM
            .saturating_sub(moss_crypto::scramble::HEAD_LEN + HANDSHAKE_FIXED + noise.len())
            as u32;
        let pad_len = if max_pad == 0 {
            0
        } else {
            self.rng.next_u32() % (max_pad.min(room) + 1)
        } as u16;
        let mut nonce = [0u8; 12];
        self.rng.fill_bytes(&mut nonce);
        let head = Head::Handshake {
            kind,
            pad_len,
            nonce,
        }
        .encode();
        let mut d = self.buffer();
        d.extend_from_slice(&head);
        HandshakeBody {
            sender,
            receiver,
            noise,
        }
        .encode(&mut d);
        let start = d.len();
        d.resize(start + pad_len as usize, 0);
        self.rng.fill_bytes(&mut d[start..]);
        // Message 1 with no padding is 42 body bytes, above the 16-byte sample.
        self.scrambler
            .toggle_body(&nonce, &mut d[moss_crypto::scramble::HEAD_LEN..]);
        self.scrambler.toggle_head(&mut d);
        d
    }

    pub(crate) fn handle_handshake(
        &mut self,
        from: SocketAddr,
        kind: Kind,
        pad_len: u16,
        body: &[u8],
    ) {
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

    fn on_init(&mut self, from: SocketAddr, b: HandshakeBody<'_>) {
        if b.receiver != 0 {
            return self.drop_input(DropReason::BadHandshake);
        }
        // A retransmitted message 1: answer with the same message 2, but at
        // most once per echo interval, so replayed message 1s cannot turn
        // the node into a reflector.
        let now = self.now;
        if let Some(&idx) = self.by_addr.get(&from) {
            if let Some(s) = self.sessions.get_mut(&idx) {
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
        }
        if self.pending_handshakes() >= MAX_PENDING_HANDSHAKES
            || self.by_peer.len() >= self.cfg.max_peers as usize
        {
            return self.drop_input(DropReason::Capacity);
        }
        // Answering costs three X25519 operations: a flood of bogus message
        // 1s is cut off here, before any of them, so established sessions
        // keep their CPU.
        if !self.handshake_budget.take(1, now) {
            return self.drop_input(DropReason::HandshakeRateLimited);
        }
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let mut hs = match Handshake::with_static(Role::Responder, &self.local_static, seed) {
            Ok(hs) => hs,
            Err(_) => return self.drop_input(DropReason::BadHandshake),
        };
        if let Err(e) = hs.read(b.noise) {
            return self.drop_input(Self::fail_reason(&e));
        }
        let mut msg = [0u8; MAX_MESSAGE];
        let n = match hs.write(&encode_addr(from), &mut msg) {
            Ok(n) => n,
            Err(e) => return self.drop_input(Self::fail_reason(&e)),
        };
        let idx = self.random_index();
        let datagram = self.handshake_datagram(Kind::Response, idx, b.sender, &msg[..n]);
        let now = self.now;
        // A dial of ours to the same address loses to the incoming one only
        // after it completes; keep both slots, index maps point at the newest.
        self.sessions.insert(
            idx,
            Session {
                remote_index: b.sender,
                addr: from,
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
        self.by_addr.entry(from).or_insert(idx);
        self.emit(from, datagram);
    }

    fn on_response(&mut self, from: SocketAddr, b: HandshakeBody<'_>) {
        let idx = b.receiver;
        let Some(s) = self.sessions.get_mut(&idx) else {
            return self.drop_input(DropReason::UnknownSession);
        };
        if let State::Established(e) = &s.state {
            // Our message 3 was lost: the responder repeated message 2.
            if s.remote_index == b.sender {
                if let Some(d) = e.final_datagram.as_deref().map(<[u8]>::to_vec) {
                    let to = s.addr;
                    return self.emit(to, d);
                }
            }
            return self.drop_input(DropReason::BadHandshake);
        }
        let State::Initiating(p) = &mut s.state else {
            return self.drop_input(DropReason::BadHandshake);
        };
        let extra = match p.hs.read(b.noise) {
            Ok(x) => x,
            Err(e) => {
                let addr = s.addr;
                self.stats.handshakes_failed += 1;
                self.events.push_back(Event::ConnectFailed {
                    addr,
                    reason: e.to_string(),
                });
                self.remove_session(idx, None);
                return self.drop_input(Self::fail_reason(&e));
            }
        };
        let observed = decode_addr(&extra);
        let mut msg = [0u8; MAX_MESSAGE];
        let n = match p.hs.write(&encode_addr(from), &mut msg) {
            Ok(n) => n,
            Err(e) => return self.drop_input(Self::fail_reason(&e)),
        };
        s.remote_index = b.sender;
        s.addr = from;
        let datagram = self.handshake_datagram(Kind::Final, idx, b.sender, &msg[..n]);
        self.emit(from, datagram.clone());
        self.establish(idx, observed, Some(datagram.into_boxed_slice()));
    }

    fn on_final(&mut self, b: HandshakeBody<'_>) {
        let idx = b.receiver;
        let Some(s) = self.sessions.get_mut(&idx) else {
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
                self.stats.handshakes_failed += 1;
                self.remove_session(idx, None);
                self.drop_input(Self::fail_reason(&e));
            }
        }
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
        let Some(mut s) = self.sessions.remove(&idx) else {
            return;
        };
        let (pending, initiator) = match s.state {
            State::Initiating(p) => (p, true),
            State::Responding(p) => (p, false),
            State::Established(_) => {
                self.sessions.insert(idx, s);
                return;
            }
        };
        let out = match pending.hs.finish() {
            Ok(o) => o,
            Err(_) => {
                self.stats.handshakes_failed += 1;
                if self.by_addr.get(&s.addr) == Some(&idx) {
                    self.by_addr.remove(&s.addr);
                }
                return self.drop_input(DropReason::HandshakeAuth);
            }
        };
        s.last_recv = Stamp::at(now);
        let cipher = self.detach_cipher(
            idx,
            s.remote_index,
            s.addr,
            TransportCipher::new(&out.send_key, &out.recv_key),
        );
        s.state = State::Established(Box::new(Established {
            peer: out.remote,
            initiator,
            cipher,
            topics: Default::default(),
            pending: Vec::new(),
            final_datagram,
            reassembly: Reassembly::default(),
            bucket: TokenBucket::new(burst, rate, now),
            next_transfer: 0,
            observed,
        }));
        let addr = s.addr;
        self.sessions.insert(idx, s);
        self.stats.handshakes_completed += 1;
        let me = self.identity.public_key();
        if out.remote == me {
            self.remove_session(idx, None);
            return self.drop_input(DropReason::SelfConnect);
        }
        self.by_addr.insert(addr, idx);
        if let Some(&old) = self.by_peer.get(&out.remote) {
            if old != idx {
                // Keep the session initiated by the smaller peer id.
                let keeper_initiator = me.min(out.remote);
                let new_initiator = if initiator { me } else { out.remote };
                let (loser, winner) = if new_initiator == keeper_initiator {
                    (old, idx)
                } else {
                    (idx, old)
                };
                self.queue_frame(loser, &Frame::Close(1));
                self.seal_and_send(loser, false);
                self.by_peer.insert(out.remote, winner);
                self.remove_session(loser, None);
                if let Some(w) = self.sessions.get(&winner) {
                    let a = w.addr;
                    self.by_addr.insert(a, winner);
                }
                if winner == idx {
                    self.send_subscriptions(idx);
                }
                return;
            }
        }
        self.by_peer.insert(out.remote, idx);
        self.events.push_back(Event::PeerConnected {
            peer: out.remote,
            addr,
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
