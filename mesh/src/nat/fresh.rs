//! Filtering tests from a fresh local port (RFC 5780 tests II and III on
//! a mapping that has sent to nobody but the helper).
//!
//! The in-session probe (`probe.rs`) needs a third party whose IP the node
//! never sent to; a node that has punched to every peer has none left, so
//! its filtering was never learnt. Here the host opens one fresh UDP socket
//! ([`Node::poll_fresh_socket`]): behind an endpoint-independent mapping it
//! gets a mapping of its own, which has sent only what the test sends.
//!
//! 1. The requester sends FRESH_REQUEST (a txid and two random tokens,
//!    `seen` and `probe`) to a helper whose NAT lets its IP in from any port (a
//!    `public`, `full_cone` or `restricted_cone` peer); the helper picks a
//!    third party and answers PROBE_ACK naming it.
//! 2. The requester's fresh socket sends a NAT token datagram carrying
//!    `seen` to the helper (test III: first [`FRESH_COPIES`] to the third
//!    party's IP at its port + 1, which open an address-dependent filter
//!    to that IP).
//! 3. The helper takes the token's source as the fresh socket's address
//!    (only from the requester's session IP), orders the third party with
//!    FRESH_ORDER to send `probe` there ([`FRESH_COPIES`] datagrams, so one
//!    lost copy is not a miss) and tells the requester with FRESH_SEEN.
//! 4. A `probe` token arriving on the fresh socket from the third party's
//!    IP passes the filter: test II (an IP the mapping never sent to) →
//!    endpoint-independent, test III (the IP it sent to, another port) →
//!    address-dependent. None within [`FRESH_WAIT`] of FRESH_SEEN is a
//!    miss; [`FRESH_MISSES_FOR_NEGATIVE`] misses through distinct third
//!    parties make the test negative. No FRESH_SEEN (the token or a frame
//!    was lost) is inconclusive, and the probe is run again.
//!
//! A NAT token datagram is a handshake-class datagram of kind
//! [`Kind::NatToken`]: `token (16) ‖ random (16)`, scrambled like every
//! other, and never answered on the wire.

use super::{NatFrame, ProbeMode, ThirdParty, TOKEN_LEN};
use crate::node::Node;
use crate::path::Path;
use crate::wire::{Frame, Head, Kind};
use crate::Time;
use moss_crypto::scramble::HEAD_LEN;
use moss_crypto::PeerId;
use moss_telemetry::NatType;
use rand_core::RngCore;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The capability a node announces when it serves fresh-socket probes
/// (helper and third party: frames 0x58–0x5A, NAT token datagrams).
pub const FRESH_CAP_TOPIC: &str = "moss/cap/nat-fresh/v1";
/// First id of the host's fresh probe sockets (above the spray channels).
pub const FRESH_SOCKET_BASE: u64 = super::SPRAY_CHANNEL_BASE + (1 << 60);
/// Bytes of a NAT token datagram's body: the token and 16 random bytes.
pub const TOKEN_BODY: usize = TOKEN_LEN + 16;
/// Token datagrams a third party sends per order.
pub const FRESH_COPIES: usize = 3;
/// How long the probe token is awaited after FRESH_SEEN.
pub const FRESH_WAIT: Duration = Duration::from_secs(2);
/// How long the host keeps a fresh socket open.
pub const FRESH_HOLD: Duration = Duration::from_secs(8);
/// Misses through distinct third parties before a fresh test is negative.
pub const FRESH_MISSES_FOR_NEGATIVE: usize = 3;
/// How long a helper waits for the requester's token.
const FRESH_PENDING_TTL: Duration = Duration::from_secs(5);
/// Requests a helper keeps waiting for their token.
const MAX_FRESH_PENDING: usize = 16;
/// Socket orders waiting for the host.
const MAX_FRESH_ORDERS: usize = 4;

/// Why a NAT token datagram's body did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The head announced padding (a token datagram has none).
    #[error("padding {0} in a NAT token datagram")]
    Padding(u16),
    /// The body is not exactly [`TOKEN_BODY`] bytes.
    #[error("NAT token body of {0} bytes")]
    BadLength(usize),
}

