//! PCP (RFC 6887): a total codec for ANNOUNCE and MAP, and [`Pcp`], the
//! [`MappingProtocol`] the shared port-mapping client drives. Options are
//! framed and kept (unknown ones are not interpreted).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::portmap::{MapReply, MappingProtocol};

/// PCP's version number.
pub const VERSION: u8 = 2;
/// Largest PCP message (RFC 6887 §7).
pub const MAX_MESSAGE: usize = 1100;
/// IANA protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// Result code NETWORK_FAILURE.
pub const NETWORK_FAILURE: u8 = 7;

const HEADER: usize = 24;
const MAP_PAYLOAD: usize = 36;

/// PCP opcodes this codec knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// ANNOUNCE (0).
    Announce,
    /// MAP (1).
    Map,
}

/// The MAP opcode's payload (request and response share it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapPayload {
    /// Random nonce tying responses to the mapping.
    pub nonce: [u8; 12],
    /// IANA protocol (17 = UDP).
    pub protocol: u8,
    /// Our local port.
    pub internal_port: u16,
    /// Suggested (request) or assigned (response) external port.
    pub external_port: u16,
    /// Suggested or assigned external address.
    pub external_ip: IpAddr,
}

/// One PCP option, verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcpOption {
    /// The option code (0..=127 must be understood by the receiver).
    pub code: u8,
    /// The value, without padding.
    pub data: Vec<u8>,
}

/// A PCP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// ANNOUNCE or MAP.
    pub opcode: Opcode,
    /// Result code (0 = success).
    pub result: u8,
    /// Granted lifetime, seconds.
    pub lifetime: u32,
    /// Server epoch, seconds.
    pub epoch: u32,
    /// The MAP payload (MAP responses only).
    pub map: Option<MapPayload>,
    /// Options after the payload.
    pub options: Vec<PcpOption>,
}

/// A PCP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// ANNOUNCE or MAP.
    pub opcode: Opcode,
    /// Requested lifetime (0 deletes a MAP).
    pub lifetime: u32,
    /// Our own address, as the server must see it.
    pub client_ip: IpAddr,
    /// The MAP payload (MAP requests only).
    pub map: Option<MapPayload>,
}

/// Why a datagram is not a PCP response this codec accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the 24-byte header.
    #[error("PCP datagram of {0} bytes is too short")]
    TooShort(usize),
    /// Longer than 1100 bytes.
    #[error("PCP datagram of {0} bytes is too long")]
    TooLong(usize),
    /// Not a multiple of 4 bytes.
    #[error("PCP datagram of {0} bytes is not 4-aligned")]
    Unaligned(usize),
    /// Version is not 2 (0 is NAT-PMP).
    #[error("PCP version {0}")]
    BadVersion(u8),
    /// The R bit is clear: a request.
    #[error("a request, not a response")]
    NotAResponse,
    /// Opcode other than ANNOUNCE or MAP.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u8),
    /// A MAP response without its 36-byte payload.
    #[error("MAP response without its payload")]
    MapTruncated,
    /// An option header or value runs past the end.
    #[error("option {0} runs past the end")]
    OptionTruncated(u8),
}

fn ip16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn from16(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

fn opcode_value(op: Opcode) -> u8 {
    match op {
        Opcode::Announce => 0,
        Opcode::Map => 1,
    }
}

fn encode_map(m: &MapPayload, out: &mut Vec<u8>) {
    out.extend_from_slice(&m.nonce);
    out.extend_from_slice(&[m.protocol, 0, 0, 0]);
    out.extend_from_slice(&m.internal_port.to_be_bytes());
    out.extend_from_slice(&m.external_port.to_be_bytes());
    out.extend_from_slice(&ip16(m.external_ip));
}

impl Request {
    /// Encodes the request (24 or 60 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![VERSION, opcode_value(self.opcode), 0, 0];
        v.extend_from_slice(&self.lifetime.to_be_bytes());
        v.extend_from_slice(&ip16(self.client_ip));
        if let Some(m) = &self.map {
            encode_map(m, &mut v);
        }
        v
    }
}

