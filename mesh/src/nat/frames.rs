//! The NAT frames (types 0x50–0x5F, `docs/PROTOCOL.md` "NAT traversal
//! frames"): sent only to peers subscribed to [`super::CAP_TOPIC`].
//! Every decoder is total.

use super::addr::{addr_len, decode_addr, encode_addr, split_addr, AddrError};
use moss_telemetry::NatType;
use std::net::SocketAddr;

/// Frame type bytes.
pub(crate) mod ty {
    pub const BINDING_REQUEST: u8 = 0x50;
    pub const BINDING_RESPONSE: u8 = 0x51;
    pub const PROBE_REQUEST: u8 = 0x52;
    pub const PROBE_ORDER: u8 = 0x53;
    pub const PROBE_ACK: u8 = 0x54;
    pub const NAT_CLASS: u8 = 0x55;
    pub const PUNCH_REQUEST: u8 = 0x56;
    pub const PUNCH_OFFER: u8 = 0x57;
    pub const FRESH_REQUEST: u8 = 0x58;
    pub const FRESH_ORDER: u8 = 0x59;
    pub const FRESH_SEEN: u8 = 0x5A;
    pub const MAPPED: u8 = 0x5B;
    pub const FIRST: u8 = 0x50;
    pub const LAST: u8 = 0x5F;
}

/// Why a NAT frame body did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NatFrameError {
    /// Fewer bytes than the fixed fields.
    #[error("truncated NAT frame")]
    Truncated,
    /// Bytes left over after the last field.
    #[error("trailing bytes in NAT frame")]
    Trailing,
    /// An address field did not decode.
    #[error("bad address: {0}")]
    Addr(#[from] AddrError),
    /// A probe mode other than 0 or 1.
    #[error("unknown probe mode {0}")]
    BadMode(u8),
    /// A NAT class code above 6.
    #[error("unknown NAT class code {0}")]
    BadClass(u8),
    /// A probe acknowledgement status other than 0 or 1.
    #[error("unknown probe status {0}")]
    BadStatus(u8),
    /// A type in 0x50–0x5F that is not defined.
    #[error("undefined NAT frame type {0:#x}")]
    Undefined(u8),
}

/// Which RFC 5780 filtering test a probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMode {
    /// A third party at an IP we never sent to dials us (test II).
    OtherIp,
    /// We first send to the third party's IP at another port, then it
    /// dials us from its own port (test III: address-dependent filtering).
    OtherPort,
}

/// The third party a helper picked for a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThirdParty {
    /// Its peer id.
    pub peer: [u8; 32],
    /// Its address as the helper sees it.
    pub addr: SocketAddr,
    /// The NAT class it announced to the helper.
    pub class: NatType,
}

/// A punch offer: where the other end is and when to dial it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// The other end's address as the forwarder observed it.
    pub addr: SocketAddr,
    /// The NAT class it announced.
    pub class: NatType,
    /// Milliseconds to wait before dialling.
    pub delay_ms: u16,
}

/// Bytes of a fresh-socket probe token ([`NatFrame::FreshRequest`]).
pub const TOKEN_LEN: usize = 16;

