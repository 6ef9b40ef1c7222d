//! STUN attributes (RFC 8489 §14, RFC 5780 §7): the typed values and their
//! value-level codecs (type-length-value framing lives in `message`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{DecodeError, TransactionId, MAGIC_COOKIE};

/// MAPPED-ADDRESS (RFC 8489 §14.1).
pub const MAPPED_ADDRESS: u16 = 0x0001;
/// CHANGE-REQUEST (RFC 5780 §7.2).
pub const CHANGE_REQUEST: u16 = 0x0003;
/// ERROR-CODE (RFC 8489 §14.8).
pub const ERROR_CODE: u16 = 0x0009;
/// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// SOFTWARE (RFC 8489 §14.14).
pub const SOFTWARE: u16 = 0x8022;
/// FINGERPRINT (RFC 8489 §14.7).
pub const FINGERPRINT: u16 = 0x8028;
/// RESPONSE-ORIGIN (RFC 5780 §7.3).
pub const RESPONSE_ORIGIN: u16 = 0x802b;
/// OTHER-ADDRESS (RFC 5780 §7.4).
pub const OTHER_ADDRESS: u16 = 0x802c;

/// Longest SOFTWARE value RFC 8489 allows (fewer than 128 characters; 763 bytes).
pub const MAX_SOFTWARE_BYTES: usize = 763;
/// Longest ERROR-CODE reason phrase RFC 8489 allows, in bytes.
pub const MAX_REASON_BYTES: usize = 763;

/// CHANGE-REQUEST flags: ask the server to answer from its other IP and/or port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeRequest {
    /// Answer from the alternate IP address.
    pub change_ip: bool,
    /// Answer from the alternate port.
    pub change_port: bool,
}

/// One STUN attribute, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// MAPPED-ADDRESS: the reflexive address, in clear (RFC 3489 servers).
    MappedAddress(SocketAddr),
    /// XOR-MAPPED-ADDRESS: the reflexive address, obfuscated.
    XorMappedAddress(SocketAddr),
    /// OTHER-ADDRESS: the server's alternate IP and port (RFC 5780).
    OtherAddress(SocketAddr),
    /// RESPONSE-ORIGIN: the address the response was sent from (RFC 5780).
    ResponseOrigin(SocketAddr),
    /// CHANGE-REQUEST flags (RFC 5780).
    ChangeRequest(ChangeRequest),
    /// SOFTWARE: a description of the sender's software.
    Software(String),
    /// ERROR-CODE: a code 300..=699 and a reason phrase.
    ErrorCode {
        /// The error code (class * 100 + number).
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// An attribute this codec does not interpret, kept verbatim.
    Unknown {
        /// The attribute type.
        kind: u16,
        /// The value, without padding.
        value: Vec<u8>,
    },
}

impl Attribute {
    /// The attribute's type number on the wire.
    pub fn kind(&self) -> u16 {
        match self {
            Attribute::MappedAddress(_) => MAPPED_ADDRESS,
            Attribute::XorMappedAddress(_) => XOR_MAPPED_ADDRESS,
            Attribute::OtherAddress(_) => OTHER_ADDRESS,
            Attribute::ResponseOrigin(_) => RESPONSE_ORIGIN,
            Attribute::ChangeRequest(_) => CHANGE_REQUEST,
            Attribute::Software(_) => SOFTWARE,
            Attribute::ErrorCode { .. } => ERROR_CODE,
            Attribute::Unknown { kind, .. } => *kind,
        }
    }

    /// True for types 0x0000..=0x7FFF, which a receiver must understand.
    pub fn is_comprehension_required(kind: u16) -> bool {
        kind < 0x8000
    }

    /// True when `kind` is one of the types this codec interprets (or FINGERPRINT).
    pub fn is_known(kind: u16) -> bool {
        matches!(
            kind,
            MAPPED_ADDRESS
                | XOR_MAPPED_ADDRESS
                | OTHER_ADDRESS
                | RESPONSE_ORIGIN
                | CHANGE_REQUEST
                | SOFTWARE
                | ERROR_CODE
                | FINGERPRINT
        )
    }

