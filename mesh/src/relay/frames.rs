//! The relay frames (types 0x60–0x6F, `docs/PROTOCOL.md` "Relay frames"):
//! their bodies, strict decoders and the bytes each signature covers. They
//! are sent only to peers subscribed to [`super::CAP_TOPIC`].

use crate::wire::Frame;
use moss_crypto::{Identity, PeerId};
use std::net::SocketAddr;

/// Frame type of a supernode announcement.
pub const ANNOUNCE: u8 = 0x60;
/// Frame type of a supernode revocation.
pub const REVOKE: u8 = 0x61;
/// Frame type of a relay request.
pub const REQUEST: u8 = 0x62;
/// Frame type of a relay accept.
pub const ACCEPT: u8 = 0x63;
/// Frame type of a relay refusal.
pub const REFUSE: u8 = 0x64;
/// Frame type of a relayed datagram carried inside a session.
pub const DATA: u8 = 0x65;
/// Frame type of a relay close.
pub const CLOSE: u8 = 0x66;
/// Frame type of a supernode's load report (sent only to peers subscribed
/// to [`super::LOAD_CAP_TOPIC`]).
pub const LOAD: u8 = 0x67;

const SIG: usize = 64;

/// A relay frame body that does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayFrameError {
    /// The body is shorter or longer than its layout.
    #[error("relay frame body has the wrong length")]
    Length,
    /// A type of the relay range that is not defined.
    #[error("unknown relay frame type {0:#04x}")]
    UnknownType(u8),
    /// An address that is not `4 ‖ ipv4 ‖ port` or `6 ‖ ipv6 ‖ port`.
    #[error("bad address")]
    Address,
    /// A refusal reason that is not defined.
    #[error("unknown refusal reason {0}")]
    Reason(u8),
}

/// Why a supernode refused a relay request (sent back in [`Relay::Refuse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefuseReason {
    /// `relay_max_sessions` sessions are open.
    Full = 1,
    /// The requester asked to reach itself.
    SamePeer = 2,
    /// The target is not connected to the supernode (or cannot relay).
    TargetUnreachable = 3,
    /// The node is not a supernode (now).
    NotSupernode = 4,
    /// The requester asks faster than the supernode answers.
    RateLimited = 5,
    /// The request's signature does not verify.
    BadSignature = 6,
}

impl RefuseReason {
    fn from_u8(b: u8) -> Result<Self, RelayFrameError> {
        Ok(match b {
            1 => Self::Full,
            2 => Self::SamePeer,
            3 => Self::TargetUnreachable,
            4 => Self::NotSupernode,
            5 => Self::RateLimited,
            6 => Self::BadSignature,
            other => return Err(RelayFrameError::Reason(other)),
        })
    }

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::SamePeer => "same_peer",
            Self::TargetUnreachable => "target_unreachable",
            Self::NotSupernode => "not_supernode",
            Self::RateLimited => "rate_limited",
            Self::BadSignature => "bad_signature",
        }
    }
}

/// A supernode's announcement or revocation: who, a sequence number (a
/// newer one replaces an older), hops travelled (not signed, forwarders
/// raise it) and the node's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// The supernode.
    pub node: PeerId,
    /// Its announcement counter.
    pub seq: u64,
    /// Links travelled so far.
    pub hops: u8,
    /// Ed25519 by `node` over [`Announce::signing_bytes`].
    pub signature: [u8; SIG],
}

impl Announce {
    /// The bytes signed: label (`moss/supernode/v1` or
    /// `moss/supernode-revoke/v1`) ‖ node ‖ `u64_le(seq)`.
    pub fn signing_bytes(revoke: bool, node: &PeerId, seq: u64) -> Vec<u8> {
        let label: &[u8] = if revoke {
            b"moss/supernode-revoke/v1"
        } else {
            b"moss/supernode/v1"
        };
        let mut b = Vec::with_capacity(label.len() + 40);
        b.extend_from_slice(label);
        b.extend_from_slice(&node.0);
        b.extend_from_slice(&seq.to_le_bytes());
        b
    }