/// One NAT frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatFrame {
    /// "At which address do you see me?"
    BindingRequest {
        /// Echoed in the response.
        txid: u32,
    },
    /// The address the request came from, as the responder saw it.
    BindingResponse {
        /// The request's id.
        txid: u32,
        /// Our observed address.
        observed: SocketAddr,
    },
    /// "Have a third party probe the address you see me at."
    ProbeRequest {
        /// Echoed in the acknowledgement.
        txid: u32,
        /// The filtering test.
        mode: ProbeMode,
    },
    /// Helper to third party: dial `target` after `delay_ms`.
    ProbeOrder {
        /// Milliseconds to wait before dialling.
        delay_ms: u16,
        /// The requester's address as the helper sees it.
        target: SocketAddr,
    },
    /// Helper to requester: who will probe, or nobody.
    ProbeAck {
        /// The request's id.
        txid: u32,
        /// The third party, `None` when the helper has none to offer.
        third: Option<ThirdParty>,
    },
    /// The sender's current NAT class.
    NatClass(NatType),
    /// "Introduce me to this peer of yours."
    PunchRequest {
        /// Request id.
        txid: u32,
        /// The peer to punch to.
        target: [u8; 32],
    },
    /// Forwarder to an end: punch to `peer` (or, `None`: the pair cannot
    /// be punched).
    PunchOffer {
        /// The other end.
        peer: [u8; 32],
        /// Where and when, or `None` for unpunchable.
        offer: Option<Offer>,
    },
    /// "I will send `seen` from a fresh socket: have a third party send
    /// `probe` to where it comes from" (a filtering test on a mapping that
    /// has sent to nobody but the helper).
    FreshRequest {
        /// Echoed in the acknowledgement (a [`NatFrame::ProbeAck`]) and in
        /// [`NatFrame::FreshSeen`].
        txid: u32,
        /// The token the fresh socket sends to the helper.
        seen: [u8; TOKEN_LEN],
        /// The token the third party sends to the fresh socket.
        probe: [u8; TOKEN_LEN],
    },
    /// Helper to third party: send NAT token datagrams carrying `token` to
    /// `target` now.
    FreshOrder {
        /// The token to send.
        token: [u8; TOKEN_LEN],
        /// Where the helper saw the requester's fresh socket.
        target: SocketAddr,
    },
    /// Helper to requester: the fresh socket's token arrived from
    /// `observed`, and the third party was told to probe it.
    FreshSeen {
        /// The request's id.
        txid: u32,
        /// The fresh socket's address as the helper saw it.
        observed: SocketAddr,
    },
    /// On a relayed session: the sender's gateway maps it this external
    /// address now (probe it; the session migrates when a probe arrives).
    Mapped(SocketAddr),
}

impl NatFrame {
    /// The frame type byte.
    pub fn type_byte(&self) -> u8 {
        match self {
            NatFrame::BindingRequest { .. } => ty::BINDING_REQUEST,
            NatFrame::BindingResponse { .. } => ty::BINDING_RESPONSE,
            NatFrame::ProbeRequest { .. } => ty::PROBE_REQUEST,
            NatFrame::ProbeOrder { .. } => ty::PROBE_ORDER,
            NatFrame::ProbeAck { .. } => ty::PROBE_ACK,
            NatFrame::NatClass(_) => ty::NAT_CLASS,
            NatFrame::PunchRequest { .. } => ty::PUNCH_REQUEST,
            NatFrame::PunchOffer { .. } => ty::PUNCH_OFFER,
            NatFrame::FreshRequest { .. } => ty::FRESH_REQUEST,
            NatFrame::FreshOrder { .. } => ty::FRESH_ORDER,
            NatFrame::FreshSeen { .. } => ty::FRESH_SEEN,
            NatFrame::Mapped(_) => ty::MAPPED,
        }
    }

    /// Body length in bytes.
    pub fn body_len(&self) -> usize {
        match self {
            NatFrame::BindingRequest { .. } => 4,
            NatFrame::BindingResponse { observed, .. } => 4 + addr_len(*observed),
            NatFrame::ProbeRequest { .. } => 5,
            NatFrame::ProbeOrder { target, .. } => 2 + addr_len(*target),
            NatFrame::ProbeAck { third: None, .. } => 5,
            NatFrame::ProbeAck { third: Some(t), .. } => 5 + 1 + 32 + addr_len(t.addr),
            NatFrame::NatClass(_) => 1,
            NatFrame::PunchRequest { .. } => 4 + 32,
            NatFrame::PunchOffer { offer: None, .. } => 32 + 1,
            NatFrame::PunchOffer { offer: Some(o), .. } => 32 + 1 + 1 + 2 + addr_len(o.addr),
            NatFrame::FreshRequest { .. } => 4 + 2 * TOKEN_LEN,
            NatFrame::FreshOrder { target, .. } => TOKEN_LEN + addr_len(*target),
            NatFrame::FreshSeen { observed, .. } => 4 + addr_len(*observed),
            NatFrame::Mapped(a) => addr_len(*a),
        }
    }

