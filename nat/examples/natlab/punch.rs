//! `rendezvous` (on pub1) and `punch` (in two hosts): the coordination a
//! Moss peer would do over an established session, here as plain text
//! datagrams, driving the sans-IO `Puncher` with std sockets.
//!
//! HELLO pair role          -> SEEN ip:port            (RTT to the coordinator)
//! READY pair role class us -> PEER ip:port class us   (once both are ready)
//! GO pair  (from A)        -> GO pair (to B)          (A fires after fire_delay)

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use moss_nat::classify::NatType;
use moss_nat::punch::{
    fire_delay, ProbeLimiter, PunchConfig, PunchOutcome, Puncher, Role, Side,
    DEFAULT_PROBES_PER_IP_PER_SEC,
};
use rand_core::OsRng;

use crate::{addr, drain, seconds, Res};

/// Pairs the rendezvous remembers at most.
const MAX_PAIRS: usize = 4096;

pub fn rendezvous(f: &HashMap<String, String>) -> Res<()> {
    let sock = UdpSocket::bind(addr(f, "listen")?)?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let end = Instant::now() + seconds(f)?;
    // pair -> role -> (observed address, class, rtt_us)
    let mut pairs: HashMap<String, HashMap<String, (SocketAddr, String, String)>> = HashMap::new();
    let mut buf = [0u8; 512];
    while Instant::now() < end {
        let Ok((n, src)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let p: Vec<&str> = text.split_whitespace().collect();
        match p.as_slice() {
            ["HELLO", _, _] => {
                sock.send_to(format!("SEEN {src}").as_bytes(), src)?;
            }
            ["READY", pair, role, class, rtt] => {
                if pairs.len() >= MAX_PAIRS && !pairs.contains_key(*pair) {
                    pairs.clear();
                }
                let e = pairs.entry((*pair).to_owned()).or_default();
                e.insert(
                    (*role).to_owned(),
                    (src, (*class).to_owned(), (*rtt).to_owned()),
                );
                // Once both are ready, tell both at once (so B knows A before A says GO).
                if let Some((_, (a, c, r))) = e.iter().find(|(k, _)| k.as_str() != *role) {
                    sock.send_to(format!("PEER {a} {c} {r}").as_bytes(), src)?;
                    sock.send_to(format!("PEER {src} {class} {rtt}").as_bytes(), *a)?;
                }
            }
            ["GO", pair, role] => {
                let other = pairs
                    .get(*pair)
                    .and_then(|e| e.iter().find(|(k, _)| k.as_str() != *role));
                if let Some((_, (a, _, _))) = other {
                    sock.send_to(format!("GO {pair}").as_bytes(), *a)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Sends `msg` to the rendezvous until `want` comes back (bounded).
fn ask(sock: &UdpSocket, rdv: SocketAddr, msg: &str, want: &str) -> Res<(Vec<String>, Duration)> {
    let mut buf = [0u8; 512];
    for _ in 0..40 {
        let sent = Instant::now();
        sock.send_to(msg.as_bytes(), rdv)?;
        let wait_until = sent + Duration::from_millis(100);
        while Instant::now() < wait_until {
            sock.set_read_timeout(Some(
                wait_until
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))?;
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if from == rdv && text.starts_with(want) {
                return Ok((
                    text.split_whitespace().map(str::to_owned).collect(),
                    sent.elapsed(),
                ));
            }
        }
    }
    Err(format!("rendezvous: no {want}").into())
}

pub fn punch(f: &HashMap<String, String>) -> Res<()> {
    let rdv = addr(f, "rdv")?;
    let pair = f.get("pair").ok_or("--pair missing")?.clone();
    let role = match f.get("role").map(String::as_str) {
        Some("A") => Role::Initiator,
        Some("B") => Role::Responder,
        _ => return Err("--role A|B".into()),
    };
    let (me_tag, peer_tag) = if role == Role::Initiator {
        ("A", "B")
    } else {
        ("B", "A")
    };
    let class = f
        .get("class")
        .map_or("unknown", String::as_str)
        .parse::<NatType>()
        .ok()
        .ok_or("bad --class")?;
    let sock0 = UdpSocket::bind("0.0.0.0:0")?;
    let (seen, rtt) = ask(&sock0, rdv, &format!("HELLO {pair} {me_tag}"), "SEEN")?;
    let observed: SocketAddr = seen.get(1).ok_or("bad SEEN")?.parse()?;
    let ready = format!(
        "READY {pair} {me_tag} {} {}",
        class.as_str(),
        rtt.as_micros()
    );
    let (peer, _) = ask(&sock0, rdv, &ready, "PEER")?;
    let [_, paddr, pclass, prtt] = peer.as_slice() else {
        return Err("bad PEER".into());
    };
    let peer_side = Side {
        observed: paddr.parse()?,
        class: pclass.parse::<NatType>().ok().ok_or("bad peer class")?,
        prediction: None,
    };
    let peer_rtt = Duration::from_micros(prtt.parse()?);
    let me = Side {
        observed,
        class,
        prediction: None,
    };
    // Both sides know each other: coordinate the fire time.
    let go_at = match role {
        Role::Initiator => {
            sock0.send_to(format!("GO {pair} {me_tag}").as_bytes(), rdv)?;
            Instant::now() + fire_delay(role, rtt, peer_rtt)
        }
        Role::Responder => {
            ask_go(&sock0)?;
            Instant::now()
        }
    };
    let known_at = Instant::now();
    let cfg = PunchConfig::default();
    let mut puncher = match Puncher::new(&cfg, &me, &peer_side, go_at, &mut OsRng) {
        Ok(p) => p,
        Err(e) => {
            println!("{{\"ok\":false,\"strategy\":\"none\",\"error\":\"{e}\"}}");
            return Ok(());
        }
    };
    let mut socks = vec![sock0];
    while socks.len() < puncher.local_sockets() {
        socks.push(UdpSocket::bind("0.0.0.0:0")?);
    }
    for s in &socks {
        s.set_nonblocking(true)?;
    }
    let mut limiter = ProbeLimiter::new(DEFAULT_PROBES_PER_IP_PER_SEC);
    let probe = format!("PUNCH {pair} {me_tag}");
    let (their_punch, their_ack) = (
        format!("PUNCH {pair} {peer_tag}"),
        format!("ACK {pair} {peer_tag}"),
    );
    let ack = format!("ACK {pair} {me_tag}");
    let mut sent = 0usize;
    let mut punched_at = None;
    let mut got_ack = false;
    let hard_end = Instant::now() + Duration::from_secs(8);
    loop {
        let now = Instant::now();
        while let Some(p) = puncher.poll_transmit(now, &mut limiter) {
            let _ = socks[p.socket].send_to(probe.as_bytes(), p.destination);
            sent += 1;
        }
        for (i, s) in socks.iter().enumerate() {
            drain(s, |from, d| {
                let is_punch = d == their_punch.as_bytes();
                if (is_punch || d == their_ack.as_bytes()) && puncher.handle_probe(i, from).is_ok()
                {
                    got_ack |= !is_punch;
                    if is_punch {
                        let _ = s.send_to(ack.as_bytes(), from);
                    }
                }
            })?;
        }
        puncher.handle_timeout(now);
        match puncher.outcome() {
            Some(PunchOutcome::Punched { socket, remote }) => {
                let at = *punched_at.get_or_insert(now);
                // Keep the path warm a little so the peer gets our ACK or probe too.
                if now >= at + Duration::from_millis(300) || now >= hard_end {
                    if !got_ack {
                        let _ = socks[socket].send_to(probe.as_bytes(), remote);
                    }
                    println!(
                        "{{\"ok\":true,\"strategy\":\"{:?}\",\"sockets\":{},\"planned\":{},\"sent\":{},\"remote\":\"{remote}\",\"ms\":{:.1}}}",
                        puncher.strategy(),
                        socks.len(),
                        puncher.planned(),
                        sent,
                        at.saturating_duration_since(go_at.min(known_at)).as_secs_f64() * 1000.0
                    );
                    return Ok(());
                }
                if !got_ack {
                    let _ = socks[socket].send_to(probe.as_bytes(), remote);
                }
            }
            Some(PunchOutcome::Failed) => {
                println!(
                    "{{\"ok\":false,\"strategy\":\"{:?}\",\"sockets\":{},\"planned\":{},\"sent\":{}}}",
                    puncher.strategy(),
                    socks.len(),
                    puncher.planned(),
                    sent
                );
                return Ok(());
            }
            None if now >= hard_end => return Err("punch did not finish".into()),
            None => {}
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (bounded) for the initiator's GO relayed by the rendezvous.
fn ask_go(sock: &UdpSocket) -> Res<()> {
    let mut buf = [0u8; 512];
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if buf[..n].starts_with(b"GO ") {
                return Ok(());
            }
        }
    }
    Err("no GO from the initiator".into())
}
