//! NAT-PMP (RFC 6886): a total codec for the external-address and mapping
//! messages, and a sans-IO external-address query with the RFC's timers
//! (250 ms, doubled per attempt). Moss uses the external address to spot a
//! NAT behind a NAT (CGNAT) and, later, to open mappings.

use std::net::Ipv4Addr;
use std::time::Instant;

/// The NAT-PMP server port on the gateway.
pub const SERVER_PORT: u16 = 5351;
/// Protocol version 0.
pub const VERSION: u8 = 0;

/// Request opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// Ask for the external address (0).
    ExternalAddress,
    /// Map a UDP port (1).
    MapUdp,
    /// Map a TCP port (2).
    MapTcp,
}

impl Opcode {
    fn value(self) -> u8 {
        match self {
            Opcode::ExternalAddress => 0,
            Opcode::MapUdp => 1,
            Opcode::MapTcp => 2,
        }
    }

    fn from_value(v: u8) -> Option<Self> {
        Some(match v {
            0 => Opcode::ExternalAddress,
            1 => Opcode::MapUdp,
            2 => Opcode::MapTcp,
            _ => return None,
        })
    }
}

/// A request from client to gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Ask for the external address.
    ExternalAddress,
    /// Create, renew (same ports) or delete (lifetime 0) a mapping.
    Map {
        /// UDP or TCP.
        tcp: bool,
        /// Our local port.
        internal_port: u16,
        /// The external port we would like (0: any).
        suggested_external_port: u16,
        /// Requested lifetime in seconds (0 deletes).
        lifetime: u32,
    },
}

impl Request {
    /// Encodes the request (2 or 12 bytes).
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Request::ExternalAddress => vec![VERSION, Opcode::ExternalAddress.value()],
            Request::Map {
                tcp,
                internal_port,
                suggested_external_port,
                lifetime,
            } => {
                let op = if tcp { Opcode::MapTcp } else { Opcode::MapUdp };
                let mut v = vec![VERSION, op.value(), 0, 0];
                v.extend_from_slice(&internal_port.to_be_bytes());
                v.extend_from_slice(&suggested_external_port.to_be_bytes());
                v.extend_from_slice(&lifetime.to_be_bytes());
                v
            }
        }
    }
}

/// The result code of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    /// 0.
    Success,
    /// 1.
    UnsupportedVersion,
    /// 2: the user or administrator turned mapping off.
    NotAuthorized,
    /// 3: the gateway has no external address.
    NetworkFailure,
    /// 4.
    OutOfResources,
    /// 5.
    UnsupportedOpcode,
    /// Any other code.
    Other(u16),
}

impl ResultCode {
    /// The code from the wire.
    pub fn from_value(v: u16) -> Self {
        match v {
            0 => ResultCode::Success,
            1 => ResultCode::UnsupportedVersion,
            2 => ResultCode::NotAuthorized,
            3 => ResultCode::NetworkFailure,
            4 => ResultCode::OutOfResources,
            5 => ResultCode::UnsupportedOpcode,
            n => ResultCode::Other(n),
        }
    }

    /// The code on the wire.
    pub fn value(self) -> u16 {
        match self {
            ResultCode::Success => 0,
            ResultCode::UnsupportedVersion => 1,
            ResultCode::NotAuthorized => 2,
            ResultCode::NetworkFailure => 3,
            ResultCode::OutOfResources => 4,
            ResultCode::UnsupportedOpcode => 5,
            ResultCode::Other(n) => n,
        }
    }
}

/// A response from the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// The external address.
    ExternalAddress {
        /// Seconds since the gateway's mapping table was (re)started.
        epoch: u32,
        /// The gateway's external IPv4 address.
        address: Ipv4Addr,
    },
    /// A mapping was created, renewed or deleted.
    Map {
        /// UDP or TCP.
        tcp: bool,
        /// Seconds since start of epoch.
        epoch: u32,
        /// Our local port.
        internal_port: u16,
        /// The external port granted.
        external_port: u16,
        /// Granted lifetime in seconds.
        lifetime: u32,
    },
    /// The gateway refused the request.
    Failure {
        /// The request opcode this answers.
        opcode: Opcode,
        /// Why (never `Success`).
        result: ResultCode,
        /// Seconds since start of epoch.
        epoch: u32,
    },
}

/// Why a datagram is not a NAT-PMP response this codec accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than the 8-byte common header.
    #[error("NAT-PMP datagram of {0} bytes is too short")]
    TooShort(usize),
    /// Version is not 0 (2 is PCP).
    #[error("NAT-PMP version {0}")]
    BadVersion(u8),
    /// The opcode lacks the response bit (128).
    #[error("opcode {0} is a request, not a response")]
    NotAResponse(u8),
    /// A response opcode other than 128, 129, 130.
    #[error("unknown response opcode {0}")]
    UnknownOpcode(u8),
    /// A success response of the wrong length.
    #[error("opcode {opcode}: {len} bytes")]
    BadLength {
        /// The response opcode.
        opcode: u8,
        /// The datagram length.
        len: usize,
    },
}