    /// Appends the body to `out`.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match *self {
            NatFrame::BindingRequest { txid } => out.extend_from_slice(&txid.to_le_bytes()),
            NatFrame::BindingResponse { txid, observed } => {
                out.extend_from_slice(&txid.to_le_bytes());
                encode_addr(observed, out);
            }
            NatFrame::ProbeRequest { txid, mode } => {
                out.extend_from_slice(&txid.to_le_bytes());
                out.push(mode_byte(mode));
            }
            NatFrame::ProbeOrder { delay_ms, target } => {
                out.extend_from_slice(&delay_ms.to_le_bytes());
                encode_addr(target, out);
            }
            NatFrame::ProbeAck { txid, third } => {
                out.extend_from_slice(&txid.to_le_bytes());
                match third {
                    None => out.push(1),
                    Some(t) => {
                        out.push(0);
                        out.push(t.class.code());
                        out.extend_from_slice(&t.peer);
                        encode_addr(t.addr, out);
                    }
                }
            }
            NatFrame::NatClass(c) => out.push(c.code()),
            NatFrame::PunchRequest { txid, target } => {
                out.extend_from_slice(&txid.to_le_bytes());
                out.extend_from_slice(&target);
            }
            NatFrame::PunchOffer { peer, offer } => {
                out.extend_from_slice(&peer);
                match offer {
                    None => out.push(1),
                    Some(o) => {
                        out.push(0);
                        out.push(o.class.code());
                        out.extend_from_slice(&o.delay_ms.to_le_bytes());
                        encode_addr(o.addr, out);
                    }
                }
            }
            NatFrame::FreshRequest { txid, seen, probe } => {
                out.extend_from_slice(&txid.to_le_bytes());
                out.extend_from_slice(&seen);
                out.extend_from_slice(&probe);
            }
            NatFrame::FreshOrder { token, target } => {
                out.extend_from_slice(&token);
                encode_addr(target, out);
            }
            NatFrame::FreshSeen { txid, observed } => {
                out.extend_from_slice(&txid.to_le_bytes());
                encode_addr(observed, out);
            }
            NatFrame::Mapped(a) => encode_addr(a, out),
        }
    }

    /// Decodes the body of a frame of type `t` (0x50–0x5F).
    pub fn decode(t: u8, b: &[u8]) -> Result<Self, NatFrameError> {
        Ok(match t {
            ty::BINDING_REQUEST => NatFrame::BindingRequest {
                txid: exact_u32(b)?,
            },
            ty::BINDING_RESPONSE => {
                let (txid, rest) = split_u32(b)?;
                NatFrame::BindingResponse {
                    txid,
                    observed: decode_addr(rest)?,
                }
            }
            ty::PROBE_REQUEST => {
                let (txid, rest) = split_u32(b)?;
                let mode = match rest {
                    [m] => decode_mode(*m)?,
                    [] => return Err(NatFrameError::Truncated),
                    _ => return Err(NatFrameError::Trailing),
                };
                NatFrame::ProbeRequest { txid, mode }
            }
            ty::PROBE_ORDER => {
                let d = b.get(..2).ok_or(NatFrameError::Truncated)?;
                NatFrame::ProbeOrder {
                    delay_ms: u16::from_le_bytes([d[0], d[1]]),
                    target: decode_addr(&b[2..])?,
                }
            }
            ty::PROBE_ACK => {
                let (txid, rest) = split_u32(b)?;
                let (&status, rest) = rest.split_first().ok_or(NatFrameError::Truncated)?;
                let third = match status {
                    1 if rest.is_empty() => None,
                    1 => return Err(NatFrameError::Trailing),
                    0 => {
                        let (&code, rest) = rest.split_first().ok_or(NatFrameError::Truncated)?;
                        let class =
                            NatType::from_code(code).ok_or(NatFrameError::BadClass(code))?;
                        let (peer, rest) = split_id(rest)?;
                        let (addr, rest) = split_addr(rest)?;
                        if !rest.is_empty() {
                            return Err(NatFrameError::Trailing);
                        }
                        Some(ThirdParty { peer, addr, class })
                    }
                    s => return Err(NatFrameError::BadStatus(s)),
                };
                NatFrame::ProbeAck { txid, third }
            }
            ty::NAT_CLASS => match b {
                [c] => {
                    NatFrame::NatClass(NatType::from_code(*c).ok_or(NatFrameError::BadClass(*c))?)
                }
                [] => return Err(NatFrameError::Truncated),
                _ => return Err(NatFrameError::Trailing),
            },
            ty::PUNCH_REQUEST => {
                let (txid, rest) = split_u32(b)?;
                NatFrame::PunchRequest {
                    txid,
                    target: exact_id(rest)?,
                }
            }
            ty::PUNCH_OFFER => {
                let (peer, rest) = split_id(b)?;
                let (&status, rest) = rest.split_first().ok_or(NatFrameError::Truncated)?;
                let offer = match status {
                    1 if rest.is_empty() => None,
                    1 => return Err(NatFrameError::Trailing),
                    0 => {
                        let h = rest.get(..3).ok_or(NatFrameError::Truncated)?;
                        let class =
                            NatType::from_code(h[0]).ok_or(NatFrameError::BadClass(h[0]))?;
                        Some(Offer {
                            class,
                            delay_ms: u16::from_le_bytes([h[1], h[2]]),
                            addr: decode_addr(&rest[3..])?,
                        })
                    }
                    s => return Err(NatFrameError::BadStatus(s)),
                };
                NatFrame::PunchOffer { peer, offer }
            }
            ty::FRESH_REQUEST => {
                let (txid, rest) = split_u32(b)?;
                let (seen, rest) = split_token(rest)?;
                let (probe, rest) = split_token(rest)?;
                if !rest.is_empty() {
                    return Err(NatFrameError::Trailing);
                }
                NatFrame::FreshRequest { txid, seen, probe }
            }
            ty::FRESH_ORDER => {
                let (token, rest) = split_token(b)?;
                NatFrame::FreshOrder {
                    token,
                    target: decode_addr(rest)?,
                }
            }
            ty::FRESH_SEEN => {
                let (txid, rest) = split_u32(b)?;
                NatFrame::FreshSeen {
                    txid,
                    observed: decode_addr(rest)?,
                }
            }
            ty::MAPPED => NatFrame::Mapped(decode_addr(b)?),
            other => return Err(NatFrameError::Undefined(other)),
        })
    }
}

