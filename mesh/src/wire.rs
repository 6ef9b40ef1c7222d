//! The Moss wire format: datagram heads, handshake bodies and frames.
//! `docs/PROTOCOL.md` is the normative description; every decoder here is
//! total (any bytes give a value or a [`WireError`], never a panic).

use moss_crypto::scramble::HEAD_LEN;
use moss_crypto::transport::TAG_LEN;

/// Protocol version carried in every head.
pub const VERSION: u8 = 1;
/// Largest datagram Moss sends: fits the IPv6 minimum MTU (1280) minus IPv6
/// and UDP headers, with room to spare for tunnels.
pub const MAX_DATAGRAM: usize = 1200;
/// Largest frame bytes one data datagram carries.
pub const MAX_PLAINTEXT: usize = MAX_DATAGRAM - HEAD_LEN - TAG_LEN;
/// Frame header: type (1) + body length (2).
pub const FRAME_HEADER: usize = 3;
/// Longest topic name in bytes.
pub const MAX_TOPIC: usize = 255;
/// Fixed bytes of a publish body besides topic and payload.
pub const PUBLISH_FIXED: usize = 1 + 32 + 8 + 1;
/// Fixed bytes of a fragment body besides its data.
pub const FRAGMENT_FIXED: usize = 4 + 2 + 2;
/// Data bytes per fragment.
pub const FRAGMENT_CHUNK: usize = MAX_PLAINTEXT - FRAME_HEADER - FRAGMENT_FIXED;
/// Most fragments of one message.
pub const MAX_FRAGMENTS: u16 = 1024;
/// Fixed bytes of a handshake body besides the Noise message and padding.
pub const HANDSHAKE_FIXED: usize = 4 + 4 + 2;

/// Why bytes were not a valid Moss structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the structure needs.
    #[error("truncated")]
    Truncated,
    /// The head's kind byte is not a known datagram kind.
    #[error("unknown datagram kind {0}")]
    UnknownKind(u8),
    /// The head names a protocol version we do not speak.
    #[error("unsupported version {0}")]
    BadVersion(u8),
    /// Reserved bits were not zero.
    #[error("reserved bits set")]
    Reserved,
    /// A frame type we do not know.
    #[error("unknown frame type {0}")]
    UnknownFrame(u8),
    /// A topic was empty, too long or not UTF-8.
    #[error("bad topic")]
    BadTopic,
    /// A length field points past the end of its buffer.
    #[error("length field out of range")]
    BadLength,
    /// Fragment numbering is inconsistent.
    #[error("bad fragment header")]
    BadFragment,
    /// A NAT frame (0x50–0x5F) whose body does not decode.
    #[error("bad NAT frame: {0}")]
    Nat(#[from] crate::nat::NatFrameError),
}

/// Datagram kinds (first byte of the unmasked head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Noise message 1.
    Init = 1,
    /// Noise message 2.
    Response = 2,
    /// Noise message 3.
    Final = 3,
    /// Transport data (frames sealed with the session cipher).
    Data = 4,
    /// Noise IK message 1 (a reconnect to a responder whose key we hold).
    IkInit = 5,
    /// Noise IK message 2.
    IkResponse = 6,
    /// An unauthenticated hint ([`crate::hint::Hint`]): "that index is
    /// unknown here" or "that IK message 1 could not be read".
    Hint = 7,
    /// A cookie reply to a message 1 under load ([`crate::cookie`]).
    CookieReply = 8,
    /// Message 1 (XX or IK) echoing a cookie ([`crate::cookie`]).
    CookieInit = 9,
    /// A NAT token datagram of a fresh-socket filtering test
    /// ([`crate::nat`], PROTOCOL.md "NAT traversal frames"): never answered.
    NatToken = 10,
}

impl Kind {
    fn from_u8(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            1 => Self::Init,
            2 => Self::Response,
            3 => Self::Final,
            4 => Self::Data,
            5 => Self::IkInit,
            6 => Self::IkResponse,
            7 => Self::Hint,
            8 => Self::CookieReply,
            9 => Self::CookieInit,
            10 => Self::NatToken,
            other => return Err(WireError::UnknownKind(other)),
        })
    }
}