/// A NAT token datagram's body: `token ‖ fill`.
pub fn encode_token_body(token: &[u8; TOKEN_LEN], fill: &[u8; 16]) -> [u8; TOKEN_BODY] {
    let mut b = [0u8; TOKEN_BODY];
    b[..TOKEN_LEN].copy_from_slice(token);
    b[TOKEN_LEN..].copy_from_slice(fill);
    b
}

/// Decodes an unscrambled NAT token body (total); `pad_len` must be 0.
pub fn decode_token_body(body: &[u8], pad_len: u16) -> Result<[u8; TOKEN_LEN], TokenError> {
    if pad_len != 0 {
        return Err(TokenError::Padding(pad_len));
    }
    if body.len() != TOKEN_BODY {
        return Err(TokenError::BadLength(body.len()));
    }
    let mut t = [0u8; TOKEN_LEN];
    t.copy_from_slice(&body[..TOKEN_LEN]);
    Ok(t)
}

/// Host work for a fresh-socket probe: open one new UDP socket (bound like
/// the node's own), send each of `sends` from it in order, keep it for
/// `hold`, and feed every datagram it receives to
/// [`Node::fresh_datagram`] with this `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshSocket {
    /// The socket's id (from [`FRESH_SOCKET_BASE`] up).
    pub id: u64,
    /// Datagrams to send from it: (destination, bytes).
    pub sends: Vec<(SocketAddr, Vec<u8>)>,
    /// How long it stays open.
    pub hold: Duration,
}

/// Requester side: the fresh part of a running probe.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fresh {
    pub socket: u64,
    pub seen_token: [u8; TOKEN_LEN],
    pub probe_token: [u8; TOKEN_LEN],
    /// The helper's address (where the `seen` token goes).
    pub helper_addr: SocketAddr,
    /// Where the helper saw the fresh socket (FRESH_SEEN arrived).
    pub seen: Option<SocketAddr>,
    /// The probe token arrived from the third party.
    pub reached: bool,
}

/// Helper side: a request waiting for the requester's `seen` token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FreshPending {
    requester: PeerId,
    ip: IpAddr,
    txid: u32,
    seen: [u8; TOKEN_LEN],
    probe: [u8; TOKEN_LEN],
    third: PeerId,
    until: Time,
}

/// Whether a helper of class `c` lets a fresh port of an IP it has a
/// session with reach it.
pub(crate) fn fresh_helper_class(c: NatType) -> bool {
    matches!(
        c,
        NatType::Public | NatType::FullCone | NatType::RestrictedCone
    )
}

impl Node {
    /// The next fresh probe socket the host must open (only when the host
    /// opens sockets, [`Node::enable_spray`]).
    pub fn poll_fresh_socket(&mut self) -> Option<FreshSocket> {
        self.nat.fresh_orders.pop_front()
    }

