//! Sans-IO hole-punch planning and pacing.
//!
//! Given both sides' observed endpoints and NAT classes, [`strategy`] picks
//! how to punch and [`Puncher`] emits the probes: `hole_punch_attempts`
//! rounds, started so both ends fire together (DCUtR-style: the initiator
//! sends the go signal through the coordinator and fires after half the
//! round trip it measured, the responder fires on receipt), port prediction
//! ±5 towards a sequentially allocating symmetric NAT, and a bounded
//! birthday spray between a symmetric NAT and an address-and-port filtering
//! cone. Abuse limits: every probe goes to the IP the peer itself was
//! observed at, totals per punch are capped, and a shared [`ProbeLimiter`]
//! caps probes per destination IP per second.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::classify::{NatType, PortPrediction};

/// Largest spray (probes or local sockets) a configuration may ask for.
pub const MAX_SPRAY: u16 = 4096;
/// Probes per destination IP per second a node allows by default (a full
/// spray of 1024 probes then takes about half a second).
pub const DEFAULT_PROBES_PER_IP_PER_SEC: u32 = 2000;
/// Destination IPs a [`ProbeLimiter`] tracks; new ones past this are refused.
pub const MAX_LIMITED_IPS: usize = 1024;

/// Punch settings (MOSS.md `nat` block plus the spray bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PunchConfig {
    /// Rounds of probes (`hole_punch_attempts`, 3).
    pub attempts: u32,
    /// Time between rounds.
    pub round_interval: Duration,
    /// How much later a symmetric side fires than a cone peer punching
    /// directly, so that the cone's outbound opens its filter before the
    /// symmetric side's new mapping knocks (both firing at once loses the
    /// first round to that race).
    pub symmetric_stagger: Duration,
    /// Try predicted ports of a sequential symmetric NAT (`port_prediction_enabled`).
    pub port_prediction: bool,
    /// Ports either side of the prediction (±5).
    pub prediction_spread: u16,
    /// Local sockets a symmetric side opens towards a port-restricted cone.
    pub spray_sockets: u16,
    /// Random ports a cone side probes on a symmetric peer, over all rounds.
    pub spray_probes: u16,
}

impl Default for PunchConfig {
    fn default() -> Self {
        PunchConfig {
            attempts: 3,
            round_interval: Duration::from_millis(400),
            symmetric_stagger: Duration::from_millis(25),
            port_prediction: true,
            prediction_spread: 5,
            spray_sockets: 256,
            spray_probes: 1024,
        }
    }
}

/// Why a punch cannot be planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Zero attempts, or a spray above `MAX_SPRAY`.
    #[error("invalid punch configuration")]
    BadConfig,
    /// The peer's observed endpoint is unspecified or has port 0.
    #[error("peer endpoint is not a usable address")]
    BadEndpoint,
    /// Both sides are symmetric: no plain-UDP punch can work; use a relay.
    #[error("both sides behind endpoint-dependent mapping: relay instead")]
    Unpunchable,
}

/// Why an arriving probe does not complete the punch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// It came from an IP other than the peer's observed one.
    #[error("probe from an address the peer was not observed at")]
    WrongAddress,
    /// The socket index is not one of this punch's sockets.
    #[error("no such local socket")]
    NoSuchSocket,
}

/// One side of a punch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    /// The endpoint the coordinator observed this side at.
    pub observed: SocketAddr,
    /// Its NAT class.
    pub class: NatType,
    /// Its port-allocation prediction, when its NAT allocates sequentially.
    pub prediction: Option<PortPrediction>,
}

/// How we punch towards the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Both send to each other's observed endpoint (and learn peer-reflexive ones).
    Direct,
    /// Also probe the peer's predicted ports (sequential symmetric peer).
    Predict,
    /// We are a cone facing a symmetric peer behind APDF: we probe random ports on its IP.
    SprayPorts,
    /// We are symmetric facing an APDF cone: we open many sockets towards it.
    SpraySockets,
}

/// Endpoint-dependent mapping.
fn symmetric(c: NatType) -> bool {
    c == NatType::SymmetricNat
}

