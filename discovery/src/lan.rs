//! LAN beacon thread: sends authenticated beacons to the multicast group and
//! turns the beacons of other runners of the same mesh into candidates.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::beacon::{self, Beacon, BeaconError};
use crate::clock::later;
use crate::runner::{LanConfig, Source};
use crate::sink::Shared;

const POLL_SLICE: Duration = Duration::from_millis(100);

fn open_socket(cfg: &LanConfig, interfaces: &[Ipv4Addr]) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, cfg.port)).into())?;
    // Join on every interface that accepts it; fail only if none does.
    let mut joined = 0;
    let mut last_err = None;
    for iface in interfaces {
        match socket.join_multicast_v4(&cfg.group, iface) {
            Ok(()) => joined += 1,
            Err(e) => last_err = Some(e),
        }
    }
    if joined == 0 {
        return Err(last_err.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no interface")
        }));
    }
    socket.set_multicast_loop_v4(true)?;
    socket.set_multicast_ttl_v4(1)?;
    Ok(socket.into())
}

/// Runs until the runner stops. Setup errors are recorded in `lan.last_error`.
pub(crate) fn run(shared: &Shared, cfg: &LanConfig, instance_id: [u8; 8]) {
    let interfaces: Vec<Ipv4Addr> = if cfg.interfaces.is_empty() {
        vec![Ipv4Addr::UNSPECIFIED]
    } else {
        cfg.interfaces.clone()
    };
    let socket = match open_socket(cfg, &interfaces) {
        Ok(s) => s,
        Err(e) => {
            if let Some(lan) = shared.stats().lan.as_mut() {
                lan.last_error = Some(format!("lan socket setup: {e}"));
            }
            return;
        }
    };
    let group = SocketAddr::V4(SocketAddrV4::new(cfg.group, cfg.port));
    let mut next_send = Instant::now();
    let mut buf = [0u8; 2048];
    while !shared.stopping() {
        let now = Instant::now();
        if now >= next_send {
            let wire = beacon::encode(
                &cfg.beacon_key,
                &Beacon {
                    listen_port: shared.port(),
                    instance_id,
                },
            );
            for iface in &interfaces {
                let ok = (iface.is_unspecified()
                    || SockRef::from(&socket).set_multicast_if_v4(iface).is_ok())
                    && socket.send_to(&wire, group).is_ok();
                if let Some(lan) = shared.stats().lan.as_mut() {
                    if ok {
                        lan.beacons_sent += 1;
                    } else {
                        lan.send_errors += 1;
                    }
                }
            }
            next_send = later(now, cfg.interval);
        }
        let wait = next_send
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), POLL_SLICE);
        if socket.set_read_timeout(Some(wait)).is_err() {
            std::thread::sleep(wait);
            continue;
        }
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => handle(shared, cfg, instance_id, &buf[..n], from),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                if let Some(lan) = shared.stats().lan.as_mut() {
                    lan.receive_errors += 1;
                }
            }
        }
    }
}

fn handle(shared: &Shared, cfg: &LanConfig, instance_id: [u8; 8], bytes: &[u8], from: SocketAddr) {
    let result = beacon::decode(&cfg.beacon_key, bytes);
    let candidate = {
        let mut stats = shared.stats();
        let Some(lan) = stats.lan.as_mut() else {
            return;
        };
        lan.beacons_received += 1;
        match result {
            Ok(b) if b.instance_id == instance_id => {
                lan.own_beacons += 1;
                None
            }
            Ok(b) => {
                lan.beacons_accepted += 1;
                Some(SocketAddr::new(from.ip(), b.listen_port))
            }
            Err(
                BeaconError::WrongLength(_) | BeaconError::BadMagic | BeaconError::ReservedFlags,
            ) => {
                lan.rejected_malformed += 1;
                None
            }
            Err(BeaconError::UnsupportedVersion(_)) => {
                lan.rejected_version += 1;
                None
            }
            Err(BeaconError::ForeignMesh) => {
                lan.rejected_foreign_mesh += 1;
                None
            }
            Err(BeaconError::BadMac) => {
                lan.rejected_bad_mac += 1;
                None
            }
            Err(BeaconError::ZeroPort) => {
                lan.rejected_zero_port += 1;
                None
            }
        }
    };
    if let Some(addr) = candidate {
        shared.offer(addr, Source::Lan);
    }
}