impl Response {
    /// Decodes a server response. Total: a value or a precise error.
    pub fn decode(d: &[u8]) -> Result<Self, DecodeError> {
        if d.len() < HEADER {
            return Err(DecodeError::TooShort(d.len()));
        }
        if d.len() > MAX_MESSAGE {
            return Err(DecodeError::TooLong(d.len()));
        }
        if !d.len().is_multiple_of(4) {
            return Err(DecodeError::Unaligned(d.len()));
        }
        if d[0] != VERSION {
            return Err(DecodeError::BadVersion(d[0]));
        }
        if d[1] & 0x80 == 0 {
            return Err(DecodeError::NotAResponse);
        }
        let opcode = match d[1] & 0x7f {
            0 => Opcode::Announce,
            1 => Opcode::Map,
            n => return Err(DecodeError::UnknownOpcode(n)),
        };
        let result = d[3];
        let lifetime = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        let epoch = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        let mut pos = HEADER;
        let map = if opcode == Opcode::Map {
            let p = d
                .get(HEADER..HEADER + MAP_PAYLOAD)
                .ok_or(DecodeError::MapTruncated)?;
            pos += MAP_PAYLOAD;
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&p[..12]);
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&p[20..36]);
            Some(MapPayload {
                nonce,
                protocol: p[12],
                internal_port: u16::from_be_bytes([p[16], p[17]]),
                external_port: u16::from_be_bytes([p[18], p[19]]),
                external_ip: from16(ip),
            })
        } else {
            None
        };
        let mut options = Vec::new();
        while pos < d.len() {
            let code = d[pos];
            let h = d
                .get(pos..pos + 4)
                .ok_or(DecodeError::OptionTruncated(code))?;
            let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let end = pos + 4 + len.div_ceil(4) * 4;
            if end > d.len() {
                return Err(DecodeError::OptionTruncated(code));
            }
            options.push(PcpOption {
                code,
                data: d[pos + 4..pos + 4 + len].to_vec(),
            });
            pos = end;
        }
        Ok(Response {
            opcode,
            result,
            lifetime,
            epoch,
            map,
            options,
        })
    }

    /// Encodes the response (what a server sends; for tests and fuzzing).
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![VERSION, 0x80 | opcode_value(self.opcode), 0, self.result];
        v.extend_from_slice(&self.lifetime.to_be_bytes());
        v.extend_from_slice(&self.epoch.to_be_bytes());
        v.extend_from_slice(&[0; 12]);
        if let Some(m) = &self.map {
            encode_map(m, &mut v);
        }
        for o in &self.options {
            v.extend_from_slice(&[o.code, 0]);
            v.extend_from_slice(&(o.data.len() as u16).to_be_bytes());
            v.extend_from_slice(&o.data);
            v.resize(v.len().div_ceil(4) * 4, 0);
        }
        v
    }
}

/// PCP as a [`MappingProtocol`]: UDP MAP requests from `client_ip` with one nonce.
#[derive(Debug, Clone, Copy)]
pub struct Pcp {
    /// Our address as the PCP server sees it (it checks the source).
    pub client_ip: IpAddr,
    /// The mapping nonce (random, from the caller's RNG).
    pub nonce: [u8; 12],
}

impl Pcp {
    /// A PCP mapping for `client_ip` with a nonce drawn from `rng`.
    pub fn new(client_ip: IpAddr, rng: &mut impl rand_core::RngCore) -> Self {
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        Pcp { client_ip, nonce }
    }
}

impl MappingProtocol for Pcp {
    type Error = DecodeError;

    fn encode_map(
        &self,
        internal_port: u16,
        suggested_external_port: u16,
        lifetime: u32,
    ) -> Vec<u8> {
        let any = if self.client_ip.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        };
        Request {
            opcode: Opcode::Map,
            lifetime,
            client_ip: self.client_ip,
            map: Some(MapPayload {
                nonce: self.nonce,
                protocol: PROTO_UDP,
                internal_port,
                external_port: suggested_external_port,
                external_ip: any,
            }),
        }
        .encode()
    }

    fn decode_map(&self, data: &[u8]) -> Result<Option<MapReply>, DecodeError> {
        let r = Response::decode(data)?;
        let Some(m) = r
            .map
            .filter(|m| m.nonce == self.nonce && m.protocol == PROTO_UDP)
        else {
            return Ok(None);
        };
        Ok(Some(if r.result == 0 {
            MapReply::Granted {
                internal_port: m.internal_port,
                external_port: m.external_port,
                lifetime: r.lifetime,
                external_ip: Some(m.external_ip).filter(|ip| !ip.is_unspecified()),
            }
        } else {
            MapReply::Refused(u16::from(r.result))
        }))
    }
}
