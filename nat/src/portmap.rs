//! A sans-IO port-mapping client shared by NAT-PMP and PCP: request a UDP
//! mapping, renew it at half its granted lifetime, delete it on stop, with
//! RFC 6886 / RFC 6887 retransmission (250 ms, doubled per attempt).

use std::net::IpAddr;
use std::time::{Duration, Instant};

/// First retransmission interval of both protocols.
pub const INITIAL_INTERVAL: Duration = Duration::from_millis(250);

/// A gateway's answer to a mapping request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapReply {
    /// The mapping exists (lifetime 0: it was deleted).
    Granted {
        /// Our local port it maps to.
        internal_port: u16,
        /// The external port.
        external_port: u16,
        /// Granted lifetime in seconds.
        lifetime: u32,
        /// The external address, when the protocol's reply names it (PCP).
        external_ip: Option<IpAddr>,
    },
    /// Refused with the protocol's result code.
    Refused(u16),
}

/// The wire side of a mapping protocol.
pub trait MappingProtocol {
    /// The protocol's decode error.
    type Error;
    /// A UDP mapping request (lifetime 0 deletes).
    fn encode_map(
        &self,
        internal_port: u16,
        suggested_external_port: u16,
        lifetime: u32,
    ) -> Vec<u8>;
    /// A gateway datagram: a mapping reply, something else (None), or malformed.
    fn decode_map(&self, data: &[u8]) -> Result<Option<MapReply>, Self::Error>;
}

/// What a [`MappingClient`] is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingState {
    /// Asking for the mapping.
    Requesting,
    /// Mapped; renewed at half the granted lifetime.
    Mapped {
        /// The external port the gateway granted.
        external_port: u16,
        /// Granted lifetime in seconds.
        lifetime: u32,
    },
    /// Deleting the mapping (after `stop`).
    Deleting,
    /// Deleted, or the delete went unanswered: nothing more to do.
    Stopped,
    /// The gateway refused (its result code), or never answered (None).
    Failed(Option<u16>),
}

/// A sans-IO UDP mapping through a NAT-PMP or PCP gateway.
#[derive(Debug)]
pub struct MappingClient<P> {
    protocol: P,
    internal_port: u16,
    lifetime: u32,
    max_attempts: u32,
    state: MappingState,
    attempts: u32,
    pending: bool,
    deadline: Option<Instant>,
    renew_at: Option<Instant>,
    external_ip: Option<IpAddr>,
}

impl<P: MappingProtocol> MappingClient<P> {
    /// Starts mapping UDP `internal_port` for `lifetime` seconds (RFC 6886 suggests 7200).
    pub fn new(protocol: P, internal_port: u16, lifetime: u32, max_attempts: u32) -> Self {
        MappingClient {
            protocol,
            internal_port,
            lifetime: lifetime.max(1),
            max_attempts: max_attempts.max(1),
            state: MappingState::Requesting,
            attempts: 0,
            pending: true,
            deadline: None,
            renew_at: None,
            external_ip: None,
        }
    }

    /// The external address the last grant named (PCP; NAT-PMP asks it separately).
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.external_ip
    }

    /// The current state.
    pub fn state(&self) -> MappingState {
        self.state
    }

    /// The request to send now, if one is due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        if !self.pending {
            return None;
        }
        self.pending = false;
        self.deadline = Some(now + INITIAL_INTERVAL * (1u32 << self.attempts.min(16)));
        self.attempts += 1;
        let (suggested, lifetime) = match self.state {
            MappingState::Mapped { external_port, .. } => (external_port, self.lifetime),
            MappingState::Deleting => (0, 0),
            _ => (self.internal_port, self.lifetime),
        };
        Some(
            self.protocol
                .encode_map(self.internal_port, suggested, lifetime),
        )
    }

    /// When `handle_timeout` is next due (None while a request waits in `poll_transmit`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            MappingState::Stopped | MappingState::Failed(_) => None,
            _ if self.pending => None,
            _ => [self.deadline, self.renew_at].into_iter().flatten().min(),
        }
    }

    /// Retransmits, renews at half-life, and gives up after `max_attempts`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.renew_at.is_some_and(|r| r <= now) {
            self.renew_at = None;
            self.attempts = 0;
            self.pending = true;
            return;
        }
        if self.pending || self.deadline.is_none_or(|d| d > now) {
            return;
        }
        self.deadline = None;
        if self.attempts < self.max_attempts {
            self.pending = true;
            return;
        }
        self.state = match self.state {
            MappingState::Deleting => MappingState::Stopped,
            // A request or renewal that goes unanswered: the mapping may be gone.
            _ => MappingState::Failed(None),
        };
    }

    /// Feeds a datagram from the gateway.
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) -> Result<(), P::Error> {
        let reply = self.protocol.decode_map(data)?;
        if matches!(self.state, MappingState::Stopped | MappingState::Failed(_)) {
            return Ok(());
        }
        match reply {
            Some(MapReply::Granted {
                internal_port,
                external_port,
                lifetime,
                external_ip,
            }) if internal_port == self.internal_port => {
                if external_ip.is_some() {
                    self.external_ip = external_ip;
                }
                self.deadline = None;
                self.pending = false;
                if self.state == MappingState::Deleting || lifetime == 0 {
                    self.state = MappingState::Stopped;
                    self.renew_at = None;
                } else {
                    self.state = MappingState::Mapped {
                        external_port,
                        lifetime,
                    };
                    self.renew_at = Some(now + Duration::from_secs(u64::from(lifetime)) / 2);
                }
            }
            Some(MapReply::Refused(code)) => {
                self.deadline = None;
                self.pending = false;
                self.renew_at = None;
                self.state = if self.state == MappingState::Deleting {
                    MappingState::Stopped
                } else {
                    MappingState::Failed(Some(code))
                };
            }
            _ => {}
        }
        Ok(())
    }

    /// Asks again now, with fresh attempts (the gateway announced a restart
    /// or a new address): a mapped client renews, a requesting one resends;
    /// a no-op otherwise.
    pub fn ask_now(&mut self) {
        if matches!(
            self.state,
            MappingState::Mapped { .. } | MappingState::Requesting
        ) {
            self.renew_at = None;
            self.deadline = None;
            self.attempts = 0;
            self.pending = true;
        }
    }

    /// Deletes the mapping (lifetime 0); a no-op unless mapped or requesting.
    pub fn stop(&mut self) {
        if matches!(
            self.state,
            MappingState::Mapped { .. } | MappingState::Requesting
        ) {
            self.state = MappingState::Deleting;
            self.attempts = 0;
            self.renew_at = None;
            self.pending = true;
        }
    }
}
