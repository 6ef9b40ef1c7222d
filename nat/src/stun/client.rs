//! A sans-IO STUN Binding client: transactions with RFC 8489 §6.2.1
//! retransmission timers, response matching by transaction id, and timeouts
//! reported as results. Time and randomness are passed in.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Attribute, ChangeRequest, Class, DecodeError, Message, TransactionId, BINDING};

/// Retransmission and capacity settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientConfig {
    /// Initial retransmission timeout (RFC 8489: 500 ms, doubled each send).
    pub rto: Duration,
    /// Number of sends per transaction (RFC 8489 `Rc`: 7).
    pub max_sends: u32,
    /// Wait after the last send, in multiples of `rto` (RFC 8489 `Rm`: 16).
    pub last_wait: u32,
    /// Transactions in flight at once; more are refused.
    pub max_in_flight: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            rto: Duration::from_millis(500),
            max_sends: 7,
            last_wait: 16,
            max_in_flight: 64,
        }
    }
}

impl ClientConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.rto.is_zero()
            || self.max_sends == 0
            || self.last_wait == 0
            || self.max_in_flight == 0
        {
            return Err(ClientError::BadConfig);
        }
        Ok(())
    }

    /// Time from the first send to the timeout result, if no response arrives.
    pub fn give_up_after(&self) -> Duration {
        let doubling: u32 = (0..self.max_sends.saturating_sub(1))
            .map(|k| 1u32 << k.min(20))
            .sum();
        self.rto * doubling.saturating_add(self.last_wait)
    }
}

/// Why the client refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// `max_in_flight` transactions are already running.
    #[error("too many STUN transactions in flight")]
    TooManyInFlight,
    /// A zero timeout, send count or capacity.
    #[error("invalid STUN client configuration")]
    BadConfig,
}

/// Why a datagram was dropped (each case is also counted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// Not a STUN message this codec accepts.
    #[error("malformed STUN: {0}")]
    Malformed(#[from] DecodeError),
    /// A request or indication, or a method other than Binding: a client never answers.
    #[error("not a Binding response")]
    NotAResponse,
    /// No transaction in flight has this id.
    #[error("no transaction with this id")]
    UnknownTransaction,
}

/// A datagram the driver must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The encoded request.
    pub payload: Vec<u8>,
}

/// A successful Binding response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingResponse {
    /// Our reflexive address as the server saw it.
    pub mapped: SocketAddr,
    /// The address the response came from.
    pub from: SocketAddr,
    /// OTHER-ADDRESS, when the server supports RFC 5780.
    pub other_address: Option<SocketAddr>,
    /// RESPONSE-ORIGIN, when present.
    pub response_origin: Option<SocketAddr>,
    /// Time from the last send to the response.
    pub rtt: Duration,
    /// Whether the request was sent more than once (RTT then ambiguous, Karn).
    pub retransmitted: bool,
}

/// Why a Binding transaction failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingFailure {
    /// No response after every retransmission.
    Timeout,
    /// An error response.
    ErrorResponse {
        /// ERROR-CODE, when present.
        code: Option<u16>,
        /// The reason phrase (empty without ERROR-CODE).
        reason: String,
    },
    /// A success response with comprehension-required attributes we do not know.
    UnknownRequired(Vec<u16>),
    /// A success response without any mapped address.
    NoMappedAddress,
}

/// The result of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingOutcome {
    /// The transaction.
    pub id: TransactionId,
    /// The server the request was sent to.
    pub server: SocketAddr,
    /// The CHANGE-REQUEST flags the request carried.
    pub change: ChangeRequest,
    /// What happened.
    pub result: Result<BindingResponse, BindingFailure>,
}

#[derive(Debug)]
struct Transaction {
    id: TransactionId,
    server: SocketAddr,
    change: ChangeRequest,
    payload: Vec<u8>,
    sends: u32,
    pending: bool,
    deadline: Instant,
    last_sent: Instant,
}

/// Counters of what the client dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Datagrams that did not decode.
    pub malformed: u64,
    /// Well-formed STUN that was not a Binding response.
    pub not_response: u64,
    /// Responses that matched no transaction in flight.
    pub unmatched: u64,
}

/// The sans-IO STUN Binding client for one local socket.
#[derive(Debug)]
pub struct StunClient {
    config: ClientConfig,
    transactions: Vec<Transaction>,
    outcomes: VecDeque<BindingOutcome>,
    stats: ClientStats,
}

