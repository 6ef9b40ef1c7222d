//! `map` (inside a host): a NAT-PMP or PCP (`--protocol pcp`) UDP mapping through the real gateway,
//! kept renewed while an echo service answers on it, deleted at the end.
//! `ask` (outside): does a datagram to an address get an echo?

use std::collections::HashMap;
use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use moss_nat::natpmp::NatPmp;
use moss_nat::pcp::Pcp;
use moss_nat::portmap::{MappingClient, MappingProtocol, MappingState};
use rand_core::OsRng;

use crate::{addr, drain, seconds, Res};

pub fn map(f: &HashMap<String, String>) -> Res<()> {
    match f.get("protocol").map(String::as_str) {
        Some("pcp") => {
            let gateway = addr(f, "gateway")?;
            let local = {
                let s = UdpSocket::bind("0.0.0.0:0")?;
                s.connect(gateway)?;
                s.local_addr()?.ip()
            };
            map_with(f, Pcp::new(local, &mut OsRng), "pcp")
        }
        _ => map_with(f, NatPmp, "natpmp"),
    }
}

fn map_with<P: MappingProtocol>(f: &HashMap<String, String>, protocol: P, name: &str) -> Res<()> {
    let gateway = addr(f, "gateway")?;
    let port: u16 = f.get("port").ok_or("--port missing")?.parse()?;
    let lifetime: u32 = f.get("lifetime").map_or(Ok(60), |s| s.parse())?;
    let serve = seconds(f)?;
    let sock = UdpSocket::bind(("0.0.0.0", port))?;
    sock.set_nonblocking(true)?;
    let pmp = UdpSocket::bind("0.0.0.0:0")?;
    pmp.set_nonblocking(true)?;
    let mut m = MappingClient::new(protocol, port, lifetime, 4);
    let started = Instant::now();
    let mut stop_at: Option<Instant> = None;
    let (mut requests, mut echoed) = (0u32, 0u32);
    let hard_end = started + serve + Duration::from_secs(10);
    let mut out = std::io::stdout();
    loop {
        let now = Instant::now();
        if let Some(req) = m.poll_transmit(now) {
            pmp.send_to(&req, gateway)?;
            requests += 1;
        }
        drain(&pmp, |from, d| {
            if from == gateway {
                let before = m.state();
                let _ = m.handle_datagram(now, d);
                if let (
                    MappingState::Requesting,
                    MappingState::Mapped {
                        external_port,
                        lifetime,
                    },
                ) = (before, m.state())
                {
                    let _ = writeln!(out, "{{\"mapped\":true,\"protocol\":\"{name}\",\"external_port\":{external_port},\"lifetime\":{lifetime}}}");
                    let _ = out.flush();
                    stop_at = Some(now + serve);
                }
            }
        })?;
        drain(&sock, |from, d| {
            let mut reply = b"ECHO ".to_vec();
            reply.extend_from_slice(&d[..d.len().min(64)]);
            if sock.send_to(&reply, from).is_ok() {
                echoed += 1;
            }
        })?;
        m.handle_timeout(now);
        if stop_at.is_some_and(|t| now >= t) {
            stop_at = None;
            m.stop();
        }
        match m.state() {
            MappingState::Stopped | MappingState::Failed(_) => break,
            _ if now >= hard_end => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "{{\"final\":\"{:?}\",\"requests\":{requests},\"echoed\":{echoed},\"seconds\":{:.1}}}",
        m.state(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn ask(f: &HashMap<String, String>) -> Res<()> {
    let to = addr(f, "to")?;
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 128];
    let mut reached = false;
    for _ in 0..3 {
        sock.send_to(b"PING", to)?;
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == to && buf[..n].starts_with(b"ECHO PING") {
                reached = true;
                break;
            }
        }
    }
    println!("{{\"reached\":{reached}}}");
    Ok(())
}