/// Address-and-port-dependent filtering with endpoint-independent mapping.
fn port_filtered(c: NatType) -> bool {
    matches!(c, NatType::PortRestrictedCone | NatType::Cgnat)
}

/// Picks how `me` punches towards `peer`.
pub fn strategy(cfg: &PunchConfig, me: &Side, peer: &Side) -> Result<Strategy, PlanError> {
    Ok(match (symmetric(me.class), symmetric(peer.class)) {
        (true, true) => return Err(PlanError::Unpunchable),
        (false, true) if cfg.port_prediction && peer.prediction.is_some() => Strategy::Predict,
        (false, true) if port_filtered(me.class) => Strategy::SprayPorts,
        (true, false) if port_filtered(peer.class) && peer_unpredictable(cfg, me) => {
            Strategy::SpraySockets
        }
        _ => Strategy::Direct,
    })
}

/// Whether the peer will spray rather than predict our ports.
fn peer_unpredictable(cfg: &PunchConfig, me: &Side) -> bool {
    !(cfg.port_prediction && me.prediction.is_some())
}

/// Which end of the coordination a side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends the go signal through the coordinator, then waits half a round trip.
    Initiator,
    /// Fires as soon as the go signal arrives.
    Responder,
}

/// How long after sending (initiator) or receiving (responder) the go signal
/// to fire: the signal takes about half of each side's round trip to the
/// coordinator to arrive.
pub fn fire_delay(role: Role, my_rtt: Duration, peer_rtt: Duration) -> Duration {
    match role {
        Role::Initiator => (my_rtt + peer_rtt) / 2,
        Role::Responder => Duration::ZERO,
    }
}

/// A probe the driver must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PunchProbe {
    /// Index of the local socket to send from (0..`local_sockets()`).
    pub socket: usize,
    /// Destination: always on the peer's observed IP.
    pub destination: SocketAddr,
}

/// The end of a punch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunchOutcome {
    /// A probe from the peer arrived: this socket and remote form the path.
    Punched {
        /// Our socket index.
        socket: usize,
        /// The peer's endpoint on the punched path.
        remote: SocketAddr,
    },
    /// Every round went out and nothing came back.
    Failed,
}

