//! The two list payloads of control frames: message ids (IHAVE, IWANT,
//! IDONTWANT) and peer-exchange records (PRUNE), validated on parse.

use super::{WireError, MAX_IDS_PER_FRAME, MAX_PX};

/// A validated list of 32-byte message ids (at least one, at most
/// [`MAX_IDS_PER_FRAME`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdList<'a>(&'a [u8]);

impl<'a> IdList<'a> {
    /// Wraps ids for encoding; `None` when empty or too many.
    pub fn new(ids: &'a [[u8; 32]]) -> Option<Self> {
        (!ids.is_empty() && ids.len() <= MAX_IDS_PER_FRAME).then_some(Self(ids.as_flattened()))
    }

    pub(super) fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        if b.is_empty() || !b.len().is_multiple_of(32) || b.len() / 32 > MAX_IDS_PER_FRAME {
            return Err(WireError::BadLength);
        }
        Ok(Self(b))
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.0.len() / 32
    }

    /// True when there are none (never for a decoded list).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids.
    pub fn iter(&self) -> impl Iterator<Item = [u8; 32]> + 'a {
        self.0.chunks_exact(32).map(|c| {
            let mut id = [0u8; 32];
            id.copy_from_slice(c);
            id
        })
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// A validated list of peer-exchange records, each `peer (32) ‖ family (u8:
/// 4 or 6) ‖ address (4 or 16) ‖ port (u16 BE)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PxList<'a>(&'a [u8]);

/// One peer-exchange record.
pub type PxRecord = ([u8; 32], std::net::SocketAddr);

impl<'a> PxList<'a> {
    /// Appends the encoding of `records` (at most [`MAX_PX`] are taken).
    pub fn encode_records(records: &[PxRecord], out: &mut Vec<u8>) {
        for (peer, addr) in records.iter().take(MAX_PX) {
            out.extend_from_slice(peer);
            match addr.ip() {
                std::net::IpAddr::V4(ip) => {
                    out.push(4);
                    out.extend_from_slice(&ip.octets());
                }
                std::net::IpAddr::V6(ip) => {
                    out.push(6);
                    out.extend_from_slice(&ip.octets());
                }
            }
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
    }

    /// Wraps bytes produced by [`PxList::encode_records`]; checks them.
    pub fn parse(b: &'a [u8]) -> Result<Self, WireError> {
        let mut rest = b;
        let mut n = 0;
        while !rest.is_empty() {
            let fam = *rest.get(32).ok_or(WireError::Truncated)?;
            let len = match fam {
                4 => 32 + 1 + 4 + 2,
                6 => 32 + 1 + 16 + 2,
                _ => return Err(WireError::BadLength),
            };
            if rest.len() < len {
                return Err(WireError::Truncated);
            }
            rest = &rest[len..];
            n += 1;
            if n > MAX_PX {
                return Err(WireError::BadLength);
            }
        }
        Ok(Self(b))
    }

    /// The records.
    pub fn iter(&self) -> impl Iterator<Item = PxRecord> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let fam = *rest.get(32)?;
            let alen = if fam == 4 { 4 } else { 16 };
            let rec = rest.get(..32 + 1 + alen + 2)?;
            rest = &rest[rec.len()..];
            let mut peer = [0u8; 32];
            peer.copy_from_slice(&rec[..32]);
            let a = &rec[33..33 + alen];
            let port = u16::from_be_bytes([rec[33 + alen], rec[34 + alen]]);
            let ip: std::net::IpAddr = if fam == 4 {
                std::net::Ipv4Addr::new(a[0], a[1], a[2], a[3]).into()
            } else {
                let mut o = [0u8; 16];
                o.copy_from_slice(a);
                std::net::Ipv6Addr::from(o).into()
            };
            Some((peer, std::net::SocketAddr::new(ip, port)))
        })
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }
}