    /// A datagram that fresh socket `id` received from `from` (modified in
    /// place). Only the running probe's token from its third party's IP
    /// counts; anything else is dropped and counted.
    pub fn fresh_datagram(&mut self, now: Time, id: u64, from: SocketAddr, bytes: &mut [u8]) {
        self.now = now;
        let token = self.open_token(bytes);
        let probe = self.nat.probe.as_mut();
        let hit = match (probe, token) {
            (Some(p), Some(t)) => match (&mut p.fresh, p.third) {
                (Some(f), Some(third))
                    if f.socket == id
                        && f.probe_token == t
                        && from.ip() == third.addr.ip()
                        && from.ip() != f.helper_addr.ip() =>
                {
                    f.reached = true;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if hit {
            self.stats.nat.fresh_tokens_in += 1;
        } else {
            self.stats.nat.fresh_foreign += 1;
        }
    }

    /// Unscrambles a NAT token datagram and returns its token.
    fn open_token(&self, bytes: &mut [u8]) -> Option<[u8; TOKEN_LEN]> {
        let s = &self.handshaker.scrambler;
        if !s.toggle_head(bytes) {
            return None;
        }
        let raw: [u8; HEAD_LEN] = bytes.get(..HEAD_LEN)?.try_into().ok()?;
        match Head::decode(&raw) {
            Ok(Head::Handshake {
                kind: Kind::NatToken,
                pad_len,
                nonce,
            }) => {
                let body = &mut bytes[HEAD_LEN..];
                s.toggle_body(&nonce, body);
                decode_token_body(body, pad_len).ok()
            }
            _ => None,
        }
    }

    /// A scrambled NAT token datagram carrying `token`.
    fn token_datagram(&mut self, token: &[u8; TOKEN_LEN]) -> Vec<u8> {
        let mut fill = [0u8; 16];
        self.rng.fill_bytes(&mut fill);
        let body = encode_token_body(token, &fill);
        self.sealed_handshake_kind(Kind::NatToken, 0, &[&body])
    }

    /// Whether established session `idx` serves fresh-socket probes.
    pub(crate) fn fresh_capable(&self, idx: u32) -> bool {
        self.table
            .established(idx)
            .is_some_and(|e| e.topics.contains(FRESH_CAP_TOPIC))
    }

    /// Requester side: whether the next filtering test may run from a
    /// fresh socket, and through which helpers (session, peer, address).
    pub(crate) fn fresh_helpers(
        &self,
        peers: &[(u32, PeerId, SocketAddr)],
    ) -> Vec<(u32, PeerId, SocketAddr)> {
        if !self.nat.fresh_sockets {
            return Vec::new();
        }
        peers
            .iter()
            .filter(|&&(idx, p, _)| {
                self.fresh_capable(idx) && fresh_helper_class(self.nat.class_of(&p))
            })
            .copied()
            .collect()
    }

    /// Requester side: a fresh request to helper `helper` (session `idx`).
    pub(crate) fn nat_fresh_request(
        &mut self,
        idx: u32,
        helper: PeerId,
        helper_addr: SocketAddr,
        mode: ProbeMode,
    ) {
        let now = self.now;
        let txid = self.rng.next_u32();
        let mut seen = [0u8; TOKEN_LEN];
        let mut probe = [0u8; TOKEN_LEN];
        self.rng.fill_bytes(&mut seen);
        self.rng.fill_bytes(&mut probe);
        let socket = self.nat.next_fresh_id.max(FRESH_SOCKET_BASE);
        self.nat.next_fresh_id = socket + 1;
        self.nat.probe = Some(super::Probe {
            txid,
            mode,
            helper,
            sent: now,
            third: None,
            deadline: now + super::PROBE_WAIT,
            fresh: Some(Fresh {
                socket,
                seen_token: seen,
                probe_token: probe,
                helper_addr,
                seen: None,
                reached: false,
            }),
        });
        self.stats.nat.fresh_requests += 1;
        let f = NatFrame::FreshRequest { txid, seen, probe };
        self.queue_frame(idx, &Frame::Nat(f));
    }

    /// Requester side: the helper named third party `t` for fresh probe
    /// `txid`; false when it is of no use (the caller retries).
    pub(crate) fn nat_fresh_ack(&mut self, t: ThirdParty) -> bool {
        let now = self.now;
        let Some(p) = self.nat.probe.as_mut() else {
            return false;
        };
        let Some(f) = p.fresh else {
            return false;
        };
        // Test II needs a third party at another IP than the helper, the
        // only one the fresh mapping sent to.
        if p.mode == ProbeMode::OtherIp && t.addr.ip() == f.helper_addr.ip() {
            return false;
        }
        if self.nat.fresh_orders.len() >= MAX_FRESH_ORDERS {
            self.stats.nat.fresh_sockets_refused += 1;
            return false;
        }
        p.third = Some(t);
        p.deadline = now + super::PROBE_WAIT;
        let mode = p.mode;
        let mut sends = Vec::with_capacity(FRESH_COPIES + 1);
        if mode == ProbeMode::OtherPort {
            // Opens an address-dependent filter toward the third party's IP
            // (at a port it does not send from). As many copies as the third
            // party sends probes: one lost opener would turn a restricted
            // cone's pass into a miss (seen at 10 % loss in natlab).
            let port = if t.addr.port() == u16::MAX {
                1024
            } else {
                t.addr.port() + 1
            };
            for _ in 0..FRESH_COPIES {
                let mut junk = [0u8; TOKEN_LEN];
                self.rng.fill_bytes(&mut junk);
                let d = self.token_datagram(&junk);
                sends.push((SocketAddr::new(t.addr.ip(), port), d));
            }
        }
        let d = self.token_datagram(&f.seen_token);
        sends.push((f.helper_addr, d));
        self.nat.fresh_orders.push_back(FreshSocket {
            id: f.socket,
            sends,
            hold: FRESH_HOLD,
        });
        true
    }

    /// Requester side: the helper saw the fresh socket at `observed`.
    pub(crate) fn nat_fresh_seen(&mut self, peer: PeerId, txid: u32, observed: SocketAddr) {
        let now = self.now;
        let Some(p) = self.nat.probe_for(txid, peer) else {
            self.stats.nat.unsolicited_replies += 1;
            return;
        };
        match p.fresh.as_mut() {
            Some(f) if f.seen.is_none() => {
                f.seen = Some(observed);
                p.deadline = now + FRESH_WAIT;
                self.stats.nat.fresh_seen += 1;
            }
            _ => self.stats.nat.unsolicited_replies += 1,
        }
    }

    /// Helper side: a FRESH_REQUEST from `peer` (session `idx`, at
    /// `from`): name a third party now, order it when the token comes.
    pub(crate) fn nat_fresh_help(
        &mut self,
        idx: u32,
        peer: PeerId,
        from: Option<SocketAddr>,
        (txid, seen, probe): (u32, [u8; TOKEN_LEN], [u8; TOKEN_LEN]),
    ) {
        let now = self.now;
        let last = self.nat.last_request.get(&peer);
        let recent =
            last.is_some_and(|(t, _)| now.saturating_sub(*t) < super::PROBE_REQUEST_INTERVAL);
        self.nat.fresh_pending.retain(|p| p.until > now);
        let full = self.nat.fresh_pending.len() >= MAX_FRESH_PENDING;
        let Some(target) = from.filter(|_| !recent && !full) else {
            self.stats.nat.probe_requests_refused += 1;
            return;
        };
        let mut offered = self.nat.take_offered(&peer);
        if self.nat.last_request.len() >= super::MAX_PEER_NOTES {
            self.nat.last_request.clear();
        }
        // Any fresh-capable peer other than the requester, not behind its
        // NAT; one not offered to it yet when there is one.
        let pool: Vec<_> = self
            .nat_peers()
            .into_iter()
            .filter(|&(i, p, a)| p != peer && a.ip() != target.ip() && self.fresh_capable(i))
            .collect();
        let pool = super::not_offered(pool, &mut offered);
        let third = if pool.is_empty() {
            self.nat.last_request.insert(peer, (now, offered));
            self.stats.nat.probe_requests_refused += 1;
            None
        } else {
            let (_, tpeer, taddr) = pool[self.rng.next_u32() as usize % pool.len()];
            super::note_offered(&mut offered, tpeer);
            self.nat.last_request.insert(peer, (now, offered));
            self.nat.fresh_pending.push(FreshPending {
                requester: peer,
                ip: target.ip(),
                txid,
                seen,
                probe,
                third: tpeer,
                until: now + FRESH_PENDING_TTL,
            });
            Some(ThirdParty {
                peer: tpeer.0,
                addr: taddr,
                class: self.nat.class_of(&tpeer),
            })
        };
        self.queue_frame(idx, &Frame::Nat(NatFrame::ProbeAck { txid, third }));
    }

    /// Helper side: a NAT token datagram arrived on `from`. Never answered
    /// on the wire.
    pub(crate) fn nat_token(&mut self, from: Path, pad_len: u16, body: &[u8]) {
        let (Some(addr), Ok(token)) = (from.udp(), decode_token_body(body, pad_len)) else {
            self.stats.nat.fresh_tokens_unmatched += 1;
            return;
        };
        let now = self.now;
        let Some(i) = self
            .nat
            .fresh_pending
            .iter()
            .position(|p| p.seen == token && p.ip == addr.ip() && p.until > now)
        else {
            self.stats.nat.fresh_tokens_unmatched += 1;
            return;
        };
        let p = self.nat.fresh_pending.swap_remove(i);
        let (Some(ridx), Some(tidx)) = (
            self.table.by_peer(&p.requester),
            self.table.by_peer(&p.third),
        ) else {
            self.stats.nat.fresh_tokens_unmatched += 1;
            return;
        };
        self.stats.nat.fresh_helped += 1;
        let order = NatFrame::FreshOrder {
            token: p.probe,
            target: addr,
        };
        self.queue_frame(tidx, &Frame::Nat(order));
        let seen = NatFrame::FreshSeen {
            txid: p.txid,
            observed: addr,
        };
        self.queue_frame(ridx, &Frame::Nat(seen));
    }

    /// Third-party side: send the probe token to `target`, within the
    /// order budget shared with PROBE_ORDER.
    pub(crate) fn nat_fresh_order(&mut self, token: [u8; TOKEN_LEN], target: SocketAddr) {
        let now = self.now;
        super::prune_window(&mut self.nat.orders, now);
        if self.nat.orders.len() >= super::ORDER_BURST {
            self.stats.nat.probe_orders_refused += 1;
            return;
        }
        self.nat.orders.push_back(now);
        self.stats.nat.probe_orders_done += 1;
        for _ in 0..FRESH_COPIES {
            let d = self.token_datagram(&token);
            self.emit(Path::Udp(target), d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bodies_decode_exactly() {
        let b = encode_token_body(&[7; TOKEN_LEN], &[9; 16]);
        assert_eq!(decode_token_body(&b, 0), Ok([7; TOKEN_LEN]));
        assert_eq!(decode_token_body(&b, 1), Err(TokenError::Padding(1)));
        assert_eq!(
            decode_token_body(&b[..TOKEN_BODY - 1], 0),
            Err(TokenError::BadLength(TOKEN_BODY - 1))
        );
        let mut long = b.to_vec();
        long.push(0);
        assert_eq!(
            decode_token_body(&long, 0),
            Err(TokenError::BadLength(TOKEN_BODY + 1))
        );
        assert_eq!(decode_token_body(&[], 0), Err(TokenError::BadLength(0)));
    }

    #[test]
    fn only_helpers_that_let_any_port_of_a_known_ip_in() {
        use NatType::*;
        for c in [Public, FullCone, RestrictedCone] {
            assert!(fresh_helper_class(c), "{c:?}");
        }
        for c in [PortRestrictedCone, SymmetricNat, Cgnat, Unknown] {
            assert!(!fresh_helper_class(c), "{c:?}");
        }
    }

    use crate::{Config, Identity};
    use moss_nat::classify::Filtering;
    use std::collections::HashSet;

    /// A requester behind an endpoint-independent NAT with `filter`
    /// filtering: its main socket and each fresh socket get one mapping
    /// (the fresh ones at ports 5000 up), and only what the filter lets in
    /// reaches them.
    struct Lab {
        nodes: Vec<Node>,
        /// Public addresses; node 0's is its NAT's mapping of the main socket.
        addrs: Vec<SocketAddr>,
        filter: Filtering,
        /// Per mapping (main = None, fresh socket id): the external address
        /// and the destinations it sent to.
        maps: Vec<(Option<u64>, SocketAddr, HashSet<SocketAddr>)>,
        /// Drop one datagram in `loss` crossing the NAT (0: none).
        loss: u32,
        rng: u64,
        now: Time,
    }

    const NAT_IP: [u8; 4] = [203, 0, 113, 100];

    impl Lab {
        fn new(filter: Filtering, loss: u32, seed: u64) -> Self {
            let mut addrs: Vec<SocketAddr> = vec![SocketAddr::from((NAT_IP, 4000))];
            for i in 1..=4u8 {
                addrs.push(SocketAddr::from(([198, 51, 100, i], 4000)));
            }
            let nodes = (0..addrs.len())
                .map(|i| {
                    let mut n = Node::new(
                        Config::default(),
                        Identity::from_seed([i as u8 + 1; 32]),
                        "fresh",
                        None,
                        [i as u8 + seed as u8; 32],
                        Duration::ZERO,
                    )
                    .unwrap();
                    n.enable_spray(super::super::SPRAY_SOCKETS);
                    n
                })
                .collect();
            let mut lab = Lab {
                nodes,
                addrs,
                filter,
                maps: vec![(None, SocketAddr::from((NAT_IP, 4000)), HashSet::new())],
                loss,
                rng: seed.wrapping_mul(6364136223846793005).wrapping_add(1),
                now: Duration::ZERO,
            };
            lab.nodes[0].set_local_addrs(&["192.168.1.2:4000".parse().unwrap()]);
            for i in 1..lab.addrs.len() {
                let a = lab.addrs[i];
                lab.nodes[i].set_local_addrs(&[a]);
                // The requester knows everyone (so none is a third party
                // its main mapping never sent to); node 1 knows the rest.
                lab.nodes[0].add_static_peer(a);
                if i > 1 {
                    let h = lab.addrs[1];
                    lab.nodes[i].add_static_peer(h);
                }
            }
            lab
        }

        fn lost(&mut self) -> bool {
            if self.loss == 0 {
                return false;
            }
            self.rng = self
                .rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.rng >> 33).is_multiple_of(u64::from(self.loss))
        }

        /// Whether the NAT lets a datagram from `from` into mapping `m`.
        fn admits(&self, m: usize, from: SocketAddr) -> bool {
            let sent = &self.maps[m].2;
            match self.filter {
                Filtering::EndpointIndependent => true,
                Filtering::AddressDependent => sent.iter().any(|a| a.ip() == from.ip()),
                _ => sent.contains(&from),
            }
        }

        /// Delivers `bytes` from `from` to `to` (through the NAT if there).
        fn deliver(&mut self, from: SocketAddr, to: SocketAddr, mut bytes: Vec<u8>) {
            if to.ip() == IpAddr::from(NAT_IP) {
                let Some(m) = self.maps.iter().position(|m| m.1 == to) else {
                    return;
                };
                if self.lost() || !self.admits(m, from) {
                    return;
                }
                let now = self.now;
                match self.maps[m].0 {
                    None => self.nodes[0].handle_datagram(now, from, &mut bytes),
                    Some(id) => self.nodes[0].fresh_datagram(now, id, from, &mut bytes),
                }
            } else if let Some(j) = self.addrs.iter().position(|a| *a == to) {
                let now = self.now;
                self.nodes[j].handle_datagram(now, from, &mut bytes);
            }
        }

        fn step(&mut self) {
            self.now += Duration::from_millis(20);
            let now = self.now;
            for i in 0..self.nodes.len() {
                self.nodes[i].handle_timeout(now);
                let out: Vec<_> = std::iter::from_fn(|| self.nodes[i].poll_transmit()).collect();
                for t in out {
                    let Some(to) = t.to.udp() else { continue };
                    if i == 0 {
                        self.maps[0].2.insert(to);
                        if self.lost() {
                            continue;
                        }
                    }
                    let from = self.addrs[i];
                    self.deliver(from, to, t.bytes);
                }
            }
            while let Some(o) = self.nodes[0].poll_fresh_socket() {
                let ext = SocketAddr::from((NAT_IP, 5000 + self.maps.len() as u16));
                self.maps.push((Some(o.id), ext, HashSet::new()));
                let m = self.maps.len() - 1;
                for (to, d) in o.sends {
                    self.maps[m].2.insert(to);
                    if !self.lost() {
                        self.deliver(ext, to, d);
                    }
                }
            }
        }

        /// Runs until node 0 classifies (bounded); its class and when.
        fn classify(&mut self, secs: u64) -> (NatType, Time) {
            while self.now < Duration::from_secs(secs) {
                self.step();
                let c = self.nodes[0].nat_verdict().class;
                if c != NatType::Unknown {
                    return (c, self.now);
                }
            }
            (NatType::Unknown, self.now)
        }
    }

    #[test]
    fn a_cone_that_contacted_every_peer_classifies_from_a_fresh_socket() {
        for (filter, want) in [
            (Filtering::EndpointIndependent, NatType::FullCone),
            (Filtering::AddressDependent, NatType::RestrictedCone),
            (
                Filtering::AddressAndPortDependent,
                NatType::PortRestrictedCone,
            ),
        ] {
            let mut lab = Lab::new(filter, 0, 1);
            let (got, at) = lab.classify(120);
            let st = lab.nodes[0].stats().nat.clone();
            assert_eq!(got, want, "{filter:?} after {at:?}: {st:?}");
            assert!(st.fresh_requests > 0, "{st:?}");
            // It never learnt its filtering from the in-session probe.
            assert_eq!(st.probes_reached + st.probes_missed, 0, "{st:?}");
            let helped: u64 = lab.nodes[1..]
                .iter()
                .map(|n| n.stats().nat.fresh_helped)
                .sum();
            assert!(helped > 0);
        }
    }

    #[test]
    fn with_one_datagram_in_ten_lost_at_the_nat_every_cone_is_still_right() {
        for seed in 1..=4 {
            for (filter, want) in [
                (Filtering::EndpointIndependent, NatType::FullCone),
                (Filtering::AddressDependent, NatType::RestrictedCone),
                (
                    Filtering::AddressAndPortDependent,
                    NatType::PortRestrictedCone,
                ),
            ] {
                let mut lab = Lab::new(filter, 10, seed);
                let (got, at) = lab.classify(180);
                let st = lab.nodes[0].stats().nat.clone();
                assert_eq!(got, want, "seed {seed} {filter:?} after {at:?}: {st:?}");
            }
        }
    }

    #[test]
    fn a_token_from_elsewhere_or_a_wrong_token_proves_nothing() {
        let mut lab = Lab::new(Filtering::AddressAndPortDependent, 0, 3);
        // Until a fresh probe is out, with its third party named.
        while lab.now < Duration::from_secs(60) {
            lab.step();
            let p = lab.nodes[0].nat.probe;
            if p.is_some_and(|p| p.fresh.is_some_and(|f| f.seen.is_some())) {
                break;
            }
        }
        let p = lab.nodes[0].nat.probe.expect("a fresh probe runs");
        let (f, third) = (p.fresh.unwrap(), p.third.unwrap());
        let now = lab.now;
        // The right token from the helper's IP, a wrong token from the
        // third party, the right one on another socket: none counts.
        let mut d = lab.nodes[1].token_datagram(&f.probe_token);
        lab.nodes[0].fresh_datagram(now, f.socket, f.helper_addr, &mut d);
        let mut d = lab.nodes[1].token_datagram(&[0xEE; TOKEN_LEN]);
        lab.nodes[0].fresh_datagram(now, f.socket, third.addr, &mut d);
        let mut d = lab.nodes[1].token_datagram(&f.probe_token);
        lab.nodes[0].fresh_datagram(now, f.socket + 1, third.addr, &mut d);
        let mut junk = vec![0u8; 48];
        lab.nodes[0].fresh_datagram(now, f.socket, third.addr, &mut junk);
        assert_eq!(lab.nodes[0].stats().nat.fresh_foreign, 4);
        assert!(!lab.nodes[0].nat.probe.unwrap().fresh.unwrap().reached);
        // The right one from the third party does.
        let mut d = lab.nodes[1].token_datagram(&f.probe_token);
        lab.nodes[0].fresh_datagram(now, f.socket, third.addr, &mut d);
        assert!(lab.nodes[0].nat.probe.unwrap().fresh.unwrap().reached);
    }

    #[test]
    fn a_helper_ignores_tokens_it_did_not_ask_for_and_answers_none() {
        let mut lab = Lab::new(Filtering::EndpointIndependent, 0, 5);
        for _ in 0..100 {
            lab.step();
        }
        let before = lab.nodes[1].stats().nat.fresh_tokens_unmatched;
        let mut d = lab.nodes[2].token_datagram(&[1; TOKEN_LEN]);
        let now = lab.now;
        lab.nodes[1].handle_datagram(now, "192.0.2.9:7".parse().unwrap(), &mut d);
        assert_eq!(lab.nodes[1].stats().nat.fresh_tokens_unmatched, before + 1);
        let out: Vec<_> = std::iter::from_fn(|| lab.nodes[1].poll_transmit()).collect();
        assert!(
            out.iter()
                .all(|t| t.to.udp() != Some("192.0.2.9:7".parse().unwrap())),
            "silence toward the sender"
        );
    }
}