    /// A signed announcement (or revocation) by `id`.
    pub fn sign(id: &Identity, revoke: bool, seq: u64) -> Self {
        let node = id.public_key();
        Self {
            node,
            seq,
            hops: 0,
            signature: id.sign(&Self::signing_bytes(revoke, &node, seq)),
        }
    }

    /// True if the signature is the node's.
    pub fn verify(&self, revoke: bool) -> bool {
        self.node.verify(
            &Self::signing_bytes(revoke, &self.node, self.seq),
            &self.signature,
        )
    }
}

/// A supernode's load: relay sessions in use and its `relay_max_sessions`,
/// signed, under the announcement (`seq`) it belongs to; `count` orders the
/// reports of one announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// The supernode.
    pub node: PeerId,
    /// The announcement counter it belongs to.
    pub seq: u64,
    /// Its report counter within that announcement.
    pub count: u32,
    /// Relay sessions in use.
    pub used: u32,
    /// Its `relay_max_sessions`.
    pub limit: u32,
    /// Links travelled so far.
    pub hops: u8,
    /// Ed25519 by `node` over [`Load::signing_bytes`].
    pub signature: [u8; SIG],
}

impl Load {
    /// The bytes signed: `moss/supernode-load/v1` ‖ node ‖ `u64_le(seq)` ‖
    /// `u32_le(count)` ‖ `u32_le(used)` ‖ `u32_le(limit)`.
    pub fn signing_bytes(node: &PeerId, seq: u64, count: u32, used: u32, limit: u32) -> Vec<u8> {
        let label: &[u8] = b"moss/supernode-load/v1";
        let mut b = Vec::with_capacity(label.len() + 52);
        b.extend_from_slice(label);
        b.extend_from_slice(&node.0);
        b.extend_from_slice(&seq.to_le_bytes());
        for x in [count, used, limit] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b
    }

    /// A signed report by `id`.
    pub fn sign(id: &Identity, seq: u64, count: u32, used: u32, limit: u32) -> Self {
        let node = id.public_key();
        Self {
            node,
            seq,
            count,
            used,
            limit,
            hops: 0,
            signature: id.sign(&Self::signing_bytes(&node, seq, count, used, limit)),
        }
    }

    /// True if the signature is the node's.
    pub fn verify(&self) -> bool {
        let b = Self::signing_bytes(&self.node, self.seq, self.count, self.used, self.limit);
        self.node.verify(&b, &self.signature)
    }

    /// Sessions in use over the limit (1 when the limit is 0: full).
    pub fn fraction(&self) -> f64 {
        if self.limit == 0 {
            1.0
        } else {
            f64::from(self.used) / f64::from(self.limit)
        }
    }
}

/// A relay request: "relay my session with `target`", signed by the
/// requester over the relay's id too, so it cannot be replayed elsewhere.
/// A requester that knows only an address (its dial timed out) names the
/// target as all zeros and gives the address: the supernode looks for the
/// peer whose session with it comes from there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The peer to reach (all zeros: the peer at `addr`).
    pub target: PeerId,
    /// The requester's nonce, echoed in the accept or refusal.
    pub nonce: u64,
    /// The address the requester dialled, if it has one.
    pub addr: Option<SocketAddr>,
    /// Ed25519 by the requester over [`Request::signing_bytes`].
    pub signature: [u8; SIG],
}

impl Request {
    fn encode_unsigned(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.target.0);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        match self.addr {
            Some(a) => encode_addr(a, out),
            None => out.push(0),
        }
    }

    /// `"moss/relay-request/v1" ‖ relay ‖ the body before the signature`.
    pub fn signing_bytes(&self, relay: &PeerId) -> Vec<u8> {
        let mut b = Vec::with_capacity(21 + 92);
        b.extend_from_slice(b"moss/relay-request/v1");
        b.extend_from_slice(&relay.0);
        self.encode_unsigned(&mut b);
        b
    }

    /// A request signed by `id` for relay `relay`.
    pub fn sign(
        id: &Identity,
        relay: &PeerId,
        target: PeerId,
        addr: Option<SocketAddr>,
        nonce: u64,
    ) -> Self {
        let mut r = Self {
            target,
            nonce,
            addr,
            signature: [0; SIG],
        };
        r.signature = id.sign(&r.signing_bytes(relay));
        r
    }

    /// True if `requester` signed it for `relay`.
    pub fn verify(&self, relay: &PeerId, requester: &PeerId) -> bool {
        requester.verify(&self.signing_bytes(relay), &self.signature)
    }
}

