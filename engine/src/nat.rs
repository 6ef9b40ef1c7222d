//! The engine's NAT inputs to the sans-IO node: the host's interface
//! addresses (an observed address equal to one of them means no NAT) and,
//! when `nat.natpmp_enabled`, what the default gateway says about its
//! external address over NAT-PMP (none, or another than observers see: a
//! NAT beyond the gateway, CGNAT).

use moss_nat::classify::GatewayReport;
use moss_nat::natpmp::{ExternalAddressQuery, QueryOutcome, ResultCode, SERVER_PORT};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// NAT-PMP external-address attempts at start (250 ms, then 500 ms).
const PMP_ATTEMPTS: u32 = 2;

/// The IPv4 default gateway from `/proc/net/route` (Linux), if any.
pub(crate) fn default_gateway() -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&"00000000") {
            return None;
        }
        let gw = u32::from_str_radix(f.get(2)?, 16).ok()?;
        (gw != 0).then(|| Ipv4Addr::from(gw.to_le_bytes()))
    })
}

/// Asks `gateway` for its external address over NAT-PMP (blocking, under a
/// second). `None` when nothing answers or the answer says nothing.
pub(crate) fn gateway_report(gateway: Ipv4Addr) -> Option<GatewayReport> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    let to = SocketAddr::from((gateway, SERVER_PORT));
    let mut q = ExternalAddressQuery::new(PMP_ATTEMPTS);
    let mut buf = [0u8; 64];
    while q.outcome().is_none() {
        let now = Instant::now();
        if let Some(req) = q.poll_transmit(now) {
            sock.send_to(&req, to).ok()?;
        }
        let wait = q
            .poll_timeout()
            .map_or(Duration::from_millis(10), |d| {
                d.saturating_duration_since(now)
            })
            .max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait)).ok()?;
        match sock.recv_from(&mut buf) {
            // Only the gateway's own port is believed; a bad reply is ignored.
            Ok((n, from)) if from == to => {
                let _ = q.handle_datagram(&buf[..n]);
            }
            _ => q.handle_timeout(Instant::now()),
        }
    }
    match q.outcome()? {
        QueryOutcome::Address(a) => Some(GatewayReport::External(IpAddr::V4(a))),
        QueryOutcome::Refused(ResultCode::NetworkFailure) => Some(GatewayReport::NoPublicAddress),
        _ => None,
    }
}

/// The addresses the node is reachable at on this host: `bound` itself
/// when it names an address, else every up, non-loopback interface
/// address of its family (from `getifaddrs`) with the bound port.
pub(crate) fn local_addrs(bound: SocketAddr) -> Vec<SocketAddr> {
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    interface_ips()
        .into_iter()
        .filter(|ip| ip.is_ipv4() == bound.is_ipv4() && !ip.is_loopback())
        .map(|ip| SocketAddr::new(ip, bound.port()))
        .collect()
}

/// Every interface address of the host (empty if the OS refuses).
pub(crate) fn interface_ips() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we walk read-only and
    // free exactly once below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        let up = ifa.ifa_flags & libc::IFF_UP as libc::c_uint != 0;
        if up && !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says
            // which larger struct it is.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: family AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: family AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_bound_address_is_the_only_one() {
        let a: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        assert_eq!(local_addrs(a), vec![a]);
    }

    #[test]
    fn the_wildcard_lists_interfaces_with_the_port() {
        // Every host running the tests has loopback; it is left out.
        assert!(interface_ips().iter().any(|ip| ip.is_loopback()));
        let v = local_addrs("0.0.0.0:4321".parse().unwrap());
        assert!(v
            .iter()
            .all(|a| a.port() == 4321 && !a.ip().is_loopback() && a.is_ipv4()));
    }
}
