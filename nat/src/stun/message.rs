//! The STUN message: header, attribute framing, FINGERPRINT.

use std::net::SocketAddr;

use super::attribute::{self, Attribute};
use super::{DecodeError, TransactionId, FINGERPRINT_XOR, MAGIC_COOKIE};

/// Length of the fixed STUN header.
pub const HEADER_LEN: usize = 20;
/// The Binding method.
pub const BINDING: u16 = 0x001;

/// The class of a STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A request.
    Request,
    /// An indication (no response expected).
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0b00,
            Class::Indication => 0b01,
            Class::Success => 0b10,
            Class::Error => 0b11,
        }
    }

    fn from_bits(b: u16) -> Self {
        match b & 0b11 {
            0b00 => Class::Request,
            0b01 => Class::Indication,
            0b10 => Class::Success,
            _ => Class::Error,
        }
    }
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The attributes do not fit the 16-bit length field.
    #[error("{0} attribute bytes do not fit a STUN message")]
    TooLong(usize),
}

/// A decoded (or to-be-encoded) STUN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request, indication, success or error.
    pub class: Class,
    /// The 12-bit method (`BINDING` is the only one Moss sends).
    pub method: u16,
    /// The transaction id.
    pub transaction_id: TransactionId,
    /// Attributes in wire order, FINGERPRINT excluded.
    pub attributes: Vec<Attribute>,
    /// Whether a (valid) FINGERPRINT ends the message.
    pub fingerprint: bool,
}

impl Message {
    /// A Binding request with the given transaction id and attributes.
    pub fn binding_request(transaction_id: TransactionId, attributes: Vec<Attribute>) -> Self {
        Message {
            class: Class::Request,
            method: BINDING,
            transaction_id,
            attributes,
            fingerprint: true,
        }
    }

    /// The first XOR-MAPPED-ADDRESS, else the first MAPPED-ADDRESS.
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        self.find(|a| match a {
            Attribute::XorMappedAddress(x) => Some(*x),
            _ => None,
        })
        .or_else(|| {
            self.find(|a| match a {
                Attribute::MappedAddress(x) => Some(*x),
                _ => None,
            })
        })
    }

    /// The first OTHER-ADDRESS.
    pub fn other_address(&self) -> Option<SocketAddr> {
        self.find(|a| match a {
            Attribute::OtherAddress(x) => Some(*x),
            _ => None,
        })
    }

    /// The first RESPONSE-ORIGIN.
    pub fn response_origin(&self) -> Option<SocketAddr> {
        self.find(|a| match a {
            Attribute::ResponseOrigin(x) => Some(*x),
            _ => None,
        })
    }

    /// The first ERROR-CODE as (code, reason).
    pub fn error_code(&self) -> Option<(u16, &str)> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::ErrorCode { code, reason } => Some((*code, reason.as_str())),
            _ => None,
        })
    }

    /// Types of unknown comprehension-required attributes (RFC 8489 §7.3.3/§7.3.4).
    pub fn unknown_required(&self) -> Vec<u16> {
        self.attributes
            .iter()
            .filter_map(|a| match a {
                Attribute::Unknown { kind, .. } if Attribute::is_comprehension_required(*kind) => {
                    Some(*kind)
                }
                _ => None,
            })
            .collect()
    }

    fn find<T>(&self, f: impl Fn(&Attribute) -> Option<T>) -> Option<T> {
        self.attributes.iter().find_map(f)
    }

    /// Decodes one datagram. Total: every input gives a message or a precise error.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        if data.len() < HEADER_LEN {
            return Err(DecodeError::TooShort(data.len()));
        }
        let typ = u16::from_be_bytes([data[0], data[1]]);
        if typ & 0xC000 != 0 {
            return Err(DecodeError::NotStun);
        }
        let len = u16::from_be_bytes([data[2], data[3]]);
        let cookie = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        if cookie != MAGIC_COOKIE {
            return Err(DecodeError::BadMagicCookie(cookie));
        }
        if !len.is_multiple_of(4) {
            return Err(DecodeError::UnalignedLength(len));
        }
        if usize::from(len) != data.len() - HEADER_LEN {
            return Err(DecodeError::LengthMismatch {
                header: usize::from(len),
                actual: data.len() - HEADER_LEN,
            });
        }
        let mut tid = [0u8; 12];
        tid.copy_from_slice(&data[8..20]);
        let transaction_id = TransactionId(tid);
        let method = (typ & 0x000F) | ((typ & 0x00E0) >> 1) | ((typ & 0x3E00) >> 2);
        let class = Class::from_bits(((typ >> 4) & 1) | ((typ >> 7) & 2));

        let mut attributes = Vec::new();
        let mut fingerprint = false;
        let mut pos = HEADER_LEN;
        // `len` is a multiple of 4 and every attribute is padded to 4, so at
        // least a whole attribute header remains whenever `pos < data.len()`.
        while pos + 4 <= data.len() {
            let kind = u16::from_be_bytes([data[pos], data[pos + 1]]);
            let vlen = usize::from(u16::from_be_bytes([data[pos + 2], data[pos + 3]]));
            let start = pos + 4;
            let padded = (vlen + 3) & !3;
            if start + padded > data.len() {
                return Err(DecodeError::AttributeTruncated { kind });
            }
            if fingerprint {
                return Err(DecodeError::AttributeAfterFingerprint(kind));
            }
            let value = &data[start..start + vlen];
            if kind == attribute::FINGERPRINT {
                let v: [u8; 4] = value
                    .try_into()
                    .map_err(|_| DecodeError::BadFingerprintLength(vlen))?;
                if u32::from_be_bytes(v) != crc32fast::hash(&data[..pos]) ^ FINGERPRINT_XOR {
                    return Err(DecodeError::FingerprintMismatch);
                }
                fingerprint = true;
            } else {
                attributes.push(Attribute::decode(kind, value, &transaction_id)?);
            }
            pos = start + padded;
        }
        Ok(Message {
            class,
            method,
            transaction_id,
            attributes,
            fingerprint,
        })
    }

    /// Encodes the message (attributes zero-padded, FINGERPRINT last when set).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let m = self.method & 0x0FFF;
        let c = self.class.bits();
        let typ = (m & 0x000F)
            | ((m & 0x0070) << 1)
            | ((m & 0x0F80) << 2)
            | ((c & 1) << 4)
            | ((c & 2) << 7);
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&typ.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0);
        let mut value = Vec::new();
        for a in &self.attributes {
            value.clear();
            a.encode_value(&self.transaction_id, &mut value);
            let vlen = u16::try_from(value.len()).map_err(|_| EncodeError::TooLong(value.len()))?;
            out.extend_from_slice(&a.kind().to_be_bytes());
            out.extend_from_slice(&vlen.to_be_bytes());
            out.extend_from_slice(&value);
            out.resize((out.len() + 3) & !3, 0);
        }
        let body = out.len() - HEADER_LEN + if self.fingerprint { 8 } else { 0 };
        let len = u16::try_from(body).map_err(|_| EncodeError::TooLong(body))?;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        if self.fingerprint {
            let crc = crc32fast::hash(&out) ^ FINGERPRINT_XOR;
            out.extend_from_slice(&attribute::FINGERPRINT.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&crc.to_be_bytes());
        }
        Ok(out)
    }
}
