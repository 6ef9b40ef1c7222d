//! The sans-IO NAT classifier: RFC 4787 / RFC 5780 mapping and filtering
//! behaviour from observations, into the Moss class strings.
//!
//! Rules (MOSS.md "NAT and relays"): mapping is judged only from at least two
//! observers at different IPs; `public` needs a real inbound probe from an IP
//! we never sent to (a public reflexive address alone never marks a node
//! open); CGNAT is a mapped address in 100.64.0.0/10 or a port-mapping
//! external address that differs from the observed one, and is never public;
//! a changed observed or local address resets the profile.

use std::net::{IpAddr, SocketAddr};

/// Observations kept at most (older ones are dropped first).
pub const MAX_OBSERVATIONS: usize = 64;
/// Distinct destination IPs remembered; past this, inbound probes are refused.
pub const MAX_SENT_TO: usize = 256;

/// The NAT class of a node, as reported everywhere in Moss (one type for
/// the classifier, the node and telemetry).
pub use moss_telemetry::NatType;

/// RFC 4787 mapping behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// Fewer than two observers at distinct IPs, or contradictory evidence.
    Unknown,
    /// Mapped address equals the local address: no NAT.
    NoNat,
    /// The same mapped address towards every observer.
    EndpointIndependent,
    /// Different mapped addresses towards different observers.
    EndpointDependent,
}

/// RFC 4787 filtering behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtering {
    /// Not tested yet.
    Unknown,
    /// Packets from any address reach an active mapping.
    EndpointIndependent,
    /// Only IPs we sent to reach us (any port).
    AddressDependent,
    /// Only the exact IP and port we sent to reach us.
    AddressAndPortDependent,
}

/// A reflexive address one observer reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    /// Our local socket (its real interface address, not 0.0.0.0).
    pub local: SocketAddr,
    /// The observer we asked (an address we sent to).
    pub observer: SocketAddr,
    /// The address the observer saw us at.
    pub mapped: SocketAddr,
}

/// An RFC 5780 filtering test: a response asked to come from elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilteringTest {
    /// Test II: the server's other IP and other port.
    OtherIpAndPort,
    /// Test III: the server's IP, other port.
    OtherPort,
}

/// What the local gateway said through a port-mapping protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayReport {
    /// Its external address (NAT-PMP external address, PCP, UPnP GetExternalIPAddress).
    External(IpAddr),
    /// It answered but has no public external address (NAT-PMP result 3, as
    /// miniupnpd answers when its WAN address is private or RFC 6598).
    NoPublicAddress,
}

/// What `observe` did with an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserveOutcome {
    /// Recorded.
    Recorded,
    /// The observed or local address changed: the profile was reset; re-run the tests.
    AddressChanged,
    /// Dropped: an unspecified address or port 0.
    Bogus,
}

/// Why an inbound probe does not count as proof of reachability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeRejected {
    /// It came from an IP we sent to, so any NAT would have let it in.
    #[error("probe from an address we sent to")]
    FromContacted,
    /// Too many destinations to remember: no probe can be trusted.
    #[error("destination table full")]
    SentToOverflow,
}

/// The classifier's conclusion with its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The class.
    pub class: NatType,
    /// Mapping behaviour.
    pub mapping: Mapping,
    /// Filtering behaviour.
    pub filtering: Filtering,
    /// Whether an unsolicited inbound probe reached us.
    pub reachable: bool,
}

/// Accumulates evidence and classifies (sans-IO: the driver feeds it).
///
/// The verdict is computed when evidence changes (an observation, a
/// filtering result, a confirmed probe, a gateway report), not when it is
/// read: the node reads it several times per tick, and judging the mapping
/// compares every pair of the stored observations.
#[derive(Debug)]
pub struct Classifier {
    observations: Vec<Observation>,
    sent_to: Vec<IpAddr>,
    sent_overflow: bool,
    other_ip_and_port: Option<bool>,
    other_port: Option<bool>,
    probe_confirmed: bool,
    mapping_external: Option<GatewayReport>,
    /// The verdict of the evidence above, refreshed by every change to it.
    cached: Verdict,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier {
            observations: Vec::new(),
            sent_to: Vec::new(),
            sent_overflow: false,
            other_ip_and_port: None,
            other_port: None,
            probe_confirmed: false,
            mapping_external: None,
            cached: Verdict {
                class: NatType::Unknown,
                mapping: Mapping::Unknown,
                filtering: Filtering::Unknown,
                reachable: false,
            },
        }
    }
}

