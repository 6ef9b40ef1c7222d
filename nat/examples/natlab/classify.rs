//! `classify`: one host's NAT class from the lab's STUN server (two IPs),
//! the prober on pub2 and the gateway's NAT-PMP answer.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use moss_nat::classify::{Classifier, FilteringTest, GatewayReport, Observation};
use moss_nat::natpmp::{ExternalAddressQuery, QueryOutcome, ResultCode};
use moss_nat::stun::{BindingFailure, ChangeRequest, ClientConfig, StunClient};
use rand_core::{OsRng, RngCore};

use crate::{addr, drain, Res};

/// One local socket with its STUN client.
struct Probe {
    sock: UdpSocket,
    local: SocketAddr,
    stun: StunClient,
}

impl Probe {
    fn new(local_ip: IpAddr) -> Res<Self> {
        let sock = UdpSocket::bind("0.0.0.0:0")?;
        sock.set_nonblocking(true)?;
        let local = SocketAddr::new(local_ip, sock.local_addr()?.port());
        let config = ClientConfig {
            rto: Duration::from_millis(100),
            max_sends: 4,
            last_wait: 4,
            max_in_flight: 8,
        };
        Ok(Probe {
            sock,
            local,
            stun: StunClient::new(config)?,
        })
    }

    fn flush(&mut self, now: Instant, c: &mut Classifier) -> Res<()> {
        while let Some(t) = self.stun.poll_transmit(now) {
            c.note_sent(t.destination.ip());
            self.sock.send_to(&t.payload, t.destination)?;
        }
        Ok(())
    }
}

pub fn classify(f: &HashMap<String, String>) -> Res<()> {
    let stun = addr(f, "stun")?;
    let stun_alt = addr(f, "stun-alt")?;
    let prober = addr(f, "prober")?;
    let gateway = addr(f, "gateway").ok();
    let started = Instant::now();
    let local_ip = {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.connect(stun)?;
        s.local_addr()?.ip()
    };
    let mut rng = OsRng;
    let mut c = Classifier::new();
    // Mapping: one socket, two observers at different IPs (RFC 5780 §4.3).
    let mut map = Probe::new(local_ip)?;
    for server in [stun, stun_alt] {
        map.stun
            .start_binding(started, server, ChangeRequest::default(), &mut rng)?;
    }
    // Filtering: a fresh socket that only ever sends to `stun` (RFC 5780 §4.4).
    let mut filt = Probe::new(local_ip)?;
    let both = ChangeRequest {
        change_ip: true,
        change_port: true,
    };
    let port_only = ChangeRequest {
        change_ip: false,
        change_port: true,
    };
    let plain = filt
        .stun
        .start_binding(started, stun, ChangeRequest::default(), &mut rng)?;
    for change in [both, port_only] {
        filt.stun.start_binding(started, stun, change, &mut rng)?;
    }
    // Reachability: ask the prober to have another IP send to our mapping.
    let probe = UdpSocket::bind("0.0.0.0:0")?;
    probe.set_nonblocking(true)?;
    let nonce = format!("{:016x}", rng.next_u64());
    let probe_deadline = started + Duration::from_millis(1200);
    let mut probe_sends = 0u32;
    let mut probe_next = started;
    let mut reached_by: Option<SocketAddr> = None;
    // The local gateway: NAT-PMP external address (two attempts: 750 ms).
    let pmp = UdpSocket::bind("0.0.0.0:0")?;
    pmp.set_nonblocking(true)?;
    let mut query = gateway.map(|_| ExternalAddressQuery::new(2));

    let mut rfc5780 = false;
    let mut mapped = Vec::new();
    let mut gateway_said = "none".to_owned();
    let hard_end = started + Duration::from_secs(10);
    loop {
        let now = Instant::now();
        map.flush(now, &mut c)?;
        filt.flush(now, &mut c)?;
        if let (Some(q), Some(g)) = (query.as_mut(), gateway) {
            if let Some(req) = q.poll_transmit(now) {
                c.note_sent(g.ip());
                pmp.send_to(&req, g)?;
            }
        }
        if probe_sends < 3 && now >= probe_next && reached_by.is_none() {
            c.note_sent(prober.ip());
            probe.send_to(format!("PROBE {nonce}").as_bytes(), prober)?;
            probe_sends += 1;
            probe_next = now + Duration::from_millis(300);
        }
        for p in [&mut map, &mut filt] {
            let Probe { sock, stun, .. } = p;
            drain(sock, |from, d| {
                let _ = stun.handle_datagram(now, from, d);
            })?;
        }
        drain(&probe, |from, d| {
            if d == format!("PROBED {nonce}").as_bytes() && c.inbound_probe(from).is_ok() {
                reached_by = Some(from);
            }
        })?;
        if let Some(q) = query.as_mut() {
            drain(&pmp, |from, d| {
                if Some(from) == gateway {
                    let _ = q.handle_datagram(d);
                }
            })?;
        }
        map.stun.handle_timeout(now);
        filt.stun.handle_timeout(now);
        if let Some(q) = query.as_mut() {
            q.handle_timeout(now);
        }
        while let Some(o) = map.stun.poll_outcome() {
            if let Ok(r) = o.result {
                mapped.push(r.mapped.to_string());
                c.observe(Observation {
                    local: map.local,
                    observer: o.server,
                    mapped: r.mapped,
                });
            }
        }
        while let Some(o) = filt.stun.poll_outcome() {
            let test = match o.change {
                ChangeRequest {
                    change_ip: true, ..
                } => Some(FilteringTest::OtherIpAndPort),
                ChangeRequest {
                    change_port: true, ..
                } => Some(FilteringTest::OtherPort),
                _ => None,
            };
            match (test, o.result) {
                (None, Ok(r)) if o.id == plain => rfc5780 = r.other_address.is_some(),
                // A response from the address we asked is a server ignoring CHANGE-REQUEST.
                (Some(t), Ok(r)) if r.from != o.server => c.filtering_result(t, true),
                (Some(t), Err(BindingFailure::Timeout)) => c.filtering_result(t, false),
                _ => {}
            }
        }
        let pmp_done = match query.as_ref().and_then(|q| q.outcome()) {
            Some(QueryOutcome::Address(a)) => {
                gateway_said = a.to_string();
                c.port_mapping(GatewayReport::External(IpAddr::V4(a)));
                true
            }
            Some(QueryOutcome::Refused(ResultCode::NetworkFailure)) => {
                gateway_said = "no public address".into();
                c.port_mapping(GatewayReport::NoPublicAddress);
                true
            }
            Some(_) => true,
            None => query.is_none(),
        };
        let probe_done = reached_by.is_some() || now >= probe_deadline;
        if (map.stun.in_flight() == 0 && filt.stun.in_flight() == 0 && pmp_done && probe_done)
            || now >= hard_end
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let v = c.verdict();
    println!(
        "{{\"class\":\"{}\",\"mapping\":\"{:?}\",\"filtering\":\"{:?}\",\"reachable\":{},\"probe_from\":\"{}\",\"mapped\":\"{}\",\"rfc5780\":{},\"gateway\":\"{}\",\"local\":\"{}\",\"ms\":{}}}",
        v.class.as_str(),
        v.mapping,
        v.filtering,
        v.reachable,
        reached_by.map_or("-".into(), |a| a.to_string()),
        mapped.join(" "),
        rfc5780,
        gateway_said,
        local_ip,
        started.elapsed().as_millis()
    );
    Ok(())
}