    /// Decodes the value of an attribute of type `kind`.
    pub(crate) fn decode(
        kind: u16,
        value: &[u8],
        tid: &TransactionId,
    ) -> Result<Self, DecodeError> {
        Ok(match kind {
            MAPPED_ADDRESS => Attribute::MappedAddress(decode_address(kind, value, None)?),
            XOR_MAPPED_ADDRESS => {
                Attribute::XorMappedAddress(decode_address(kind, value, Some(tid))?)
            }
            OTHER_ADDRESS => Attribute::OtherAddress(decode_address(kind, value, None)?),
            RESPONSE_ORIGIN => Attribute::ResponseOrigin(decode_address(kind, value, None)?),
            CHANGE_REQUEST => {
                let v: [u8; 4] = value
                    .try_into()
                    .map_err(|_| DecodeError::BadChangeRequestLength(value.len()))?;
                let flags = u32::from_be_bytes(v);
                if flags & !0b110 != 0 {
                    return Err(DecodeError::BadChangeRequestFlags(flags));
                }
                Attribute::ChangeRequest(ChangeRequest {
                    change_ip: flags & 0b100 != 0,
                    change_port: flags & 0b010 != 0,
                })
            }
            SOFTWARE => {
                if value.len() > MAX_SOFTWARE_BYTES {
                    return Err(DecodeError::SoftwareTooLong(value.len()));
                }
                let s = std::str::from_utf8(value).map_err(|_| DecodeError::NotUtf8(kind))?;
                Attribute::Software(s.to_owned())
            }
            ERROR_CODE => {
                if value.len() < 4 {
                    return Err(DecodeError::BadErrorCodeLength(value.len()));
                }
                if value.len() - 4 > MAX_REASON_BYTES {
                    return Err(DecodeError::ReasonTooLong(value.len() - 4));
                }
                let class = u16::from(value[2] & 0x07);
                let number = u16::from(value[3]);
                if !(3..=6).contains(&class) || number > 99 {
                    return Err(DecodeError::BadErrorCode { class, number });
                }
                let reason =
                    std::str::from_utf8(&value[4..]).map_err(|_| DecodeError::NotUtf8(kind))?;
                Attribute::ErrorCode {
                    code: class * 100 + number,
                    reason: reason.to_owned(),
                }
            }
            _ => Attribute::Unknown {
                kind,
                value: value.to_vec(),
            },
        })
    }

    /// Appends the value (unpadded) of this attribute to `out`.
    pub(crate) fn encode_value(&self, tid: &TransactionId, out: &mut Vec<u8>) {
        match self {
            Attribute::MappedAddress(a)
            | Attribute::OtherAddress(a)
            | Attribute::ResponseOrigin(a) => encode_address(*a, None, out),
            Attribute::XorMappedAddress(a) => encode_address(*a, Some(tid), out),
            Attribute::ChangeRequest(c) => {
                let flags = (u32::from(c.change_ip) << 2) | (u32::from(c.change_port) << 1);
                out.extend_from_slice(&flags.to_be_bytes());
            }
            Attribute::Software(s) => out.extend_from_slice(s.as_bytes()),
            Attribute::ErrorCode { code, reason } => {
                out.extend_from_slice(&[0, 0, (code / 100) as u8 & 0x07, (code % 100) as u8]);
                out.extend_from_slice(reason.as_bytes());
            }
            Attribute::Unknown { value, .. } => out.extend_from_slice(value),
        }
    }
}

/// The XOR pad of an address: the magic cookie, then the transaction id.
fn xor_pad(tid: &TransactionId) -> [u8; 16] {
    let mut pad = [0u8; 16];
    pad[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    pad[4..].copy_from_slice(&tid.0);
    pad
}

fn decode_address(
    kind: u16,
    v: &[u8],
    xor: Option<&TransactionId>,
) -> Result<SocketAddr, DecodeError> {
    if v.len() < 4 {
        return Err(DecodeError::BadAddressLength { kind, len: v.len() });
    }
    let pad = xor.map(xor_pad).unwrap_or([0; 16]);
    let port = u16::from_be_bytes([v[2] ^ pad[0], v[3] ^ pad[1]]);
    let ip = match (v[1], v.len()) {
        (0x01, 8) => {
            let mut o = [0u8; 4];
            for (i, b) in o.iter_mut().enumerate() {
                *b = v[4 + i] ^ pad[i];
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        (0x02, 20) => {
            let mut o = [0u8; 16];
            for (i, b) in o.iter_mut().enumerate() {
                *b = v[4 + i] ^ pad[i];
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        (0x01 | 0x02, len) => return Err(DecodeError::BadAddressLength { kind, len }),
        (family, _) => return Err(DecodeError::BadAddressFamily { kind, family }),
    };
    Ok(SocketAddr::new(ip, port))
}

fn encode_address(a: SocketAddr, xor: Option<&TransactionId>, out: &mut Vec<u8>) {
    let pad = xor.map(xor_pad).unwrap_or([0; 16]);
    let port = a.port().to_be_bytes();
    let family = if a.is_ipv4() { 0x01 } else { 0x02 };
    out.extend_from_slice(&[0, family, port[0] ^ pad[0], port[1] ^ pad[1]]);
    match a.ip() {
        IpAddr::V4(ip) => out.extend(ip.octets().iter().zip(pad).map(|(b, p)| b ^ p)),
        IpAddr::V6(ip) => out.extend(ip.octets().iter().zip(pad).map(|(b, p)| b ^ p)),
    }
}