impl Response {
    /// Decodes a gateway response. Total: a value or a precise error.
    pub fn decode(d: &[u8]) -> Result<Self, DecodeError> {
        if d.len() < 8 {
            return Err(DecodeError::TooShort(d.len()));
        }
        if d[0] != VERSION {
            return Err(DecodeError::BadVersion(d[0]));
        }
        if d[1] & 0x80 == 0 {
            return Err(DecodeError::NotAResponse(d[1]));
        }
        let opcode = Opcode::from_value(d[1] & 0x7f).ok_or(DecodeError::UnknownOpcode(d[1]))?;
        let result = ResultCode::from_value(u16::from_be_bytes([d[2], d[3]]));
        let epoch = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
        if result != ResultCode::Success {
            return Ok(Response::Failure {
                opcode,
                result,
                epoch,
            });
        }
        let want = if opcode == Opcode::ExternalAddress {
            12
        } else {
            16
        };
        if d.len() != want {
            return Err(DecodeError::BadLength {
                opcode: d[1],
                len: d.len(),
            });
        }
        Ok(match opcode {
            Opcode::ExternalAddress => Response::ExternalAddress {
                epoch,
                address: Ipv4Addr::new(d[8], d[9], d[10], d[11]),
            },
            Opcode::MapUdp | Opcode::MapTcp => Response::Map {
                tcp: opcode == Opcode::MapTcp,
                epoch,
                internal_port: u16::from_be_bytes([d[8], d[9]]),
                external_port: u16::from_be_bytes([d[10], d[11]]),
                lifetime: u32::from_be_bytes([d[12], d[13], d[14], d[15]]),
            },
        })
    }

    /// Encodes the response (what a gateway sends; used by tests and fuzzing).
    pub fn encode(&self) -> Vec<u8> {
        let (op, result, epoch) = match *self {
            Response::ExternalAddress { epoch, .. } => {
                (Opcode::ExternalAddress, ResultCode::Success, epoch)
            }
            Response::Map { tcp, epoch, .. } => (
                if tcp { Opcode::MapTcp } else { Opcode::MapUdp },
                ResultCode::Success,
                epoch,
            ),
            Response::Failure {
                opcode,
                result,
                epoch,
            } => (opcode, result, epoch),
        };
        let mut v = vec![VERSION, 0x80 | op.value()];
        v.extend_from_slice(&result.value().to_be_bytes());
        v.extend_from_slice(&epoch.to_be_bytes());
        match *self {
            Response::ExternalAddress { address, .. } => v.extend_from_slice(&address.octets()),
            Response::Map {
                internal_port,
                external_port,
                lifetime,
                ..
            } => {
                v.extend_from_slice(&internal_port.to_be_bytes());
                v.extend_from_slice(&external_port.to_be_bytes());
                v.extend_from_slice(&lifetime.to_be_bytes());
            }
            Response::Failure { .. } => {}
        }
        v
    }
}

/// How an external-address query ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome {
    /// The gateway answered with its external address.
    Address(Ipv4Addr),
    /// The gateway refused.
    Refused(ResultCode),
    /// No answer after every attempt (no NAT-PMP gateway).
    Timeout,
}

/// A sans-IO NAT-PMP external-address query (RFC 6886 §3.1 timers).
#[derive(Debug)]
pub struct ExternalAddressQuery {
    attempts: u32,
    max_attempts: u32,
    deadline: Option<Instant>,
    pending: bool,
    outcome: Option<QueryOutcome>,
}

pub use crate::portmap::INITIAL_INTERVAL;

impl ExternalAddressQuery {
    /// A query that sends up to `max_attempts` times (RFC 6886: 9).
    pub fn new(max_attempts: u32) -> Self {
        ExternalAddressQuery {
            attempts: 0,
            max_attempts: max_attempts.max(1),
            deadline: None,
            pending: true,
            outcome: None,
        }
    }

    /// The request to send now, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if !self.pending || self.outcome.is_some() {
            return None;
        }
        self.pending = false;
        self.deadline = Some(now + INITIAL_INTERVAL * (1u32 << self.attempts.min(16)));
        self.attempts += 1;
        Some(Request::ExternalAddress.encode())
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            None
        } else {
            self.deadline
        }
    }

    /// Advances the timer.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_some() || self.deadline.is_none_or(|d| d > now) {
            return;
        }
        if self.attempts >= self.max_attempts {
            self.outcome = Some(QueryOutcome::Timeout);
        } else {
            self.pending = true;
        }
    }

    /// Feeds a datagram received from the gateway's port 5351.
    pub fn handle_datagram(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        match Response::decode(data)? {
            Response::ExternalAddress { address, .. } => {
                self.outcome = Some(QueryOutcome::Address(address))
            }
            Response::Failure {
                opcode: Opcode::ExternalAddress,
                result,
                ..
            } => self.outcome = Some(QueryOutcome::Refused(result)),
            _ => {}
        }
        Ok(())
    }

    /// The result, once known.
    pub fn outcome(&self) -> Option<QueryOutcome> {
        self.outcome
    }
}

/// NAT-PMP as a [`crate::portmap::MappingProtocol`] (UDP mappings).
#[derive(Debug, Clone, Copy, Default)]
pub struct NatPmp;

impl crate::portmap::MappingProtocol for NatPmp {
    type Error = DecodeError;

    fn encode_map(
        &self,
        internal_port: u16,
        suggested_external_port: u16,
        lifetime: u32,
    ) -> Vec<u8> {
        Request::Map {
            tcp: false,
            internal_port,
            suggested_external_port,
            lifetime,
        }
        .encode()
    }

    fn decode_map(&self, data: &[u8]) -> Result<Option<crate::portmap::MapReply>, DecodeError> {
        use crate::portmap::MapReply;
        Ok(match Response::decode(data)? {
            Response::Map {
                tcp: false,
                internal_port,
                external_port,
                lifetime,
                ..
            } => Some(MapReply::Granted {
                internal_port,
                external_port,
                lifetime,
                external_ip: None,
            }),
            Response::Failure {
                opcode: Opcode::MapUdp,
                result,
                ..
            } => Some(MapReply::Refused(result.value())),
            _ => None,
        })
    }
}