/// True for RFC 6598 shared address space, 100.64.0.0/10.
pub fn is_shared_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            o[0] == 100 && (o[1] & 0xC0) == 64
        }
        IpAddr::V6(_) => false,
    }
}

impl Classifier {
    /// An empty classifier (class `unknown`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that we sent something to `ip` (every destination counts).
    pub fn note_sent(&mut self, ip: IpAddr) {
        if self.sent_to.contains(&ip) {
            return;
        }
        if self.sent_to.len() >= MAX_SENT_TO {
            self.sent_overflow = true;
        } else {
            self.sent_to.push(ip);
        }
    }

    /// Records one observer's view of our address.
    pub fn observe(&mut self, obs: Observation) -> ObserveOutcome {
        if obs.mapped.ip().is_unspecified()
            || obs.mapped.port() == 0
            || obs.observer.ip().is_unspecified()
        {
            return ObserveOutcome::Bogus;
        }
        self.note_sent(obs.observer.ip());
        // The same observer now sees another IP, or our local IP moved: the
        // network changed (roaming, DHCP). A new observer that disagrees is
        // only evidence (endpoint-dependent mapping), not a reset.
        let moved = self.observations.iter().any(|o| {
            o.local.ip() != obs.local.ip()
                || (o.observer == obs.observer && o.mapped.ip() != obs.mapped.ip())
        });
        let outcome = if moved {
            let sent = std::mem::take(&mut self.sent_to);
            *self = Classifier {
                sent_to: sent,
                sent_overflow: self.sent_overflow,
                ..Classifier::default()
            };
            ObserveOutcome::AddressChanged
        } else {
            ObserveOutcome::Recorded
        };
        if self.observations.len() >= MAX_OBSERVATIONS {
            self.observations.remove(0);
        }
        self.observations.push(obs);
        self.refresh();
        outcome
    }

    /// Records an RFC 5780 filtering test result (a later success wins over a loss).
    pub fn filtering_result(&mut self, test: FilteringTest, reached: bool) {
        let slot = match test {
            FilteringTest::OtherIpAndPort => &mut self.other_ip_and_port,
            FilteringTest::OtherPort => &mut self.other_port,
        };
        *slot = Some(slot.unwrap_or(false) || reached);
        self.refresh();
    }

    /// Records an inbound probe we asked a third party for, arriving from `from`.
    pub fn inbound_probe(&mut self, from: SocketAddr) -> Result<(), ProbeRejected> {
        if self.sent_overflow {
            return Err(ProbeRejected::SentToOverflow);
        }
        if self.sent_to.contains(&from.ip()) {
            return Err(ProbeRejected::FromContacted);
        }
        self.probe_confirmed = true;
        self.refresh();
        Ok(())
    }

    /// Records what a port-mapping protocol (NAT-PMP, PCP, UPnP) said about the gateway.
    pub fn port_mapping(&mut self, report: GatewayReport) {
        self.mapping_external = Some(report);
        self.refresh();
    }

    /// Recomputes the cached verdict from the evidence.
    fn refresh(&mut self) {
        self.cached = self.compute();
    }

    /// Mapping behaviour from the observations.
    pub fn mapping(&self) -> Mapping {
        self.cached.mapping
    }

    /// Judges the mapping: compares every pair of stored observations made
    /// from the same local address towards observers at different IPs.
    /// A pair where one observer saw our local address itself and the
    /// other saw another is no evidence of a NAT's mapping (no NAT makes
    /// an untranslated mapping): it is a report about another socket (a
    /// port from before a restart, an observer on our own host) or a lie,
    /// and is not compared.
    fn compute_mapping(&self) -> Mapping {
        let mut judged = false;
        let mut all_local = true;
        for (i, a) in self.observations.iter().enumerate() {
            for b in &self.observations[i + 1..] {
                if a.local != b.local
                    || a.observer.ip() == b.observer.ip()
                    || (a.mapped == a.local) != (b.mapped == b.local)
                {
                    continue;
                }
                if a.mapped != b.mapped {
                    return Mapping::EndpointDependent;
                }
                judged = true;
                all_local &= a.mapped == a.local;
            }
        }
        match (judged, all_local) {
            (false, _) => Mapping::Unknown,
            (true, true) => Mapping::NoNat,
            (true, false) => Mapping::EndpointIndependent,
        }
    }