/// A decoded (unmasked) 16-byte head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// A data datagram: receiver's session index and the AEAD counter.
    Data {
        /// The receiver's local session index.
        receiver: u32,
        /// Explicit nonce counter.
        counter: u64,
    },
    /// A handshake datagram: padding length and body scramble nonce.
    Handshake {
        /// Which Noise message.
        kind: Kind,
        /// Random padding bytes at the end of the body.
        pad_len: u16,
        /// Nonce of the body keystream.
        nonce: [u8; 12],
    },
}

impl Head {
    /// Encodes the head.
    pub fn encode(&self) -> [u8; HEAD_LEN] {
        let mut h = [0u8; HEAD_LEN];
        h[1] = VERSION;
        match *self {
            Head::Data { receiver, counter } => {
                h[0] = Kind::Data as u8;
                h[4..8].copy_from_slice(&receiver.to_le_bytes());
                h[8..16].copy_from_slice(&counter.to_le_bytes());
            }
            Head::Handshake {
                kind,
                pad_len,
                nonce,
            } => {
                h[0] = kind as u8;
                h[2..4].copy_from_slice(&pad_len.to_le_bytes());
                h[4..16].copy_from_slice(&nonce);
            }
        }
        h
    }

    /// Decodes an unmasked head.
    pub fn decode(h: &[u8; HEAD_LEN]) -> Result<Self, WireError> {
        let kind = Kind::from_u8(h[0])?;
        if h[1] != VERSION {
            return Err(WireError::BadVersion(h[1]));
        }
        Ok(match kind {
            Kind::Data => {
                if h[2] != 0 || h[3] != 0 {
                    return Err(WireError::Reserved);
                }
                Head::Data {
                    receiver: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
                    counter: u64::from_le_bytes([
                        h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15],
                    ]),
                }
            }
            kind => {
                let mut nonce = [0u8; 12];
                nonce.copy_from_slice(&h[4..16]);
                Head::Handshake {
                    kind,
                    pad_len: u16::from_le_bytes([h[2], h[3]]),
                    nonce,
                }
            }
        })
    }
}

/// The (unscrambled) body of a handshake datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandshakeBody<'a> {
    /// The sender's local session index.
    pub sender: u32,
    /// The receiver's index (0 in message 1).
    pub receiver: u32,
    /// The Noise message.
    pub noise: &'a [u8],
}

impl<'a> HandshakeBody<'a> {
    /// Appends the body (without padding) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.sender.to_le_bytes());
        out.extend_from_slice(&self.receiver.to_le_bytes());
        out.extend_from_slice(&(self.noise.len() as u16).to_le_bytes());
        out.extend_from_slice(self.noise);
    }

    /// Decodes a body, ignoring `pad_len` trailing padding bytes.
    pub fn decode(b: &'a [u8], pad_len: u16) -> Result<Self, WireError> {
        let end = b
            .len()
            .checked_sub(pad_len as usize)
            .ok_or(WireError::BadLength)?;
        let b = &b[..end];
        if b.len() < HANDSHAKE_FIXED {
            return Err(WireError::Truncated);
        }
        let n = u16::from_le_bytes([b[8], b[9]]) as usize;
        if b.len() != HANDSHAKE_FIXED + n {
            return Err(WireError::BadLength);
        }
        Ok(Self {
            sender: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            receiver: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            noise: &b[HANDSHAKE_FIXED..],
        })
    }
}

mod lists;
pub use lists::{IdList, PxList, PxRecord};

/// Frame type bytes.
pub(crate) mod ty {
    pub const SUBSCRIBE: u8 = 0x10;
    pub const UNSUBSCRIBE: u8 = 0x11;
    pub const PUBLISH: u8 = 0x20;
    pub const FRAGMENT: u8 = 0x21;
    pub const CLOSE: u8 = 0x30;
    pub const SIGNED_PUBLISH: u8 = 0x22;
    pub const SIGNED_FRAGMENT: u8 = 0x23;
    pub const GRAFT: u8 = 0x40;
    pub const PRUNE: u8 = 0x41;
    pub const IHAVE: u8 = 0x42;
    pub const IWANT: u8 = 0x43;
    pub const IDONTWANT: u8 = 0x44;
}

/// A pub/sub message as it travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Publish<'a> {
    /// Hops travelled so far (0 from the origin).
    pub hops: u8,
    /// Peer id of the publisher.
    pub origin: [u8; 32],
    /// Publisher's sequence number.
    pub seq: u64,
    /// Topic name.
    pub topic: &'a str,
    /// Application bytes.
    pub payload: &'a [u8],
}

