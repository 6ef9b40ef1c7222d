//! Hole-punch planner: strategy per pair of classes, DCUtR timing, rounds,
//! port prediction, the bounded spray and the abuse limits.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use moss_nat::classify::{NatType, PortPrediction};
use moss_nat::punch::{
    fire_delay, strategy, PlanError, ProbeError, ProbeLimiter, PunchConfig, PunchOutcome, Puncher,
    Role, Side, Strategy,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn side(addr: &str, class: NatType) -> Side {
    Side {
        observed: addr.parse().unwrap(),
        class,
        prediction: None,
    }
}

const ME: &str = "203.0.113.101:40000";
const PEER: &str = "203.0.113.104:50000";

/// Drives a puncher to the end with a generous limiter; returns every probe.
fn drain(p: &mut Puncher, t0: Instant) -> Vec<(usize, SocketAddr, Duration)> {
    let mut lim = ProbeLimiter::new(100_000);
    let mut out = Vec::new();
    let mut now = t0;
    while p.outcome().is_none() {
        while let Some(pr) = p.poll_transmit(now, &mut lim) {
            out.push((pr.socket, pr.destination, now - t0));
        }
        now = p.poll_timeout().unwrap().max(now);
        p.handle_timeout(now);
    }
    out
}

#[test]
fn strategies_follow_the_measured_matrix() {
    use NatType::*;
    let cfg = PunchConfig::default();
    let s = |a, b| strategy(&cfg, &side(ME, a), &side(PEER, b));
    assert_eq!(s(SymmetricNat, SymmetricNat), Err(PlanError::Unpunchable));
    for c in [FullCone, RestrictedCone, Public, Unknown] {
        assert_eq!(s(c, SymmetricNat), Ok(Strategy::Direct));
        assert_eq!(s(SymmetricNat, c), Ok(Strategy::Direct));
    }
    for c in [PortRestrictedCone, Cgnat] {
        assert_eq!(s(c, SymmetricNat), Ok(Strategy::SprayPorts));
        assert_eq!(s(SymmetricNat, c), Ok(Strategy::SpraySockets));
    }
    for a in [FullCone, RestrictedCone, PortRestrictedCone, Cgnat, Public] {
        for b in [FullCone, RestrictedCone, PortRestrictedCone, Cgnat, Public] {
            assert_eq!(s(a, b), Ok(Strategy::Direct));
        }
    }
}

#[test]
fn a_sequential_symmetric_peer_is_predicted_not_sprayed() {
    let cfg = PunchConfig::default();
    let mut peer = side(PEER, NatType::SymmetricNat);
    peer.prediction = PortPrediction::detect(&[50000, 50001, 50002]);
    let me = side(ME, NatType::PortRestrictedCone);
    assert_eq!(strategy(&cfg, &me, &peer), Ok(Strategy::Predict));
    // ...and the symmetric side then does not open a socket spray.
    assert_eq!(strategy(&cfg, &peer, &me), Ok(Strategy::Direct));
    let off = PunchConfig {
        port_prediction: false,
        ..cfg
    };
    assert_eq!(strategy(&off, &me, &peer), Ok(Strategy::SprayPorts));

    let t0 = Instant::now();
    let mut p = Puncher::new(&cfg, &me, &peer, t0, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let probes = drain(&mut p, t0);
    let ports: HashSet<u16> = probes.iter().map(|(_, d, _)| d.port()).collect();
    let want: HashSet<u16> = (49998..=50008).collect();
    assert_eq!(ports, want, "observed port plus the prediction 50003 ± 5");
    assert_eq!(
        probes.len(),
        3 * 11,
        "the observed port is not probed twice"
    );
}

#[test]
fn direct_punch_fires_three_rounds_then_fails() {
    let cfg = PunchConfig::default();
    let t0 = Instant::now();
    let mut p = Puncher::new(
        &cfg,
        &side(ME, NatType::FullCone),
        &side(PEER, NatType::RestrictedCone),
        t0,
        &mut ChaCha8Rng::seed_from_u64(1),
    )
    .unwrap();
    assert_eq!(p.local_sockets(), 1);
    let probes = drain(&mut p, t0);
    let times: Vec<u128> = probes.iter().map(|(_, _, t)| t.as_millis()).collect();
    assert_eq!(times, vec![0, 400, 800]);
    assert!(probes
        .iter()
        .all(|(s, d, _)| *s == 0 && *d == PEER.parse().unwrap()));
    assert_eq!(p.outcome(), Some(PunchOutcome::Failed));
}

#[test]
fn a_symmetric_side_fires_a_little_after_its_cone_peer() {
    let cfg = PunchConfig::default();
    let t0 = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut sym = Puncher::new(
        &cfg,
        &side(PEER, NatType::SymmetricNat),
        &side(ME, NatType::RestrictedCone),
        t0,
        &mut rng,
    )
    .unwrap();
    let mut cone = Puncher::new(
        &cfg,
        &side(ME, NatType::RestrictedCone),
        &side(PEER, NatType::SymmetricNat),
        t0,
        &mut rng,
    )
    .unwrap();
    assert_eq!(drain(&mut cone, t0)[0].2, Duration::ZERO);
    assert_eq!(drain(&mut sym, t0)[0].2, cfg.symmetric_stagger);
}

#[test]
fn nothing_fires_before_the_agreed_time() {
    let t0 = Instant::now();
    let fire = t0 + Duration::from_millis(50);
    let mut p = Puncher::new(
        &PunchConfig::default(),
        &side(ME, NatType::FullCone),
        &side(PEER, NatType::FullCone),
        fire,
        &mut ChaCha8Rng::seed_from_u64(1),
    )
    .unwrap();
    let mut lim = ProbeLimiter::new(10);
    assert_eq!(p.poll_transmit(t0, &mut lim), None);
    assert_eq!(p.poll_timeout(), Some(fire));
    assert!(p.poll_transmit(fire, &mut lim).is_some());
}

#[test]
fn dcutr_timing_makes_both_ends_fire_together() {
    // Initiator I (RTT 80 ms to the coordinator) and responder R (RTT 20 ms):
    // the go signal reaches R about 40 + 10 ms after I sends it.
    let (ri, rr) = (Duration::from_millis(80), Duration::from_millis(20));
    assert_eq!(
        fire_delay(Role::Initiator, ri, rr),
        Duration::from_millis(50)
    );
    assert_eq!(fire_delay(Role::Responder, rr, ri), Duration::ZERO);
    let arrival_at_r = ri / 2 + rr / 2;
    assert_eq!(
        arrival_at_r + fire_delay(Role::Responder, rr, ri),
        fire_delay(Role::Initiator, ri, rr)
    );
}

#[test]
fn cone_spray_is_bounded_distinct_and_on_the_peer_ip_only() {
    let cfg = PunchConfig::default();
    let t0 = Instant::now();
    let me = side(ME, NatType::PortRestrictedCone);
    let peer = side(PEER, NatType::SymmetricNat);
    let mut p = Puncher::new(&cfg, &me, &peer, t0, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
    assert_eq!(p.strategy(), Strategy::SprayPorts);
    let probes = drain(&mut p, t0);
    assert_eq!(probes.len(), 3 + 1024);
    let peer_ip = PEER.parse::<SocketAddr>().unwrap().ip();
    assert!(probes
        .iter()
        .all(|(_, d, _)| d.ip() == peer_ip && d.port() >= 1024));
    let distinct: HashSet<u16> = probes.iter().map(|(_, d, _)| d.port()).collect();
    assert_eq!(distinct.len(), 1025);
}

#[test]
fn symmetric_side_opens_the_socket_spray() {
    let cfg = PunchConfig {
        spray_sockets: 16,
        ..PunchConfig::default()
    };
    let t0 = Instant::now();
    let mut p = Puncher::new(
        &cfg,
        &side(PEER, NatType::SymmetricNat),
        &side(ME, NatType::Cgnat),
        t0,
        &mut ChaCha8Rng::seed_from_u64(9),
    )
    .unwrap();
    assert_eq!(p.local_sockets(), 16);
    let probes = drain(&mut p, t0);
    assert_eq!(probes.len(), 3 * 16);
    let sockets: HashSet<usize> = probes.iter().map(|(s, _, _)| *s).collect();
    assert_eq!(sockets.len(), 16);
    assert!(probes.iter().all(|(_, d, _)| *d == ME.parse().unwrap()));
}

#[test]
fn the_limiter_caps_probes_per_destination_ip() {
    let t0 = Instant::now();
    let mut lim = ProbeLimiter::new(100);
    let ip = "192.0.2.1".parse().unwrap();
    let ok = (0..1000).filter(|_| lim.take(t0, ip).is_ok()).count();
    assert_eq!(ok, 100, "one second's burst");
    let retry = lim.take(t0, ip).unwrap_err();
    assert_eq!(retry, t0 + Duration::from_millis(10));
    assert!(lim.take(t0 + Duration::from_millis(10), ip).is_ok());
    assert!(
        lim.take(t0, "192.0.2.2".parse().unwrap()).is_ok(),
        "other IPs have their own budget"
    );
}

#[test]
fn a_spray_is_paced_by_the_limiter() {
    let t0 = Instant::now();
    let mut p = Puncher::new(
        &PunchConfig::default(),
        &side(ME, NatType::PortRestrictedCone),
        &side(PEER, NatType::SymmetricNat),
        t0,
        &mut ChaCha8Rng::seed_from_u64(3),
    )
    .unwrap();
    let mut lim = ProbeLimiter::new(200);
    let mut sent = 0;
    while p.poll_transmit(t0, &mut lim).is_some() {
        sent += 1;
    }
    assert_eq!(sent, 200);
    assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_millis(5)));
}

#[test]
fn only_probes_from_the_peer_ip_complete_the_punch() {
    let t0 = Instant::now();
    let mut p = Puncher::new(
        &PunchConfig::default(),
        &side(ME, NatType::FullCone),
        &side(PEER, NatType::SymmetricNat),
        t0,
        &mut ChaCha8Rng::seed_from_u64(3),
    )
    .unwrap();
    assert_eq!(
        p.handle_probe(0, "192.0.2.99:50000".parse().unwrap()),
        Err(ProbeError::WrongAddress)
    );
    assert_eq!(
        p.handle_probe(3, PEER.parse().unwrap()),
        Err(ProbeError::NoSuchSocket)
    );
    // A peer-reflexive port (a symmetric NAT's new mapping) on the peer's IP is fine.
    let prflx: SocketAddr = "203.0.113.104:61234".parse().unwrap();
    p.handle_probe(0, prflx).unwrap();
    assert_eq!(
        p.outcome(),
        Some(PunchOutcome::Punched {
            socket: 0,
            remote: prflx
        })
    );
    assert_eq!(
        p.poll_transmit(t0, &mut ProbeLimiter::new(10)),
        None,
        "no probes after success"
    );
}

#[test]
fn bad_plans_are_refused() {
    let t0 = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let me = side(ME, NatType::FullCone);
    let zero = PunchConfig {
        attempts: 0,
        ..PunchConfig::default()
    };
    assert_eq!(
        Puncher::new(&zero, &me, &side(PEER, NatType::FullCone), t0, &mut rng).unwrap_err(),
        PlanError::BadConfig
    );
    let huge = PunchConfig {
        spray_probes: 60000,
        ..PunchConfig::default()
    };
    assert_eq!(
        Puncher::new(&huge, &me, &side(PEER, NatType::FullCone), t0, &mut rng).unwrap_err(),
        PlanError::BadConfig
    );
    for bad in ["0.0.0.0:5000", "203.0.113.104:0"] {
        assert_eq!(
            Puncher::new(
                &PunchConfig::default(),
                &me,
                &side(bad, NatType::FullCone),
                t0,
                &mut rng
            )
            .unwrap_err(),
            PlanError::BadEndpoint
        );
    }
}