/// A relay accept, sent by the supernode to both ends and signed by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// The relay session id (the `session` of [`crate::Path::Relay`]).
    pub session: u64,
    /// The end that asked.
    pub initiator: PeerId,
    /// The end it wants to reach.
    pub responder: PeerId,
    /// The initiator's nonce.
    pub nonce: u64,
    /// Seconds the session lasts unless renewed.
    pub ttl_sec: u32,
    /// The receiving end's peer as the supernode sees it (a direct
    /// address to try later: migration).
    pub peer_addr: SocketAddr,
    /// Ed25519 by the supernode over [`Accept::signing_bytes`].
    pub signature: [u8; SIG],
}

impl Accept {
    /// `"moss/relay-accept/v1" ‖ relay ‖ the body before the signature`.
    pub fn signing_bytes(&self, relay: &PeerId) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(b"moss/relay-accept/v1");
        b.extend_from_slice(&relay.0);
        self.encode_unsigned(&mut b);
        b
    }

    fn encode_unsigned(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.session.to_le_bytes());
        out.extend_from_slice(&self.initiator.0);
        out.extend_from_slice(&self.responder.0);
        out.extend_from_slice(&self.nonce.to_le_bytes());
        out.extend_from_slice(&self.ttl_sec.to_le_bytes());
        encode_addr(self.peer_addr, out);
    }

    /// True if `relay` signed it.
    pub fn verify(&self, relay: &PeerId) -> bool {
        relay.verify(&self.signing_bytes(relay), &self.signature)
    }
}

/// One decoded relay frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay<'a> {
    /// 0x60: a node became a supernode.
    Announce(Announce),
    /// 0x61: a supernode stepped down.
    Revoke(Announce),
    /// 0x62: relay me to a target.
    Request(Request),
    /// 0x63: the relay session is open.
    Accept(Accept),
    /// 0x64: the request was refused.
    Refuse {
        /// The request's nonce.
        nonce: u64,
        /// The target it named.
        target: PeerId,
        /// Why.
        reason: RefuseReason,
    },
    /// 0x65: a datagram of the ends' own session (a handshake message, or
    /// data too early for the data plane).
    Data {
        /// The relay session.
        session: u64,
        /// The ends' datagram, untouched.
        datagram: &'a [u8],
    },
    /// 0x66: the relay session ends.
    Close {
        /// The relay session.
        session: u64,
    },
    /// 0x67: a supernode's load.
    Load(Load),
}

// Addresses use the handshake's observed-address codec (`crate::nat`):
// `4 ‖ ipv4 ‖ port` or `6 ‖ ipv6 ‖ port`, port big-endian.
use crate::nat::encode_addr;