impl<'a> Publish<'a> {
    /// Encoded body length.
    pub fn body_len(&self) -> usize {
        PUBLISH_FIXED + self.topic.len() + self.payload.len()
    }

    /// Appends the body to `out`.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.hops);
        out.extend_from_slice(&self.origin);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.push(self.topic.len() as u8);
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(self.payload);
    }

    /// Decodes a body.
    pub fn decode_body(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < PUBLISH_FIXED {
            return Err(WireError::Truncated);
        }
        let mut origin = [0u8; 32];
        origin.copy_from_slice(&b[1..33]);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[33..41]);
        let tlen = b[41] as usize;
        let rest = &b[PUBLISH_FIXED..];
        if rest.len() < tlen {
            return Err(WireError::Truncated);
        }
        Ok(Self {
            hops: b[0],
            origin,
            seq: u64::from_le_bytes(seq),
            topic: topic(&rest[..tlen])?,
            payload: &rest[tlen..],
        })
    }
}

/// One frame inside a data datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// The sender subscribed to a topic.
    Subscribe(&'a str),
    /// The sender left a topic.
    Unsubscribe(&'a str),
    /// A whole pub/sub message.
    Publish(Publish<'a>),
    /// One piece of a publish body too large for one datagram.
    Fragment {
        /// Sender-chosen id grouping the pieces.
        transfer: u32,
        /// Piece number, from 0.
        index: u16,
        /// Number of pieces.
        count: u16,
        /// Piece bytes.
        data: &'a [u8],
    },
    /// The sender is closing the session.
    Close(u8),
    /// A whole pub/sub message with the origin's Ed25519 signature.
    SignedPublish(SignedPublish<'a>),
    /// One piece of `message id (32) ‖ signed publish body` when the body is
    /// too large for one datagram (same layout as [`Frame::Fragment`]); the
    /// id up front lets the receiver send IDONTWANT at the first piece.
    SignedFragment {
        /// Sender-chosen id grouping the pieces.
        transfer: u32,
        /// Piece number, from 0.
        index: u16,
        /// Number of pieces.
        count: u16,
        /// Piece bytes.
        data: &'a [u8],
    },
    /// GossipSub GRAFT: the sender added us to its mesh of a topic.
    Graft(&'a str),
    /// GossipSub PRUNE: the sender removed us from its mesh of a topic.
    Prune {
        /// Topic.
        topic: &'a str,
        /// Seconds before we may graft again.
        backoff_secs: u32,
        /// Peer exchange records.
        px: PxList<'a>,
    },
    /// GossipSub IHAVE: recent message ids of a topic.
    IHave {
        /// Topic.
        topic: &'a str,
        /// Message ids.
        ids: IdList<'a>,
    },
    /// GossipSub IWANT: message ids the sender asks for.
    IWant(IdList<'a>),
    /// GossipSub IDONTWANT: ids of large messages the sender already has.
    IDontWant(IdList<'a>),
    /// A NAT traversal frame (0x50–0x5F, `crate::nat`).
    Nat(crate::nat::NatFrame),
    /// A relay frame (types 0x60–0x6F): the body is decoded by
    /// [`crate::relay::frames`].
    Relay {
        /// The frame type, in [`RELAY_TYPES`].
        ty: u8,
        /// The body.
        body: &'a [u8],
    },
}

/// Frame types reserved for relays and supernodes.
pub const RELAY_TYPES: std::ops::RangeInclusive<u8> = 0x60..=0x6f;

/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Most message ids in one IHAVE/IWANT/IDONTWANT frame: with the longest
/// topic the frame still fits one datagram.
pub const MAX_IDS_PER_FRAME: usize = (MAX_PLAINTEXT - FRAME_HEADER - 1 - MAX_TOPIC) / 32;
/// Most peer-exchange records in one PRUNE.
pub const MAX_PX: usize = 16;
/// Fixed bytes of a PRUNE body besides topic and records.
pub const PRUNE_FIXED: usize = 4 + 1;

/// A publish body signed by its origin: `signature (64) ‖ publish body`.
/// The signature covers `"moss/msg/v1" ‖ message id`, and the id commits to
/// origin, sequence number, topic and payload (not to `hops`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedPublish<'a> {
    /// Ed25519 signature of the origin.
    pub signature: [u8; SIGNATURE_LEN],
    /// The message.
    pub publish: Publish<'a>,
}

impl<'a> SignedPublish<'a> {
    /// Encoded body length.
    pub fn body_len(&self) -> usize {
        SIGNATURE_LEN + self.publish.body_len()
    }

    /// Appends the body to `out`.
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.signature);
        self.publish.encode_body(out);
    }

    /// Decodes a body.
    pub fn decode_body(b: &'a [u8]) -> Result<Self, WireError> {
        if b.len() < SIGNATURE_LEN {
            return Err(WireError::Truncated);
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&b[..SIGNATURE_LEN]);
        Ok(Self {
            signature,
            publish: Publish::decode_body(&b[SIGNATURE_LEN..])?,
        })
    }

    /// Offset of the `hops` byte in an encoded body.
    pub const HOPS_OFFSET: usize = SIGNATURE_LEN;
}

/// The bytes an origin signs for message `id`.
pub fn signing_bytes(id: &[u8; 32]) -> [u8; 43] {
    let mut b = [0u8; 43];
    b[..11].copy_from_slice(b"moss/msg/v1");
    b[11..].copy_from_slice(id);
    b
}

/// Splits `topic_len (u8) ‖ topic ‖ rest`.
fn topic_prefixed(b: &[u8]) -> Result<(&str, &[u8]), WireError> {
    let (&tlen, rest) = b.split_first().ok_or(WireError::Truncated)?;
    let tb = rest.get(..tlen as usize).ok_or(WireError::Truncated)?;
    Ok((topic(tb)?, &rest[tlen as usize..]))
}

fn topic(b: &[u8]) -> Result<&str, WireError> {
    if b.is_empty() || b.len() > MAX_TOPIC {
        return Err(WireError::BadTopic);
    }
    std::str::from_utf8(b).map_err(|_| WireError::BadTopic)
}

impl<'a> Frame<'a> {
    /// Encoded length including the frame header.
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER
            + match self {
                Frame::Subscribe(t) | Frame::Unsubscribe(t) => t.len(),
                Frame::Publish(p) => p.body_len(),
                Frame::Fragment { data, .. } => FRAGMENT_FIXED + data.len(),
                Frame::Close(_) => 1,
                Frame::SignedPublish(p) => p.body_len(),
                Frame::SignedFragment { data, .. } => FRAGMENT_FIXED + data.len(),
                Frame::Graft(t) => t.len(),
                Frame::Prune { topic, px, .. } => PRUNE_FIXED + topic.len() + px.as_bytes().len(),
                Frame::IHave { topic, ids } => 1 + topic.len() + ids.as_bytes().len(),
                Frame::IWant(ids) | Frame::IDontWant(ids) => ids.as_bytes().len(),
                Frame::Nat(f) => f.body_len(),
                Frame::Relay { body, .. } => body.len(),
            }
    }

    /// Appends the frame to `out`. The caller keeps frames below
    /// [`MAX_PLAINTEXT`] (publishes that are larger go as fragments).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let body_len = (self.encoded_len() - FRAME_HEADER) as u16;
        let t = match self {
            Frame::Subscribe(_) => ty::SUBSCRIBE,
            Frame::Unsubscribe(_) => ty::UNSUBSCRIBE,
            Frame::Publish(_) => ty::PUBLISH,
            Frame::Fragment { .. } => ty::FRAGMENT,
            Frame::Close(_) => ty::CLOSE,
            Frame::SignedPublish(_) => ty::SIGNED_PUBLISH,
            Frame::SignedFragment { .. } => ty::SIGNED_FRAGMENT,
            Frame::Graft(_) => ty::GRAFT,
            Frame::Prune { .. } => ty::PRUNE,
            Frame::IHave { .. } => ty::IHAVE,
            Frame::IWant(_) => ty::IWANT,
            Frame::IDontWant(_) => ty::IDONTWANT,
            Frame::Nat(f) => f.type_byte(),
            Frame::Relay { ty, .. } => *ty,
        };
        out.push(t);
        out.extend_from_slice(&body_len.to_le_bytes());
        match self {
            Frame::Subscribe(t) | Frame::Unsubscribe(t) => out.extend_from_slice(t.as_bytes()),
            Frame::Publish(p) => p.encode_body(out),
            Frame::Fragment {
                transfer,
                index,
                count,
                data,
            }
            | Frame::SignedFragment {
                transfer,
                index,
                count,
                data,
            } => {
                out.extend_from_slice(&transfer.to_le_bytes());
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(&count.to_le_bytes());
                out.extend_from_slice(data);
            }
            Frame::Close(r) => out.push(*r),
            Frame::SignedPublish(p) => p.encode_body(out),
            Frame::Graft(t) => out.extend_from_slice(t.as_bytes()),
            Frame::Prune {
                topic,
                backoff_secs,
                px,
            } => {
                out.extend_from_slice(&backoff_secs.to_le_bytes());
                out.push(topic.len() as u8);
                out.extend_from_slice(topic.as_bytes());
                out.extend_from_slice(px.as_bytes());
            }
            Frame::IHave { topic, ids } => {
                out.push(topic.len() as u8);
                out.extend_from_slice(topic.as_bytes());
                out.extend_from_slice(ids.as_bytes());
            }
            Frame::IWant(ids) | Frame::IDontWant(ids) => out.extend_from_slice(ids.as_bytes()),
            Frame::Nat(f) => f.encode_body(out),
            Frame::Relay { body, .. } => out.extend_from_slice(body),
        }
    }

    fn decode(t: u8, b: &'a [u8]) -> Result<Self, WireError> {
        Ok(match t {
            ty::SUBSCRIBE => Frame::Subscribe(topic(b)?),
            ty::UNSUBSCRIBE => Frame::Unsubscribe(topic(b)?),
            ty::PUBLISH => Frame::Publish(Publish::decode_body(b)?),
            ty::FRAGMENT | ty::SIGNED_FRAGMENT => {
                if b.len() < FRAGMENT_FIXED {
                    return Err(WireError::Truncated);
                }
                let index = u16::from_le_bytes([b[4], b[5]]);
                let count = u16::from_le_bytes([b[6], b[7]]);
                if count == 0 || count > MAX_FRAGMENTS || index >= count {
                    return Err(WireError::BadFragment);
                }
                let transfer = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let data = &b[FRAGMENT_FIXED..];
                if t == ty::FRAGMENT {
                    Frame::Fragment {
                        transfer,
                        index,
                        count,
                        data,
                    }
                } else {
                    Frame::SignedFragment {
                        transfer,
                        index,
                        count,
                        data,
                    }
                }
            }
            ty::SIGNED_PUBLISH => Frame::SignedPublish(SignedPublish::decode_body(b)?),
            ty::GRAFT => Frame::Graft(topic(b)?),
            ty::PRUNE => {
                let backoff = b.get(..4).ok_or(WireError::Truncated)?;
                let (topic, rest) = topic_prefixed(&b[4..])?;
                Frame::Prune {
                    topic,
                    backoff_secs: u32::from_le_bytes([
                        backoff[0], backoff[1], backoff[2], backoff[3],
                    ]),
                    px: PxList::parse(rest)?,
                }
            }
            ty::IHAVE => {
                let (topic, rest) = topic_prefixed(b)?;
                Frame::IHave {
                    topic,
                    ids: IdList::parse(rest)?,
                }
            }
            ty::IWANT => Frame::IWant(IdList::parse(b)?),
            ty::IDONTWANT => Frame::IDontWant(IdList::parse(b)?),
            ty::CLOSE => {
                if b.len() != 1 {
                    return Err(WireError::BadLength);
                }
                Frame::Close(b[0])
            }
            crate::nat::FRAME_TYPES_FIRST..=crate::nat::FRAME_TYPES_LAST => {
                Frame::Nat(crate::nat::NatFrame::decode(t, b)?)
            }
            t if RELAY_TYPES.contains(&t) => Frame::Relay { ty: t, body: b },
            other => return Err(WireError::UnknownFrame(other)),
        })
    }
}

/// Iterates over the frames of a decrypted data datagram. Stops at the
/// first malformed frame, yielding its error once.
pub struct FrameReader<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> FrameReader<'a> {
    /// Reads frames from `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, failed: false }
    }
}

impl<'a> Iterator for FrameReader<'a> {
    type Item = Result<Frame<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() || self.failed {
            return None;
        }
        let r = (|| {
            if self.buf.len() < FRAME_HEADER {
                return Err(WireError::Truncated);
            }
            let t = self.buf[0];
            let len = u16::from_le_bytes([self.buf[1], self.buf[2]]) as usize;
            let body = self
                .buf
                .get(FRAME_HEADER..FRAME_HEADER + len)
                .ok_or(WireError::BadLength)?;
            let f = Frame::decode(t, body)?;
            self.buf = &self.buf[FRAME_HEADER + len..];
            Ok(f)
        })();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests;
