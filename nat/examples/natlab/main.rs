//! Drives the sans-IO parts of `moss-nat` with std UDP sockets in the
//! real-NAT lab (`nat/scripts/extra-tests.sh`).
//!
//! ```text
//! natlab classify --stun A:3478 --stun-alt B:3478 --prober C:4000 --gateway G:5351
//! natlab probe-server --listen C:4000 --from D --seconds N
//! natlab rendezvous --listen R:4000 --seconds N
//! natlab punch --rdv R:4000 --pair ID --role A|B --class CLASS
//! natlab map --gateway G:5351 --port P --lifetime S --seconds N
//! natlab ask --to W:P
//! ```
//! Each client subcommand prints one JSON line.

mod classify;
mod portmap;
mod punch;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let f = flags(args.get(1..).unwrap_or(&[]));
    let result = match args.first().map(String::as_str) {
        Some("classify") => classify::classify(&f),
        Some("probe-server") => probe_server(&f),
        Some("rendezvous") => punch::rendezvous(&f),
        Some("punch") => punch::punch(&f),
        Some("map") => portmap::map(&f),
        Some("ask") => portmap::ask(&f),
        _ => Err(
            "usage: natlab classify|probe-server|rendezvous|punch|map|ask --flag value ...".into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("natlab: {e}");
        std::process::exit(2);
    }
}

fn flags(args: &[String]) -> HashMap<String, String> {
    args.chunks(2)
        .filter_map(|c| match c {
            [k, v] => Some((k.trim_start_matches("--").to_owned(), v.clone())),
            _ => None,
        })
        .collect()
}

fn addr(f: &HashMap<String, String>, key: &str) -> Res<SocketAddr> {
    Ok(f.get(key).ok_or(format!("--{key} missing"))?.parse()?)
}

fn seconds(f: &HashMap<String, String>) -> Res<Duration> {
    Ok(Duration::from_secs(
        f.get("seconds").map_or(Ok(600), |s| s.parse())?,
    ))
}

/// Receives everything waiting on a non-blocking `sock`, handing each datagram to `f`.
fn drain(sock: &UdpSocket, mut f: impl FnMut(SocketAddr, &[u8])) -> Res<()> {
    let mut buf = [0u8; 1500];
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => f(from, &buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Answers "PROBE <nonce>" with "PROBED <nonce>" from another IP, sent only
/// to the requester's observed address.
fn probe_server(f: &HashMap<String, String>) -> Res<()> {
    let listen = UdpSocket::bind(addr(f, "listen")?)?;
    let from_ip: IpAddr = f.get("from").ok_or("--from missing")?.parse()?;
    let sender = UdpSocket::bind(SocketAddr::new(from_ip, 0))?;
    let end = Instant::now() + seconds(f)?;
    listen.set_read_timeout(Some(Duration::from_millis(200)))?;
    let mut buf = [0u8; 128];
    while Instant::now() < end {
        let Ok((n, src)) = listen.recv_from(&mut buf) else {
            continue;
        };
        if let Some(nonce) = buf[..n].strip_prefix(b"PROBE ") {
            if nonce.len() <= 32 {
                let mut reply = b"PROBED ".to_vec();
                reply.extend_from_slice(nonce);
                let _ = sender.send_to(&reply, src);
            }
        }
    }
    Ok(())
}