    /// Filtering behaviour from the tests and the inbound probe.
    pub fn filtering(&self) -> Filtering {
        match (
            self.probe_confirmed,
            self.other_ip_and_port,
            self.other_port,
        ) {
            (true, _, _) | (_, Some(true), _) => Filtering::EndpointIndependent,
            (_, _, Some(true)) => Filtering::AddressDependent,
            (_, Some(false), Some(false)) => Filtering::AddressAndPortDependent,
            _ => Filtering::Unknown,
        }
    }

    /// True when the evidence shows a carrier-grade NAT.
    pub fn is_cgnat(&self) -> bool {
        if self
            .observations
            .iter()
            .any(|o| is_shared_address(o.mapped.ip()))
        {
            return true;
        }
        match self.mapping_external {
            Some(GatewayReport::External(ext)) => {
                is_shared_address(ext) || self.observations.iter().any(|o| o.mapped.ip() != ext)
            }
            // The gateway has no public address, yet observers see us at one:
            // another NAT sits beyond it.
            Some(GatewayReport::NoPublicAddress) => !self.observations.is_empty(),
            None => false,
        }
    }

    /// The current conclusion (computed when the evidence last changed).
    pub fn verdict(&self) -> Verdict {
        self.cached
    }

    /// The conclusion from the evidence, computed afresh.
    fn compute(&self) -> Verdict {
        let mapping = self.compute_mapping();
        let filtering = self.filtering();
        let class = if self.is_cgnat() {
            NatType::Cgnat
        } else {
            match (mapping, filtering) {
                (Mapping::Unknown, _) => NatType::Unknown,
                (Mapping::EndpointDependent, _) => NatType::SymmetricNat,
                (Mapping::NoNat, _) if self.probe_confirmed => NatType::Public,
                (Mapping::NoNat, _) => NatType::Unknown,
                (Mapping::EndpointIndependent, Filtering::EndpointIndependent) => NatType::FullCone,
                (Mapping::EndpointIndependent, Filtering::AddressDependent) => {
                    NatType::RestrictedCone
                }
                (Mapping::EndpointIndependent, Filtering::AddressAndPortDependent) => {
                    NatType::PortRestrictedCone
                }
                (Mapping::EndpointIndependent, Filtering::Unknown) => NatType::Unknown,
            }
        };
        Verdict {
            class,
            mapping,
            filtering,
            reachable: self.probe_confirmed,
        }
    }

    /// The current class.
    pub fn class(&self) -> NatType {
        self.verdict().class
    }
}

/// A prediction of the next external ports of a sequentially allocating NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortPrediction {
    /// The last port seen.
    pub last: u16,
    /// The step between consecutive allocations.
    pub step: u16,
}

/// Largest allocation step still called "sequential".
pub const MAX_SEQUENTIAL_STEP: u16 = 8;
/// Fewest mapped ports the detector needs.
pub const MIN_SEQUENTIAL_SAMPLES: usize = 3;

impl PortPrediction {
    /// Detects sequential allocation from mapped ports in the order the
    /// mappings were created (each from a new 5-tuple): every step the same,
    /// positive and at most `MAX_SEQUENTIAL_STEP`.
    pub fn detect(ports: &[u16]) -> Option<Self> {
        if ports.len() < MIN_SEQUENTIAL_SAMPLES {
            return None;
        }
        let step = ports[1].wrapping_sub(ports[0]);
        if step == 0 || step > MAX_SEQUENTIAL_STEP {
            return None;
        }
        if ports.windows(2).any(|w| w[1].wrapping_sub(w[0]) != step) {
            return None;
        }
        ports.last().map(|&last| PortPrediction { last, step })
    }