fn decode_addr(b: &[u8]) -> Result<SocketAddr, RelayFrameError> {
    crate::nat::decode_addr(b).map_err(|_| RelayFrameError::Address)
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

impl<'a> Relay<'a> {
    /// The frame type.
    pub fn frame_type(&self) -> u8 {
        match self {
            Self::Announce(_) => ANNOUNCE,
            Self::Revoke(_) => REVOKE,
            Self::Request(_) => REQUEST,
            Self::Accept(_) => ACCEPT,
            Self::Refuse { .. } => REFUSE,
            Self::Data { .. } => DATA,
            Self::Close { .. } => CLOSE,
            Self::Load(_) => LOAD,
        }
    }

    /// The body bytes.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Self::Announce(a) | Self::Revoke(a) => {
                out.extend_from_slice(&a.node.0);
                out.extend_from_slice(&a.seq.to_le_bytes());
                out.push(a.hops);
                out.extend_from_slice(&a.signature);
            }
            Self::Request(r) => {
                r.encode_unsigned(out);
                out.extend_from_slice(&r.signature);
            }
            Self::Accept(a) => {
                a.encode_unsigned(out);
                out.extend_from_slice(&a.signature);
            }
            Self::Refuse {
                nonce,
                target,
                reason,
            } => {
                out.extend_from_slice(&nonce.to_le_bytes());
                out.extend_from_slice(&target.0);
                out.push(*reason as u8);
            }
            Self::Data { session, datagram } => {
                out.extend_from_slice(&session.to_le_bytes());
                out.extend_from_slice(datagram);
            }
            Self::Close { session } => out.extend_from_slice(&session.to_le_bytes()),
            Self::Load(l) => {
                out.extend_from_slice(&l.node.0);
                out.extend_from_slice(&l.seq.to_le_bytes());
                for x in [l.count, l.used, l.limit] {
                    out.extend_from_slice(&x.to_le_bytes());
                }
                out.push(l.hops);
                out.extend_from_slice(&l.signature);
            }
        }
    }

    /// The whole frame (`type ‖ body_len ‖ body`) as a [`Frame::Relay`]
    /// would encode it.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::new();
        self.encode_body(&mut body);
        Frame::Relay {
            ty: self.frame_type(),
            body: &body,
        }
        .encode(out);
    }

    /// Decodes the body of a frame of type `ty` (strict: exact lengths).
    pub fn decode(ty: u8, b: &'a [u8]) -> Result<Self, RelayFrameError> {
        let exact = |n: usize| {
            if b.len() == n {
                Ok(())
            } else {
                Err(RelayFrameError::Length)
            }
        };
        Ok(match ty {
            ANNOUNCE | REVOKE => {
                exact(32 + 8 + 1 + SIG)?;
                let a = Announce {
                    node: PeerId(arr(b)),
                    seq: u64::from_le_bytes(arr(&b[32..])),
                    hops: b[40],
                    signature: arr(&b[41..]),
                };
                if ty == ANNOUNCE {
                    Self::Announce(a)
                } else {
                    Self::Revoke(a)
                }
            }
            REQUEST => {
                if b.len() < 40 + 1 + SIG {
                    return Err(RelayFrameError::Length);
                }
                let (head, signature) = b.split_at(b.len() - SIG);
                let addr = match &head[40..] {
                    [0] => None,
                    a => Some(decode_addr(a)?),
                };
                Self::Request(Request {
                    target: PeerId(arr(head)),
                    nonce: u64::from_le_bytes(arr(&head[32..])),
                    addr,
                    signature: arr(signature),
                })
            }
            ACCEPT => {
                const FIXED: usize = 8 + 32 + 32 + 8 + 4;
                if b.len() < FIXED + 7 + SIG {
                    return Err(RelayFrameError::Length);
                }
                let (head, signature) = b.split_at(b.len() - SIG);
                Self::Accept(Accept {
                    session: u64::from_le_bytes(arr(head)),
                    initiator: PeerId(arr(&head[8..])),
                    responder: PeerId(arr(&head[40..])),
                    nonce: u64::from_le_bytes(arr(&head[72..])),
                    ttl_sec: u32::from_le_bytes(arr(&head[80..])),
                    peer_addr: decode_addr(&head[FIXED..])?,
                    signature: arr(signature),
                })
            }
            LOAD => {
                exact(32 + 8 + 12 + 1 + SIG)?;
                Self::Load(Load {
                    node: PeerId(arr(b)),
                    seq: u64::from_le_bytes(arr(&b[32..])),
                    count: u32::from_le_bytes(arr(&b[40..])),
                    used: u32::from_le_bytes(arr(&b[44..])),
                    limit: u32::from_le_bytes(arr(&b[48..])),
                    hops: b[52],
                    signature: arr(&b[53..]),
                })
            }
            REFUSE => {
                exact(8 + 32 + 1)?;
                Self::Refuse {
                    nonce: u64::from_le_bytes(arr(b)),
                    target: PeerId(arr(&b[8..])),
                    reason: RefuseReason::from_u8(b[40])?,
                }
            }
            DATA => {
                if b.len() < 8 {
                    return Err(RelayFrameError::Length);
                }
                Self::Data {
                    session: u64::from_le_bytes(arr(b)),
                    datagram: &b[8..],
                }
            }
            CLOSE => {
                exact(8)?;
                Self::Close {
                    session: u64::from_le_bytes(arr(b)),
                }
            }
            other => return Err(RelayFrameError::UnknownType(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(f: Relay<'_>) {
        let mut body = Vec::new();
        f.encode_body(&mut body);
        assert_eq!(Relay::decode(f.frame_type(), &body), Ok(f));
        // One byte more or less never decodes (strict layouts), except
        // DATA whose datagram is the rest of the body.
        if !matches!(f, Relay::Data { .. }) {
            body.push(0);
            assert!(Relay::decode(f.frame_type(), &body).is_err());
            body.truncate(body.len() - 2);
            assert!(Relay::decode(f.frame_type(), &body).is_err());
        }
    }

    #[test]
    fn every_frame_round_trips_and_signatures_bind() {
        let relay = Identity::from_seed([1; 32]);
        let a = Announce::sign(&relay, false, 7);
        assert!(a.verify(false));
        assert!(!a.verify(true), "an announcement is no revocation");
        let mut forged = a;
        forged.seq = 8;
        assert!(!forged.verify(false));
        round_trip(Relay::Announce(a));
        round_trip(Relay::Revoke(Announce::sign(&relay, true, 8)));
        let l = Load::sign(&relay, 7, 3, 12, 50);
        assert!(l.verify());
        assert!((l.fraction() - 0.24).abs() < 1e-12);
        let mut bad = l;
        bad.used = 1;
        assert!(!bad.verify(), "the load is signed");
        round_trip(Relay::Load(l));
        let me = Identity::from_seed([2; 32]);
        let mut req = Request::sign(&me, &relay.public_key(), PeerId([3; 32]), None, 9);
        assert!(req.verify(&relay.public_key(), &me.public_key()));
        assert!(
            !req.verify(&PeerId([9; 32]), &me.public_key()),
            "bound to the relay"
        );
        round_trip(Relay::Request(req));
        req.addr = Some("198.51.100.4:4000".parse().unwrap());
        assert!(!req.verify(&relay.public_key(), &me.public_key()));
        round_trip(Relay::Request(req));
        let mut acc = Accept {
            session: 5,
            initiator: PeerId([2; 32]),
            responder: PeerId([3; 32]),
            nonce: 9,
            ttl_sec: 1800,
            peer_addr: "[2001:db8::1]:7".parse().unwrap(),
            signature: [0; 64],
        };
        acc.signature = relay.sign(&acc.signing_bytes(&relay.public_key()));
        assert!(acc.verify(&relay.public_key()));
        assert!(!acc.verify(&PeerId([2; 32])));
        round_trip(Relay::Accept(acc));
        acc.peer_addr = "192.0.2.1:9".parse().unwrap();
        assert!(!acc.verify(&relay.public_key()), "the address is signed");
        round_trip(Relay::Accept(acc));
        round_trip(Relay::Refuse {
            nonce: 1,
            target: PeerId([3; 32]),
            reason: RefuseReason::Full,
        });
        round_trip(Relay::Data {
            session: 1,
            datagram: b"xyz",
        });
        round_trip(Relay::Close { session: 1 });
        assert_eq!(
            Relay::decode(0x6f, &[]),
            Err(RelayFrameError::UnknownType(0x6f))
        );
        assert_eq!(
            Relay::decode(REFUSE, &[0; 41]),
            Err(RelayFrameError::Reason(0))
        );
    }
}