/// Per-destination-IP probe budget shared by all punches of a node.
#[derive(Debug)]
pub struct ProbeLimiter {
    per_second: u32,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl ProbeLimiter {
    /// At most `per_second` probes per destination IP per second (burst one second's worth).
    pub fn new(per_second: u32) -> Self {
        ProbeLimiter {
            per_second: per_second.max(1),
            buckets: HashMap::new(),
        }
    }

    /// Takes one probe's budget towards `ip`, or says when to retry.
    pub fn take(&mut self, now: Instant, ip: IpAddr) -> Result<(), Instant> {
        let rate = f64::from(self.per_second);
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_LIMITED_IPS {
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < rate
            });
            if self.buckets.len() >= MAX_LIMITED_IPS {
                return Err(now + Duration::from_secs(1));
            }
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((rate, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(now + Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

/// The sans-IO punch of one pair, from one side.
#[derive(Debug)]
pub struct Puncher {
    strategy: Strategy,
    peer_ip: IpAddr,
    sockets: usize,
    /// (round start, socket, destination), in send order.
    schedule: Vec<(Instant, usize, SocketAddr)>,
    next: usize,
    retry_at: Option<Instant>,
    end: Instant,
    outcome: Option<PunchOutcome>,
}

impl Puncher {
    /// Plans the punch; the first round fires at `fire_at`.
    pub fn new(
        cfg: &PunchConfig,
        me: &Side,
        peer: &Side,
        fire_at: Instant,
        rng: &mut impl rand_core::RngCore,
    ) -> Result<Self, PlanError> {
        if cfg.attempts == 0 || cfg.spray_probes > MAX_SPRAY || cfg.spray_sockets > MAX_SPRAY {
            return Err(PlanError::BadConfig);
        }
        if peer.observed.ip().is_unspecified() || peer.observed.port() == 0 {
            return Err(PlanError::BadEndpoint);
        }
        let strategy = strategy(cfg, me, peer)?;
        let ip = peer.observed.ip();
        let sockets = if strategy == Strategy::SpraySockets {
            usize::from(cfg.spray_sockets.max(1))
        } else {
            1
        };
        let mut extra: Vec<u16> = match (strategy, peer.prediction) {
            (Strategy::Predict, Some(p)) => p.candidates(cfg.prediction_spread),
            (Strategy::SprayPorts, _) => {
                let mut ports = Vec::with_capacity(usize::from(cfg.spray_probes));
                while ports.len() < usize::from(cfg.spray_probes) {
                    let p = 1024 + (rng.next_u32() % (65536 - 1024)) as u16;
                    if p != peer.observed.port() && !ports.contains(&p) {
                        ports.push(p);
                    }
                }
                ports
            }
            _ => Vec::new(),
        };
        extra.retain(|&p| p != peer.observed.port());
        let fire_at = if strategy == Strategy::Direct && symmetric(me.class) {
            fire_at + cfg.symmetric_stagger
        } else {
            fire_at
        };
        let mut schedule = Vec::new();
        let rounds = cfg.attempts as usize;
        for r in 0..rounds {
            let at = fire_at + cfg.round_interval * r as u32;
            for s in 0..sockets {
                schedule.push((at, s, peer.observed));
            }
            // Predictions repeat every round; a spray is spread over the rounds.
            let ports: &[u16] = match strategy {
                Strategy::SprayPorts => {
                    let per = extra.len().div_ceil(rounds);
                    let lo = (r * per).min(extra.len());
                    &extra[lo..((r + 1) * per).min(extra.len())]
                }
                _ => &extra,
            };
            schedule.extend(ports.iter().map(|&p| (at, 0, SocketAddr::new(ip, p))));
        }
        let end = fire_at + cfg.round_interval * cfg.attempts;
        Ok(Puncher {
            strategy,
            peer_ip: ip,
            sockets,
            schedule,
            next: 0,
            retry_at: None,
            end,
            outcome: None,
        })
    }

    /// The chosen strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// How many local sockets the driver must open (1, or the socket spray).
    pub fn local_sockets(&self) -> usize {
        self.sockets
    }

    /// Probes planned in total.
    pub fn planned(&self) -> usize {
        self.schedule.len()
    }

    /// The next probe due now, within the limiter's budget.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        limiter: &mut ProbeLimiter,
    ) -> Option<PunchProbe> {
        if self.outcome.is_some() {
            return None;
        }
        let &(at, socket, destination) = self.schedule.get(self.next)?;
        if at > now {
            return None;
        }
        match limiter.take(now, destination.ip()) {
            Ok(()) => {
                self.next += 1;
                self.retry_at = None;
                Some(PunchProbe {
                    socket,
                    destination,
                })
            }
            Err(retry) => {
                self.retry_at = Some(retry);
                None
            }
        }
    }

    /// When the driver must next call `poll_transmit` / `handle_timeout`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.outcome.is_some() {
            return None;
        }
        // A limited probe waits for its budget, never earlier than its round.
        let next_probe = self.schedule.get(self.next).map(|s| match self.retry_at {
            Some(r) => r.max(s.0),
            None => s.0,
        });
        [next_probe, Some(self.end)].into_iter().flatten().min()
    }

    /// Declares failure once every round is out and the last interval passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.outcome.is_none() && self.next >= self.schedule.len() && now >= self.end {
            self.outcome = Some(PunchOutcome::Failed);
        }
    }

    /// An authenticated probe (or its acknowledgement) from the peer arrived
    /// on `socket` from `from`: the path is open. Probes from any IP but the
    /// peer's observed one are refused, so they cannot redirect us.
    pub fn handle_probe(&mut self, socket: usize, from: SocketAddr) -> Result<(), ProbeError> {
        if socket >= self.sockets {
            return Err(ProbeError::NoSuchSocket);
        }
        if from.ip() != self.peer_ip {
            return Err(ProbeError::WrongAddress);
        }
        if !matches!(self.outcome, Some(PunchOutcome::Punched { .. })) {
            self.outcome = Some(PunchOutcome::Punched {
                socket,
                remote: from,
            });
        }
        Ok(())
    }

    /// The result, once known.
    pub fn outcome(&self) -> Option<PunchOutcome> {
        self.outcome
    }
}