fn mode_byte(m: ProbeMode) -> u8 {
    match m {
        ProbeMode::OtherIp => 0,
        ProbeMode::OtherPort => 1,
    }
}

fn decode_mode(m: u8) -> Result<ProbeMode, NatFrameError> {
    match m {
        0 => Ok(ProbeMode::OtherIp),
        1 => Ok(ProbeMode::OtherPort),
        m => Err(NatFrameError::BadMode(m)),
    }
}

fn split_token(b: &[u8]) -> Result<([u8; TOKEN_LEN], &[u8]), NatFrameError> {
    split_array(b)
}

/// The first `N` bytes as an array, and the rest.
fn split_array<const N: usize>(b: &[u8]) -> Result<([u8; N], &[u8]), NatFrameError> {
    let a = b
        .get(..N)
        .and_then(|p| p.try_into().ok())
        .ok_or(NatFrameError::Truncated)?;
    Ok((a, &b[N..]))
}

fn split_u32(b: &[u8]) -> Result<(u32, &[u8]), NatFrameError> {
    let h = b.get(..4).ok_or(NatFrameError::Truncated)?;
    Ok((u32::from_le_bytes([h[0], h[1], h[2], h[3]]), &b[4..]))
}

fn split_id(b: &[u8]) -> Result<([u8; 32], &[u8]), NatFrameError> {
    split_array(b)
}

