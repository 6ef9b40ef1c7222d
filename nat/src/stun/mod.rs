//! STUN (RFC 8489) with the RFC 5780 behaviour-discovery attributes: a total
//! message codec and a sans-IO Binding client. Moss is only ever a STUN
//! client: it never answers unauthenticated STUN on its mesh port.

mod attribute;
mod client;
mod message;

pub use attribute::{Attribute, ChangeRequest, MAX_REASON_BYTES, MAX_SOFTWARE_BYTES};
pub use client::{
    BindingFailure, BindingOutcome, BindingResponse, ClientConfig, ClientError, ClientStats,
    DatagramError, StunClient, Transmit,
};
pub use message::{Class, EncodeError, Message, BINDING, HEADER_LEN};

/// Attribute type numbers (RFC 8489 §18.3, RFC 5780 §9.1).
pub mod kind {
    pub use super::attribute::{
        CHANGE_REQUEST, ERROR_CODE, FINGERPRINT, MAPPED_ADDRESS, OTHER_ADDRESS, RESPONSE_ORIGIN,
        SOFTWARE, XOR_MAPPED_ADDRESS,
    };
}

/// The fixed magic cookie of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// The value FINGERPRINT's CRC-32 is XORed with.
pub const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// A 96-bit STUN transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId(pub [u8; 12]);

impl TransactionId {
    /// A fresh id drawn from `rng` (RFC 8489 asks for a cryptographically random one).
    pub fn random(rng: &mut impl rand_core::RngCore) -> Self {
        let mut id = [0u8; 12];
        rng.fill_bytes(&mut id);
        TransactionId(id)
    }
}

/// Why a byte string is not a STUN message this codec accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than the 20 bytes of a header.
    #[error("datagram of {0} bytes is shorter than a STUN header")]
    TooShort(usize),
    /// The two most significant bits of the message type are not zero.
    #[error("the first two bits are not zero: not STUN")]
    NotStun,
    /// The magic cookie is not 0x2112A442.
    #[error("bad magic cookie {0:#010x}")]
    BadMagicCookie(u32),
    /// The header's length is not a multiple of 4.
    #[error("message length {0} is not a multiple of 4")]
    UnalignedLength(u16),
    /// The header's length disagrees with the datagram's.
    #[error("header says {header} attribute bytes, datagram has {actual}")]
    LengthMismatch {
        /// Length in the header.
        header: usize,
        /// Bytes after the header.
        actual: usize,
    },
    /// An attribute header or value runs past the end of the message.
    #[error("attribute {kind:#06x} runs past the end of the message")]
    AttributeTruncated {
        /// Attribute type.
        kind: u16,
    },
    /// An attribute follows FINGERPRINT, which must be last.
    #[error("attribute {0:#06x} follows FINGERPRINT")]
    AttributeAfterFingerprint(u16),
    /// FINGERPRINT's value is not 4 bytes.
    #[error("FINGERPRINT of {0} bytes")]
    BadFingerprintLength(usize),
    /// FINGERPRINT does not match the message.
    #[error("FINGERPRINT mismatch")]
    FingerprintMismatch,
    /// An address attribute has an unknown family.
    #[error("attribute {kind:#06x}: unknown address family {family}")]
    BadAddressFamily {
        /// Attribute type.
        kind: u16,
        /// The family byte.
        family: u8,
    },
    /// An address attribute's length does not fit its family.
    #[error("attribute {kind:#06x}: bad address length {len}")]
    BadAddressLength {
        /// Attribute type.
        kind: u16,
        /// Value length.
        len: usize,
    },
    /// CHANGE-REQUEST's value is not 4 bytes.
    #[error("CHANGE-REQUEST of {0} bytes")]
    BadChangeRequestLength(usize),
    /// CHANGE-REQUEST sets bits other than change-IP and change-port.
    #[error("CHANGE-REQUEST with unknown flags {0:#x}")]
    BadChangeRequestFlags(u32),
    /// ERROR-CODE shorter than its 4 fixed bytes.
    #[error("ERROR-CODE of {0} bytes")]
    BadErrorCodeLength(usize),
    /// ERROR-CODE class outside 3..=6 or number above 99.
    #[error("ERROR-CODE class {class} number {number} is out of range")]
    BadErrorCode {
        /// The class digit.
        class: u16,
        /// The number within the class.
        number: u16,
    },
    /// ERROR-CODE reason longer than RFC 8489 allows.
    #[error("ERROR-CODE reason of {0} bytes")]
    ReasonTooLong(usize),
    /// SOFTWARE longer than RFC 8489 allows.
    #[error("SOFTWARE of {0} bytes")]
    SoftwareTooLong(usize),
    /// A text attribute that is not UTF-8.
    #[error("attribute {0:#06x} is not UTF-8")]
    NotUtf8(u16),
}
