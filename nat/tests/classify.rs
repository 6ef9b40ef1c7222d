//! The NAT classifier: every class from its evidence, the reachability rule,
//! hostile observers, CGNAT, re-profiling and the sequential-port detector.

use std::net::{IpAddr, SocketAddr};

use moss_nat::classify::{
    Classifier, Filtering, FilteringTest, GatewayReport, Mapping, NatType, Observation,
    ObserveOutcome, PortPrediction, ProbeRejected, MAX_SENT_TO,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const LOCAL: &str = "192.168.1.2:5000";
const OBS_A: &str = "203.0.113.10:3478";
const OBS_B: &str = "198.51.100.10:3478";

/// Two observers at different IPs see `a` and `b` from `local`.
fn observed(local: &str, a: &str, b: &str) -> Classifier {
    let mut c = Classifier::new();
    assert_eq!(
        c.observe(Observation {
            local: sa(local),
            observer: sa(OBS_A),
            mapped: sa(a)
        }),
        ObserveOutcome::Recorded
    );
    assert_eq!(
        c.observe(Observation {
            local: sa(local),
            observer: sa(OBS_B),
            mapped: sa(b)
        }),
        ObserveOutcome::Recorded
    );
    c
}

fn cone(other_ip_port: bool, other_port: bool) -> Classifier {
    let mut c = observed(LOCAL, "203.0.113.101:5000", "203.0.113.101:5000");
    c.filtering_result(FilteringTest::OtherIpAndPort, other_ip_port);
    c.filtering_result(FilteringTest::OtherPort, other_port);
    c
}

#[test]
fn class_strings_round_trip() {
    for c in NatType::ALL {
        assert_eq!(c.as_str().parse::<NatType>(), Ok(c));
    }
    assert!("symmetric".parse::<NatType>().is_err());
}

#[test]
fn nothing_known_is_unknown() {
    assert_eq!(Classifier::new().class(), NatType::Unknown);
}

#[test]
fn cone_kinds_follow_filtering() {
    assert_eq!(cone(true, true).class(), NatType::FullCone);
    assert_eq!(cone(false, true).class(), NatType::RestrictedCone);
    assert_eq!(cone(false, false).class(), NatType::PortRestrictedCone);
    let half = {
        let mut c = observed(LOCAL, "203.0.113.101:5000", "203.0.113.101:5000");
        c.filtering_result(FilteringTest::OtherIpAndPort, false);
        c
    };
    assert_eq!(half.verdict().filtering, Filtering::Unknown);
    assert_eq!(half.class(), NatType::Unknown);
}

#[test]
fn a_later_success_beats_an_earlier_loss() {
    let mut c = cone(false, false);
    c.filtering_result(FilteringTest::OtherIpAndPort, true);
    c.filtering_result(FilteringTest::OtherIpAndPort, false);
    assert_eq!(c.class(), NatType::FullCone);
}

#[test]
fn different_mapped_ports_are_symmetric() {
    let c = observed(LOCAL, "203.0.113.104:40000", "203.0.113.104:40001");
    assert_eq!(c.verdict().mapping, Mapping::EndpointDependent);
    assert_eq!(c.class(), NatType::SymmetricNat);
}

#[test]
fn mapping_needs_two_observer_ips() {
    let mut c = Classifier::new();
    c.observe(Observation {
        local: sa(LOCAL),
        observer: sa(OBS_A),
        mapped: sa("203.0.113.101:5000"),
    });
    c.observe(Observation {
        local: sa(LOCAL),
        observer: sa("203.0.113.10:3479"),
        mapped: sa("203.0.113.101:5000"),
    });
    assert_eq!(c.mapping(), Mapping::Unknown);
    // Observations from different local sockets are never compared.
    c.observe(Observation {
        local: sa("192.168.1.2:6000"),
        observer: sa(OBS_B),
        mapped: sa("203.0.113.101:6000"),
    });
    assert_eq!(c.mapping(), Mapping::Unknown);
}

#[test]
fn public_needs_an_inbound_probe_from_a_fresh_ip() {
    let mut c = observed(
        "203.0.113.106:5000",
        "203.0.113.106:5000",
        "203.0.113.106:5000",
    );
    c.filtering_result(FilteringTest::OtherIpAndPort, true);
    assert_eq!(c.verdict().mapping, Mapping::NoNat);
    assert_eq!(
        c.class(),
        NatType::Unknown,
        "a public reflexive address alone is not public"
    );
    assert_eq!(
        c.inbound_probe(sa("203.0.113.10:9999")),
        Err(ProbeRejected::FromContacted)
    );
    assert_eq!(c.class(), NatType::Unknown);
    c.note_sent("198.51.100.20".parse().unwrap());
    assert_eq!(
        c.inbound_probe(sa("198.51.100.20:4001")),
        Err(ProbeRejected::FromContacted)
    );
    c.inbound_probe(sa("192.0.2.77:4001")).unwrap();
    let v = c.verdict();
    assert_eq!((v.class, v.reachable), (NatType::Public, true));
}

#[test]
fn an_inbound_probe_behind_a_nat_means_full_cone_not_public() {
    let mut c = observed(LOCAL, "203.0.113.101:5000", "203.0.113.101:5000");
    c.inbound_probe(sa("192.0.2.77:4001")).unwrap();
    assert_eq!(c.class(), NatType::FullCone);
}

#[test]
fn a_hostile_observer_claiming_our_local_address_cannot_make_us_public() {
    // The honest observer sees the NAT; the hostile one echoes our local address.
    let mut c = observed(LOCAL, "203.0.113.101:5000", LOCAL);
    // It also fakes the filtering tests and has an accomplice probe us.
    c.filtering_result(FilteringTest::OtherIpAndPort, true);
    let _ = c.inbound_probe(sa("192.0.2.66:1"));
    assert_ne!(c.class(), NatType::Public);
    // The two reports contradict each other: no verdict on the mapping.
    assert_eq!(c.verdict().mapping, Mapping::Unknown);
    assert_eq!(c.class(), NatType::Unknown);
}

/// A public node at `me` seen there by two observers, with an inbound
/// probe: `public`.
fn public_at(me: &str) -> Classifier {
    let mut c = observed(me, me, me);
    c.inbound_probe(sa("192.0.2.77:4001")).unwrap();
    assert_eq!(c.class(), NatType::Public);
    c
}

#[test]
fn a_stray_report_of_another_port_does_not_make_a_public_node_symmetric() {
    // A restarted supernode: a peer still holding the old session reports
    // the old port, or an observer on the same host sees us at loopback.
    // The driver gives an observation it cannot place the socket's own
    // address as its local one, so these come with `local` = our address.
    const ME: &str = "203.0.113.10:4100";
    for stray in ["203.0.113.10:4000", "127.0.0.1:4100", "198.51.100.10:4100"] {
        let mut c = public_at(ME);
        c.observe(Observation {
            local: sa(ME),
            observer: sa("198.51.100.30:4000"),
            mapped: sa(stray),
        });
        assert_eq!(c.verdict().mapping, Mapping::NoNat, "stray {stray}");
        assert_eq!(c.class(), NatType::Public, "stray {stray}");
    }
}

#[test]
fn a_lan_peer_seeing_our_private_address_does_not_make_a_cone_symmetric() {
    // Behind a full cone, a peer on our LAN sees our private address and
    // two outside observers see the NAT's.
    let mut c = cone(true, true);
    c.observe(Observation {
        local: sa(LOCAL),
        observer: sa("192.168.1.7:4000"),
        mapped: sa(LOCAL),
    });
    assert_eq!(c.verdict().mapping, Mapping::EndpointIndependent);
    assert_eq!(c.class(), NatType::FullCone);
}

#[test]
fn a_hostile_observer_probing_from_its_own_ip_is_rejected() {
    let mut c = observed(
        "203.0.113.106:5000",
        "203.0.113.106:5000",
        "203.0.113.106:5000",
    );
    assert_eq!(
        c.inbound_probe(sa("198.51.100.10:1234")),
        Err(ProbeRejected::FromContacted)
    );
    assert_eq!(c.class(), NatType::Unknown);
}

#[test]
fn too_many_destinations_make_every_probe_untrusted() {
    let mut c = observed(
        "203.0.113.106:5000",
        "203.0.113.106:5000",
        "203.0.113.106:5000",
    );
    for i in 0..=MAX_SENT_TO as u32 {
        c.note_sent(IpAddr::from((0x0A00_0000u32 + i).to_be_bytes()));
    }
    assert_eq!(
        c.inbound_probe(sa("192.0.2.77:4001")),
        Err(ProbeRejected::SentToOverflow)
    );
    assert_eq!(c.class(), NatType::Unknown);
}

#[test]
fn shared_address_space_is_cgnat_and_never_public() {
    let mut c = observed("100.64.5.9:5000", "100.64.5.9:5000", "100.64.5.9:5000");
    c.inbound_probe(sa("192.0.2.77:4001")).unwrap();
    assert_eq!(c.class(), NatType::Cgnat);
    let c = observed(LOCAL, "100.72.0.1:5000", "100.72.0.1:5000");
    assert_eq!(c.class(), NatType::Cgnat);
    assert_eq!(
        observed(LOCAL, "100.128.0.1:5000", "100.128.0.1:5000")
            .verdict()
            .mapping,
        Mapping::EndpointIndependent
    );
}

#[test]
fn gateway_reports_decide_cgnat() {
    let mut c = cone(false, false);
    c.port_mapping(GatewayReport::External("203.0.113.101".parse().unwrap()));
    assert_eq!(
        c.class(),
        NatType::PortRestrictedCone,
        "gateway agrees with the observers"
    );
    c.port_mapping(GatewayReport::External("100.64.5.2".parse().unwrap()));
    assert_eq!(c.class(), NatType::Cgnat);
    c.port_mapping(GatewayReport::External("10.0.0.2".parse().unwrap()));
    assert_eq!(c.class(), NatType::Cgnat, "a NAT behind a NAT");
    c.port_mapping(GatewayReport::NoPublicAddress);
    assert_eq!(c.class(), NatType::Cgnat);
    let mut lonely = Classifier::new();
    lonely.port_mapping(GatewayReport::NoPublicAddress);
    assert_eq!(
        lonely.class(),
        NatType::Unknown,
        "no observation yet: nothing to compare"
    );
}

#[test]
fn a_changed_address_resets_the_profile() {
    let mut c = cone(true, true);
    assert_eq!(c.class(), NatType::FullCone);
    let moved = Observation {
        local: sa(LOCAL),
        observer: sa(OBS_A),
        mapped: sa("192.0.2.50:7000"),
    };
    assert_eq!(c.observe(moved), ObserveOutcome::AddressChanged);
    assert_eq!(c.class(), NatType::Unknown);
    assert_eq!(c.verdict().filtering, Filtering::Unknown);
    // A new local address (roaming) resets as well.
    let roamed = Observation {
        local: sa("10.1.1.5:5000"),
        observer: sa(OBS_B),
        mapped: sa("192.0.2.50:7000"),
    };
    assert_eq!(c.observe(roamed), ObserveOutcome::AddressChanged);
    // Destinations we sent to stay remembered across the reset.
    assert_eq!(
        c.inbound_probe(sa("203.0.113.10:1")),
        Err(ProbeRejected::FromContacted)
    );
}

#[test]
fn bogus_observations_are_dropped() {
    let mut c = Classifier::new();
    for mapped in ["0.0.0.0:5000", "203.0.113.1:0"] {
        let o = Observation {
            local: sa(LOCAL),
            observer: sa(OBS_A),
            mapped: sa(mapped),
        };
        assert_eq!(c.observe(o), ObserveOutcome::Bogus);
    }
    let o = Observation {
        local: sa(LOCAL),
        observer: sa("0.0.0.0:1"),
        mapped: sa("203.0.113.1:9"),
    };
    assert_eq!(c.observe(o), ObserveOutcome::Bogus);
}

#[test]
fn sequential_allocation_is_detected_and_predicted() {
    let p = PortPrediction::detect(&[40000, 40001, 40002]).unwrap();
    assert_eq!((p.last, p.step, p.next(1)), (40002, 1, 40003));
    let cands = p.candidates(5);
    assert_eq!(cands.len(), 11);
    assert_eq!(cands[0], 40003);
    assert!(cands.contains(&39998) && cands.contains(&40008));
    let p = PortPrediction::detect(&[1000, 1002, 1004, 1006]).unwrap();
    assert_eq!(p.next(2), 1010);
    // wrap-around, and 0 never proposed
    let p = PortPrediction::detect(&[65533, 65534, 65535]).unwrap();
    assert!(!p.candidates(5).contains(&0));
}

#[test]
fn random_or_static_allocation_is_not_sequential() {
    assert_eq!(
        PortPrediction::detect(&[40000, 40001]),
        None,
        "too few samples"
    );
    assert_eq!(
        PortPrediction::detect(&[5000, 5000, 5000]),
        None,
        "port preserving"
    );
    assert_eq!(
        PortPrediction::detect(&[40000, 40001, 40003]),
        None,
        "uneven"
    );
    assert_eq!(
        PortPrediction::detect(&[37913, 38544, 51022]),
        None,
        "random"
    );
    assert_eq!(
        PortPrediction::detect(&[40010, 40005, 40000]),
        None,
        "descending"
    );
}
