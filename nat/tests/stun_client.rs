//! The sans-IO STUN client: RFC 8489 retransmission schedule, matching,
//! results, and every way a datagram is dropped.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use moss_nat::stun::{
    Attribute, BindingFailure, ChangeRequest, Class, ClientConfig, ClientError, DatagramError,
    Message, StunClient, TransactionId, BINDING,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn server() -> SocketAddr {
    "203.0.113.10:3478".parse().unwrap()
}

fn started() -> (StunClient, TransactionId, Instant, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut c = StunClient::new(ClientConfig::default()).unwrap();
    let t0 = Instant::now();
    let id = c
        .start_binding(t0, server(), ChangeRequest::default(), &mut rng)
        .unwrap();
    (c, id, t0, rng)
}

fn response(id: TransactionId, class: Class, attributes: Vec<Attribute>) -> Vec<u8> {
    Message {
        class,
        method: BINDING,
        transaction_id: id,
        attributes,
        fingerprint: true,
    }
    .encode()
    .unwrap()
}

#[test]
fn retransmits_on_the_rfc_schedule_then_times_out() {
    let (mut c, id, t0, _) = started();
    let mut sends = Vec::new();
    let mut now = t0;
    loop {
        while let Some(t) = c.poll_transmit(now) {
            assert_eq!(t.destination, server());
            let m = Message::decode(&t.payload).unwrap();
            assert_eq!(
                (m.class, m.method, m.transaction_id),
                (Class::Request, BINDING, id)
            );
            sends.push(now - t0);
        }
        let Some(next) = c.poll_timeout() else { break };
        now = next;
        c.handle_timeout(now);
    }
    let ms: Vec<u128> = sends.iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(now - t0, Duration::from_millis(39_500));
    assert_eq!(
        ClientConfig::default().give_up_after(),
        Duration::from_millis(39_500)
    );
    let o = c.poll_outcome().unwrap();
    assert_eq!((o.id, o.result), (id, Err(BindingFailure::Timeout)));
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn success_is_matched_by_id_even_from_another_address() {
    let (mut c, id, t0, _) = started();
    c.poll_transmit(t0).unwrap();
    let mapped: SocketAddr = "198.51.100.7:4242".parse().unwrap();
    let other: SocketAddr = "198.51.100.10:3479".parse().unwrap();
    let d = response(
        id,
        Class::Success,
        vec![
            Attribute::XorMappedAddress(mapped),
            Attribute::OtherAddress(other),
        ],
    );
    let later = t0 + Duration::from_millis(30);
    c.handle_datagram(later, other, &d).unwrap();
    let o = c.poll_outcome().unwrap();
    let r = o.result.unwrap();
    assert_eq!(
        (r.mapped, r.from, r.other_address),
        (mapped, other, Some(other))
    );
    assert_eq!(r.rtt, Duration::from_millis(30));
    assert!(!r.retransmitted);
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn error_response_is_a_result() {
    let (mut c, id, t0, _) = started();
    c.poll_transmit(t0).unwrap();
    let d = response(
        id,
        Class::Error,
        vec![Attribute::ErrorCode {
            code: 400,
            reason: "Bad Request".into(),
        }],
    );
    c.handle_datagram(t0, server(), &d).unwrap();
    assert_eq!(
        c.poll_outcome().unwrap().result,
        Err(BindingFailure::ErrorResponse {
            code: Some(400),
            reason: "Bad Request".into()
        })
    );
}

#[test]
fn unknown_required_attribute_fails_the_transaction() {
    let (mut c, id, t0, _) = started();
    let mapped: SocketAddr = "1.2.3.4:5".parse().unwrap();
    let d = response(
        id,
        Class::Success,
        vec![
            Attribute::XorMappedAddress(mapped),
            Attribute::Unknown {
                kind: 0x0008,
                value: vec![0; 20],
            },
        ],
    );
    c.handle_datagram(t0, server(), &d).unwrap();
    assert_eq!(
        c.poll_outcome().unwrap().result,
        Err(BindingFailure::UnknownRequired(vec![0x0008]))
    );
}

#[test]
fn success_without_address_fails() {
    let (mut c, id, t0, _) = started();
    c.handle_datagram(t0, server(), &response(id, Class::Success, vec![]))
        .unwrap();
    assert_eq!(
        c.poll_outcome().unwrap().result,
        Err(BindingFailure::NoMappedAddress)
    );
}

#[test]
fn drops_are_typed_and_counted() {
    let (mut c, id, t0, _) = started();
    assert!(matches!(
        c.handle_datagram(t0, server(), b"hello"),
        Err(DatagramError::Malformed(_))
    ));
    let req = response(id, Class::Request, vec![]);
    assert_eq!(
        c.handle_datagram(t0, server(), &req),
        Err(DatagramError::NotAResponse)
    );
    let stranger = response(TransactionId([0xAA; 12]), Class::Success, vec![]);
    assert_eq!(
        c.handle_datagram(t0, server(), &stranger),
        Err(DatagramError::UnknownTransaction)
    );
    let s = c.stats();
    assert_eq!((s.malformed, s.not_response, s.unmatched), (1, 1, 1));
    assert_eq!(c.in_flight(), 1);
}

#[test]
fn late_response_after_timeout_is_unmatched() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let cfg = ClientConfig {
        rto: Duration::from_millis(10),
        max_sends: 1,
        last_wait: 1,
        max_in_flight: 4,
    };
    let mut c = StunClient::new(cfg).unwrap();
    let t0 = Instant::now();
    let id = c
        .start_binding(t0, server(), ChangeRequest::default(), &mut rng)
        .unwrap();
    c.poll_transmit(t0).unwrap();
    c.handle_timeout(t0 + Duration::from_millis(10));
    assert_eq!(
        c.poll_outcome().unwrap().result,
        Err(BindingFailure::Timeout)
    );
    let d = response(
        id,
        Class::Success,
        vec![Attribute::XorMappedAddress(server())],
    );
    assert_eq!(
        c.handle_datagram(t0, server(), &d),
        Err(DatagramError::UnknownTransaction)
    );
}

#[test]
fn change_request_is_carried_and_reported() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut c = StunClient::new(ClientConfig::default()).unwrap();
    let t0 = Instant::now();
    let change = ChangeRequest {
        change_ip: true,
        change_port: true,
    };
    c.start_binding(t0, server(), change, &mut rng).unwrap();
    let m = Message::decode(&c.poll_transmit(t0).unwrap().payload).unwrap();
    assert_eq!(m.attributes, vec![Attribute::ChangeRequest(change)]);
}

#[test]
fn ids_come_from_the_injected_rng() {
    let (_, a, _, _) = started();
    let (_, b, _, _) = started();
    assert_eq!(a, b);
}

#[test]
fn capacity_and_config_are_enforced() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let cfg = ClientConfig {
        max_in_flight: 2,
        ..ClientConfig::default()
    };
    let mut c = StunClient::new(cfg).unwrap();
    let t0 = Instant::now();
    for _ in 0..2 {
        c.start_binding(t0, server(), ChangeRequest::default(), &mut rng)
            .unwrap();
    }
    assert_eq!(
        c.start_binding(t0, server(), ChangeRequest::default(), &mut rng),
        Err(ClientError::TooManyInFlight)
    );
    let bad = ClientConfig {
        rto: Duration::ZERO,
        ..ClientConfig::default()
    };
    assert_eq!(StunClient::new(bad).unwrap_err(), ClientError::BadConfig);
}