fn exact_id(b: &[u8]) -> Result<[u8; 32], NatFrameError> {
    match b.len() {
        32 => b.try_into().map_err(|_| NatFrameError::Truncated),
        n if n < 32 => Err(NatFrameError::Truncated),
        _ => Err(NatFrameError::Trailing),
    }
}

fn exact_u32(b: &[u8]) -> Result<u32, NatFrameError> {
    let (v, rest) = split_u32(b)?;
    if rest.is_empty() {
        Ok(v)
    } else {
        Err(NatFrameError::Trailing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn round_trip(f: NatFrame) {
        let mut b = Vec::new();
        f.encode_body(&mut b);
        assert_eq!(b.len(), f.body_len(), "{f:?}");
        assert_eq!(NatFrame::decode(f.type_byte(), &b), Ok(f));
    }

    #[test]
    fn every_frame_round_trips() {
        let third = ThirdParty {
            peer: [7; 32],
            addr: a("[2001:db8::5]:9"),
            class: NatType::FullCone,
        };
        for f in [
            NatFrame::BindingRequest { txid: 1 },
            NatFrame::BindingResponse {
                txid: 2,
                observed: a("203.0.113.9:4000"),
            },
            NatFrame::ProbeRequest {
                txid: 3,
                mode: ProbeMode::OtherIp,
            },
            NatFrame::ProbeRequest {
                txid: 3,
                mode: ProbeMode::OtherPort,
            },
            NatFrame::ProbeOrder {
                delay_ms: 500,
                target: a("198.51.100.4:1"),
            },
            NatFrame::ProbeAck {
                txid: 4,
                third: None,
            },
            NatFrame::ProbeAck {
                txid: 4,
                third: Some(third),
            },
            NatFrame::NatClass(NatType::Cgnat),
            NatFrame::PunchRequest {
                txid: 5,
                target: [3; 32],
            },
            NatFrame::PunchOffer {
                peer: [4; 32],
                offer: None,
            },
            NatFrame::PunchOffer {
                peer: [4; 32],
                offer: Some(Offer {
                    addr: a("203.0.113.77:6000"),
                    class: NatType::SymmetricNat,
                    delay_ms: 40,
                }),
            },
            NatFrame::FreshRequest {
                txid: 6,
                seen: [1; TOKEN_LEN],
                probe: [2; TOKEN_LEN],
            },
            NatFrame::FreshOrder {
                token: [3; TOKEN_LEN],
                target: a("[2001:db8::9]:4000"),
            },
            NatFrame::FreshSeen {
                txid: 7,
                observed: a("203.0.113.103:40001"),
            },
            NatFrame::Mapped(a("192.0.32.108:4000")),
            NatFrame::Mapped(a("[2001:db8::7]:4000")),
        ] {
            round_trip(f);
        }
    }

    /// The PROTOCOL.md test vectors of the fresh-socket probe frames.
    #[test]
    fn fresh_frame_vectors() {
        let hex = |f: NatFrame| {
            let mut b = vec![f.type_byte()];
            f.encode_body(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        };
        let mut seen = [0u8; TOKEN_LEN];
        let mut probe = [0u8; TOKEN_LEN];
        for i in 0..TOKEN_LEN {
            seen[i] = i as u8;
            probe[i] = 0xf0 | i as u8;
        }
        assert_eq!(
            hex(NatFrame::FreshRequest {
                txid: 0x0403_0201,
                seen,
                probe,
            }),
            "5801020304000102030405060708090a0b0c0d0e0f\
             f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
        );
        assert_eq!(
            hex(NatFrame::FreshOrder {
                token: probe,
                target: a("203.0.113.103:40001"),
            }),
            "59f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff04cb0071679c41"
        );
        assert_eq!(
            hex(NatFrame::FreshSeen {
                txid: 9,
                observed: a("203.0.113.103:40001"),
            }),
            "5a0900000004cb0071679c41"
        );
    }

    /// The PROTOCOL.md test vector of MAPPED, and its bad bodies.
    #[test]
    fn mapped_frame_vector_and_bad_bodies() {
        let mut b = Vec::new();
        let f = NatFrame::Mapped(a("192.0.32.108:4000"));
        b.push(f.type_byte());
        f.encode_body(&mut b);
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(hex, "5b04c000206c0fa0");
        assert!(matches!(
            NatFrame::decode(ty::MAPPED, &[]),
            Err(NatFrameError::Addr(_))
        ));
        assert!(matches!(
            NatFrame::decode(ty::MAPPED, &[4, 192, 0, 32, 108, 0x0f, 0xa0, 0]),
            Err(NatFrameError::Addr(_))
        ));
        assert!(matches!(
            NatFrame::decode(ty::MAPPED, &[4, 192, 0, 32]),
            Err(NatFrameError::Addr(_))
        ));
    }

    #[test]
    fn bad_fresh_frames_are_rejected_for_each_reason() {
        use NatFrameError::*;
        let mut req = Vec::new();
        NatFrame::FreshRequest {
            txid: 1,
            seen: [5; TOKEN_LEN],
            probe: [6; TOKEN_LEN],
        }
        .encode_body(&mut req);
        assert_eq!(
            NatFrame::decode(ty::FRESH_REQUEST, &req[..4]),
            Err(Truncated)
        );
        assert_eq!(
            NatFrame::decode(ty::FRESH_REQUEST, &req[..20]),
            Err(Truncated)
        );
        assert_eq!(
            NatFrame::decode(ty::FRESH_REQUEST, &req[..req.len() - 1]),
            Err(Truncated)
        );
        let mut long = req.clone();
        long.push(0);
        assert_eq!(NatFrame::decode(ty::FRESH_REQUEST, &long), Err(Trailing));

        let mut order = vec![7; TOKEN_LEN];
        assert_eq!(
            NatFrame::decode(ty::FRESH_ORDER, &order[..TOKEN_LEN - 1]),
            Err(Truncated)
        );
        assert_eq!(
            NatFrame::decode(ty::FRESH_ORDER, &order),
            Err(Addr(AddrError::Empty))
        );
        order.extend_from_slice(&[4, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            NatFrame::decode(ty::FRESH_ORDER, &order),
            Err(Addr(AddrError::Unspecified))
        );
        order.truncate(TOKEN_LEN);
        order.extend_from_slice(&[9, 1, 2, 3, 4, 0, 1]);
        assert_eq!(
            NatFrame::decode(ty::FRESH_ORDER, &order),
            Err(Addr(AddrError::BadFamily(9)))
        );

        assert_eq!(NatFrame::decode(ty::FRESH_SEEN, &[0; 3]), Err(Truncated));
        assert_eq!(
            NatFrame::decode(ty::FRESH_SEEN, &[0; 4]),
            Err(Addr(AddrError::Empty))
        );
        let mut seen = Vec::new();
        NatFrame::FreshSeen {
            txid: 1,
            observed: a("203.0.113.1:2"),
        }
        .encode_body(&mut seen);
        seen.push(0);
        assert!(matches!(
            NatFrame::decode(ty::FRESH_SEEN, &seen),
            Err(Addr(_))
        ));
    }

    #[test]
    fn truncated_bodies_are_rejected() {
        use NatFrameError::Truncated;
        assert_eq!(
            NatFrame::decode(ty::BINDING_REQUEST, &[1, 2]),
            Err(Truncated)
        );
        assert_eq!(NatFrame::decode(ty::PROBE_REQUEST, &[0; 4]), Err(Truncated));
        assert_eq!(NatFrame::decode(ty::PROBE_ORDER, &[0]), Err(Truncated));
        assert_eq!(NatFrame::decode(ty::PROBE_ACK, &[0; 4]), Err(Truncated));
        assert_eq!(
            NatFrame::decode(ty::PROBE_ACK, &[0, 0, 0, 0, 0, 2, 1]),
            Err(Truncated)
        );
        assert_eq!(NatFrame::decode(ty::NAT_CLASS, &[]), Err(Truncated));
        assert_eq!(
            NatFrame::decode(ty::PUNCH_REQUEST, &[0; 35]),
            Err(Truncated)
        );
        assert_eq!(NatFrame::decode(ty::PUNCH_OFFER, &[0; 32]), Err(Truncated));
        assert_eq!(NatFrame::decode(ty::PUNCH_OFFER, &[0; 35]), Err(Truncated));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        use NatFrameError::Trailing;
        assert_eq!(
            NatFrame::decode(ty::BINDING_REQUEST, &[0; 5]),
            Err(Trailing)
        );
        assert_eq!(NatFrame::decode(ty::PROBE_REQUEST, &[0; 6]), Err(Trailing));
        assert_eq!(
            NatFrame::decode(ty::PROBE_ACK, &[0, 0, 0, 0, 1, 0]),
            Err(Trailing)
        );
        assert_eq!(NatFrame::decode(ty::NAT_CLASS, &[0, 0]), Err(Trailing));
        assert_eq!(NatFrame::decode(ty::PUNCH_REQUEST, &[0; 37]), Err(Trailing));
        let mut unpunchable = vec![0; 32];
        unpunchable.extend_from_slice(&[1, 0]);
        assert_eq!(
            NatFrame::decode(ty::PUNCH_OFFER, &unpunchable),
            Err(Trailing)
        );
        let mut ack = Vec::new();
        NatFrame::ProbeAck {
            txid: 0,
            third: Some(ThirdParty {
                peer: [1; 32],
                addr: a("203.0.113.1:2"),
                class: NatType::Public,
            }),
        }
        .encode_body(&mut ack);
        ack.push(9);
        assert_eq!(NatFrame::decode(ty::PROBE_ACK, &ack), Err(Trailing));
    }

    #[test]
    fn bad_addresses_are_rejected() {
        assert_eq!(
            NatFrame::decode(ty::BINDING_RESPONSE, &[0, 0, 0, 0, 9, 1, 2, 3, 4, 0, 1]),
            Err(NatFrameError::Addr(AddrError::BadFamily(9)))
        );
        assert_eq!(
            NatFrame::decode(ty::BINDING_RESPONSE, &[0; 4]),
            Err(NatFrameError::Addr(AddrError::Empty))
        );
        assert_eq!(
            NatFrame::decode(ty::PROBE_ORDER, &[0, 0, 4, 0, 0, 0, 0, 0, 1]),
            Err(NatFrameError::Addr(AddrError::Unspecified))
        );
    }

    #[test]
    fn bad_enums_are_rejected() {
        assert_eq!(
            NatFrame::decode(ty::PROBE_REQUEST, &[0, 0, 0, 0, 2]),
            Err(NatFrameError::BadMode(2))
        );
        assert_eq!(
            NatFrame::decode(ty::NAT_CLASS, &[7]),
            Err(NatFrameError::BadClass(7))
        );
        assert_eq!(
            NatFrame::decode(ty::PROBE_ACK, &[0, 0, 0, 0, 0, 9]),
            Err(NatFrameError::BadClass(9))
        );
        assert_eq!(
            NatFrame::decode(ty::PROBE_ACK, &[0, 0, 0, 0, 5]),
            Err(NatFrameError::BadStatus(5))
        );
        assert_eq!(
            NatFrame::decode(0x5F, &[]),
            Err(NatFrameError::Undefined(0x5F))
        );
        let mut offer = vec![0; 32];
        offer.extend_from_slice(&[0, 8, 0, 0]);
        assert_eq!(
            NatFrame::decode(ty::PUNCH_OFFER, &offer),
            Err(NatFrameError::BadClass(8))
        );
        offer[32] = 2;
        assert_eq!(
            NatFrame::decode(ty::PUNCH_OFFER, &offer),
            Err(NatFrameError::BadStatus(2))
        );
    }
}