    /// The `k`-th next port (k = 1 is the next allocation).
    pub fn next(&self, k: u16) -> u16 {
        self.last.wrapping_add(self.step.wrapping_mul(k))
    }

    /// Candidate ports: the next allocation ± `spread`, nearest first, never 0.
    pub fn candidates(&self, spread: u16) -> Vec<u16> {
        let next = self.next(1);
        let mut out = vec![next];
        for d in 1..=spread {
            out.push(next.wrapping_add(d));
            out.push(next.wrapping_sub(d));
        }
        out.retain(|&p| p != 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::Ipv4Addr;

    /// A small deterministic generator (xorshift64*), so the test needs no crate.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
        }
    }

    fn v4(a: u8, b: u8, c: u8, d: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a, b, c, d)), port)
    }

    /// One random piece of evidence: mostly observations (from a few local
    /// addresses, towards a few observers, seen at a few mapped addresses,
    /// some in 100.64.0.0/10 and some equal to the local one), sometimes a
    /// filtering result, an inbound probe or a gateway report. A `stable`
    /// network keeps its local and mapped IPs, so the window of stored
    /// observations fills and evicts instead of being reset.
    fn step(c: &mut Classifier, g: &mut Gen, stable: bool) {
        let locals = [
            v4(10, 0, 0, 2, 4000),
            v4(10, 0, 0, 3, 4000),
            v4(198, 51, 100, 7, 4000),
        ];
        match g.next(20) {
            0 => {
                let test = if g.next(2) == 0 {
                    FilteringTest::OtherIpAndPort
                } else {
                    FilteringTest::OtherPort
                };
                c.filtering_result(test, g.next(3) == 0);
            }
            1 => {
                let _ = c.inbound_probe(v4(203, 0, 113, g.next(8) as u8, 9000));
            }
            2 => c.port_mapping(match g.next(3) {
                0 => GatewayReport::NoPublicAddress,
                1 => GatewayReport::External(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
                _ => GatewayReport::External(IpAddr::V4(Ipv4Addr::new(100, 64, 0, 9))),
            }),
            3 => c.note_sent(IpAddr::V4(Ipv4Addr::new(203, 0, 113, g.next(8) as u8))),
            _ => {
                // Mostly one local address, so the profile is rarely reset.
                let local = locals[if g.next(16) == 0 {
                    g.next(3) as usize
                } else {
                    0
                }];
                let observer = v4(203, 0, 113, g.next(8) as u8, 5000 + g.next(2) as u16);
                let mapped = match g.next(10) {
                    _ if stable => v4(192, 0, 2, 1, 6000 + (g.next(8) / 6) as u16),
                    0 => local,
                    1 => v4(100, 64, 3, 3, 6000),
                    2 | 3 => v4(192, 0, 2, 1, 6000 + g.next(4) as u16),
                    _ => v4(192, 0, 2, 1, 6000),
                };
                let _ = c.observe(Observation {
                    local,
                    observer,
                    mapped,
                });
            }
        }
    }

    #[test]
    fn the_cached_verdict_equals_a_fresh_computation_after_every_change() {
        let mut classes = HashSet::new();
        let mut evictions = 0;
        for seed in 1..=40u64 {
            let mut g = Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut c = Classifier::new();
            assert_eq!(c.verdict(), c.compute());
            for _ in 0..400 {
                let full = c.observations.len() == MAX_OBSERVATIONS;
                step(&mut c, &mut g, seed % 2 == 0);
                evictions += usize::from(full && c.observations.len() == MAX_OBSERVATIONS);
                assert_eq!(c.verdict(), c.compute(), "seed {seed}");
                assert_eq!(c.mapping(), c.compute_mapping(), "seed {seed}");
                assert_eq!(c.class(), c.compute().class, "seed {seed}");
                classes.insert(c.class());
            }
        }
        // The sequences went through the interesting states, not one class.
        for class in [
            NatType::Unknown,
            NatType::SymmetricNat,
            NatType::Cgnat,
            NatType::FullCone,
        ] {
            assert!(classes.contains(&class), "never reached {class:?}");
        }
        assert!(evictions > 0, "the observation window never filled");
    }
}