impl StunClient {
    /// A client with the given (validated) settings.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        config.validate()?;
        Ok(StunClient {
            config,
            transactions: Vec::new(),
            outcomes: VecDeque::new(),
            stats: ClientStats::default(),
        })
    }

    /// Starts a Binding transaction towards `server`, optionally with CHANGE-REQUEST.
    pub fn start_binding(
        &mut self,
        now: Instant,
        server: SocketAddr,
        change: ChangeRequest,
        rng: &mut impl rand_core::RngCore,
    ) -> Result<TransactionId, ClientError> {
        if self.transactions.len() >= self.config.max_in_flight {
            return Err(ClientError::TooManyInFlight);
        }
        let id = TransactionId::random(rng);
        let attributes = if change == ChangeRequest::default() {
            Vec::new()
        } else {
            vec![Attribute::ChangeRequest(change)]
        };
        // A Binding request with at most one 4-byte attribute always fits.
        let payload = Message::binding_request(id, attributes)
            .encode()
            .map_err(|_| ClientError::BadConfig)?;
        self.transactions.push(Transaction {
            id,
            server,
            change,
            payload,
            sends: 0,
            pending: true,
            deadline: now,
            last_sent: now,
        });
        Ok(id)
    }

    /// The next datagram to send, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let cfg = self.config;
        let t = self.transactions.iter_mut().find(|t| t.pending)?;
        t.pending = false;
        t.sends += 1;
        t.last_sent = now;
        t.deadline = if t.sends < cfg.max_sends {
            now + cfg.rto * (1u32 << (t.sends - 1).min(20))
        } else {
            now + cfg.rto * cfg.last_wait
        };
        Some(Transmit {
            destination: t.server,
            payload: t.payload.clone(),
        })
    }

    /// When `handle_timeout` must next be called (None: nothing in flight).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.transactions
            .iter()
            .filter(|t| !t.pending)
            .map(|t| t.deadline)
            .min()
    }

    /// Advances timers: schedules retransmissions and reports timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        let max_sends = self.config.max_sends;
        let mut i = 0;
        while i < self.transactions.len() {
            let t = &mut self.transactions[i];
            if t.pending || t.deadline > now {
                i += 1;
            } else if t.sends < max_sends {
                t.pending = true;
                i += 1;
            } else {
                let t = self.transactions.swap_remove(i);
                self.outcomes.push_back(BindingOutcome {
                    id: t.id,
                    server: t.server,
                    change: t.change,
                    result: Err(BindingFailure::Timeout),
                });
            }
        }
    }

    /// Feeds a received datagram; a matched response completes its transaction.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), DatagramError> {
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e.into());
            }
        };
        if !matches!(msg.class, Class::Success | Class::Error) || msg.method != BINDING {
            self.stats.not_response += 1;
            return Err(DatagramError::NotAResponse);
        }
        let Some(i) = self
            .transactions
            .iter()
            .position(|t| t.id == msg.transaction_id)
        else {
            self.stats.unmatched += 1;
            return Err(DatagramError::UnknownTransaction);
        };
        let t = self.transactions.swap_remove(i);
        let result = if msg.class == Class::Error {
            let (code, reason) = msg.error_code().map_or((None, ""), |(c, r)| (Some(c), r));
            Err(BindingFailure::ErrorResponse {
                code,
                reason: reason.to_owned(),
            })
        } else if !msg.unknown_required().is_empty() {
            Err(BindingFailure::UnknownRequired(msg.unknown_required()))
        } else if let Some(mapped) = msg.mapped_address() {
            Ok(BindingResponse {
                mapped,
                from,
                other_address: msg.other_address(),
                response_origin: msg.response_origin(),
                rtt: now.saturating_duration_since(t.last_sent),
                retransmitted: t.sends > 1,
            })
        } else {
            Err(BindingFailure::NoMappedAddress)
        };
        self.outcomes.push_back(BindingOutcome {
            id: t.id,
            server: t.server,
            change: t.change,
            result,
        });
        Ok(())
    }

    /// The next finished transaction.
    pub fn poll_outcome(&mut self) -> Option<BindingOutcome> {
        self.outcomes.pop_front()
    }

    /// Transactions still in flight.
    pub fn in_flight(&self) -> usize {
        self.transactions.len()
    }

    /// What was dropped so far.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }
}
