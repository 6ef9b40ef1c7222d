//! Port mapping on the default gateway, driven by the engine: one thread
//! (`moss-portmap`) that asks for a UDP mapping of the node's port over
//! PCP, then NAT-PMP, then UPnP IGD (each only when its `nat.*_enabled`
//! field is on; the first that grants wins), renews it at half its
//! lifetime, deletes it when the node stops, and hands the mapped external
//! address to the sans-IO node (which counts it as a candidate address of
//! its own; reachability still needs a real inbound probe). Failures are
//! counted in [`PortmapStatus`]; a gateway that maps nothing is asked
//! again [`RETRY_FIRST`] later, the wait doubling up to [`RETRY_MAX`]; a
//! lost mapping is asked for again after [`RETRY_FIRST`]. With PCP or
//! NAT-PMP on, a listener ([`announce`]) hears the gateway announce itself
//! on 224.0.0.1:5350 (its mapping service starting mid-run, a restart, a
//! new external address) and the thread asks at once: it maps, renews, or
//! takes the announced external address, without waiting for a timer.

mod announce;

use crate::host::{Command, Shared};
use announce::{Listener, Signal, Woke};
use crossbeam_channel::Sender;
use moss_nat::natpmp::NatPmp;
use moss_nat::pcp::Pcp;
use moss_nat::portmap::{MappingClient, MappingProtocol, MappingState};
use moss_nat::upnp::{self, Action, Control, UpnpError};
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lifetime asked for by default (RFC 6886 recommends 7200 s; an hour
/// keeps a crashed node's mapping from lingering as long).
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Sends per NAT-PMP/PCP request before it counts as unanswered (250 ms,
/// 500 ms, 1 s: under 2 s per protocol).
const UDP_ATTEMPTS: u32 = 3;
/// After every enabled protocol failed (or a mapping was lost), the next
/// try waits this long at first ...
pub const RETRY_FIRST: Duration = Duration::from_secs(10);
/// ... doubling after each failed try up to this.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// The wait before the next try: `first` after a round that held a
/// mapping, else double the last wait, at most [`RETRY_MAX`].
fn next_retry(last: Option<Duration>, held: bool, first: Duration) -> Duration {
    match last {
        Some(w) if !held => (w * 2).min(RETRY_MAX.max(first)),
        _ => first,
    }
}
/// How long an SSDP search waits for the gateway's answer.
const SSDP_WAIT: Duration = Duration::from_secs(3);
/// Connect and read timeout of each UPnP HTTP exchange.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the thread looks at the stop flag and for an announcement
/// while it waits for a NAT-PMP or PCP reply.
const TICK: Duration = Duration::from_millis(100);
/// Longest [`Portmap::stop`] waits for the mapping's deletion: past it the
/// thread is left to finish (or give up) on its own, so a slow or dead
/// gateway never holds up `Node::stop`.
pub const STOP_DEADLINE: Duration = Duration::from_secs(1);
/// Budget of the deletion exchange itself (below [`STOP_DEADLINE`]).
const DELETE_TIMEOUT: Duration = Duration::from_millis(800);
/// UPnP external ports tried when the gateway says ours is taken (ours, then the next ones).
const UPNP_PORT_TRIES: u16 = 4;
/// UPnP fault: the external port is mapped to another client.
const UPNP_CONFLICT: u16 = 718;
/// UPnP fault: only permanent leases (0) are supported.
const UPNP_PERMANENT_ONLY: u16 = 725;

/// The port mapping as the host sees it (`NodeStats::port_mapping`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortmapStatus {
    /// The protocol holding the mapping now (`pcp`, `natpmp`, `upnp`), if any.
    pub protocol: Option<&'static str>,
    /// The mapped external address now, if any.
    pub external: Option<SocketAddr>,
    /// Granted lifetime of the current mapping, seconds (0: permanent).
    pub lifetime_sec: u32,
    /// Mapping requests sent (every protocol, retransmissions included).
    pub requests: u64,
    /// Mappings created.
    pub created: u64,
    /// Renewals the gateway granted.
    pub renewed: u64,
    /// Protocol attempts that ended without a mapping, and lost mappings.
    pub failures: u64,
    /// Replies from the gateway that did not decode (dropped).
    pub malformed: u64,
    /// Mappings deleted at stop.
    pub deleted: u64,
    /// The last failure, for humans.
    pub last_error: Option<String>,
    /// The node stopped while the gateway was still busy: the deletion
    /// was left to finish after a second.
    pub stop_abandoned: bool,
    /// Announcements heard from the gateway (224.0.0.1:5350).
    pub announcements: u64,
    /// Datagrams on the announcement port dropped: not from the gateway,
    /// or announcing nothing.
    pub announcements_ignored: u64,
    /// Why the node does not listen for announcements (the port could not
    /// be bound or the group joined), if so.
    pub announce_error: Option<String>,
}

/// Which protocols `nat` enables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Protocols {
    pub pcp: bool,
    pub natpmp: bool,
    pub upnp: bool,
}

impl Protocols {
    fn any(self) -> bool {
        self.pcp || self.natpmp || self.upnp
    }
}

/// The running port-mapping thread.
pub(crate) struct Portmap {
    signal: Arc<Signal>,
    listener: Option<Listener>,
    thread: Option<JoinHandle<()>>,
    status: Arc<Mutex<PortmapStatus>>,
}

/// What the thread needs to tell the node.
struct Ctx {
    gateway: Ipv4Addr,
    local_ip: Ipv4Addr,
    port: u16,
    lifetime: u32,
    retry_first: Duration,
    signal: Arc<Signal>,
    status: Arc<Mutex<PortmapStatus>>,
    commands: Sender<Command>,
    shared: Arc<Shared>,
}

/// Why a SOAP action failed.
#[derive(Debug, thiserror::Error)]
enum SoapError {
    /// The TCP exchange failed.
    #[error("{0}")]
    Io(std::io::Error),
    /// The answer was a fault or malformed.
    #[error("{0}")]
    Upnp(UpnpError),
}

/// A UPnP fault with this error code.
fn fault(r: &Result<Option<Ipv4Addr>, SoapError>, code: u16) -> bool {
    matches!(r, Err(SoapError::Upnp(UpnpError::Fault { code: c, .. })) if *c == code)
}

/// How one protocol's turn ended.
enum Ended {
    /// The node is stopping (a mapping, if any, was deleted).
    Stopped,
    /// No mapping, or the mapping was lost.
    Failed(String),
}

impl Portmap {
    /// Starts mapping UDP `port` on the default gateway, when a protocol is
    /// enabled and the host has an IPv4 default route; a round that maps
    /// nothing is tried again `retry_first` later ([`RETRY_FIRST`] by
    /// default), doubling.
    pub(crate) fn start(
        which: Protocols,
        port: u16,
        lifetime: Duration,
        retry_first: Duration,
        commands: Sender<Command>,
        shared: Arc<Shared>,
    ) -> Option<Portmap> {
        if !which.any() {
            return None;
        }
        let Some(gateway) = crate::nat::default_gateway() else {
            tracing::info!("port mapping: no IPv4 default gateway");
            return None;
        };
        let local_ip = match route_source(gateway) {
            Some(ip) => ip,
            None => {
                tracing::info!(%gateway, "port mapping: no local address toward the gateway");
                return None;
            }
        };
        let times = (lifetime, retry_first);
        Self::start_on(which, gateway, local_ip, port, times, commands, shared)
    }

    /// Starts mapping UDP `port` of `local_ip` on `gateway`; `times` is
    /// the lifetime asked for and the first retry wait.
    fn start_on(
        which: Protocols,
        gateway: Ipv4Addr,
        local_ip: Ipv4Addr,
        port: u16,
        (lifetime, retry_first): (Duration, Duration),
        commands: Sender<Command>,
        shared: Arc<Shared>,
    ) -> Option<Portmap> {
        let signal = Arc::new(Signal::new());
        let status = Arc::new(Mutex::new(PortmapStatus::default()));
        // Only NAT-PMP and PCP gateways announce themselves.
        let listener = if which.pcp || which.natpmp {
            match announce::listen(gateway, local_ip, signal.clone(), status.clone()) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::info!(error = %e, "port mapping: not listening for the gateway's announcements");
                    if let Ok(mut s) = status.lock() {
                        s.announce_error = Some(e.to_string());
                    }
                    None
                }
            }
        } else {
            None
        };
        let ctx = Ctx {
            gateway,
            local_ip,
            port,
            lifetime: lifetime.as_secs().clamp(1, u64::from(u32::MAX)) as u32,
            retry_first: retry_first.max(TICK),
            signal: signal.clone(),
            status: status.clone(),
            commands,
            shared,
        };
        let thread = std::thread::Builder::new()
            .name("moss-portmap".into())
            .spawn(move || ctx.run(which))
            .map_err(|e| tracing::warn!(error = %e, "port mapping thread did not start"))
            .ok()?;
        Some(Portmap {
            signal,
            listener,
            thread: Some(thread),
            status,
        })
    }

    /// The current status.
    pub(crate) fn status(&self) -> PortmapStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Deletes the mapping, best effort, and ends the thread: waits at
    /// most [`STOP_DEADLINE`], then leaves the thread detached (a gateway
    /// in the middle of a slow exchange; the deletion has its own
    /// [`DELETE_TIMEOUT`], and an undeleted mapping expires with its lease).
    pub(crate) fn stop(&mut self) {
        self.signal.stop();
        if let Some(mut l) = self.listener.take() {
            l.stop();
        }
        let Some(t) = self.thread.take() else {
            return;
        };
        let end = Instant::now() + STOP_DEADLINE;
        while !t.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            self.with_status(|s| s.stop_abandoned = true);
            tracing::info!(
                "port mapping: the gateway is slow; deletion left to finish in the background"
            );
        }
    }

    fn with_status(&self, f: impl FnOnce(&mut PortmapStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }
}

impl Drop for Portmap {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The local IPv4 address the host uses toward `gateway`.
fn route_source(gateway: Ipv4Addr) -> Option<Ipv4Addr> {
    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    s.connect((gateway, moss_nat::natpmp::SERVER_PORT)).ok()?;
    match s.local_addr().ok()?.ip() {
        IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
        _ => None,
    }
}

impl Ctx {
    fn stopping(&self) -> bool {
        self.signal.stopping()
    }

    fn with_status(&self, f: impl FnOnce(&mut PortmapStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }

    /// Tells the sans-IO node its mapped address (or that it has none).
    fn tell_node(&self, addr: Option<SocketAddr>) {
        if self.commands.send(Command::PortMapped(addr)).is_ok() {
            self.shared.waker.wake();
        }
    }

    fn mapped(&self, protocol: &'static str, external: SocketAddr, lifetime: u32, renewal: bool) {
        let mut changed = false;
        self.with_status(|s| {
            changed = s.external != Some(external);
            s.protocol = Some(protocol);
            s.external = Some(external);
            s.lifetime_sec = lifetime;
            if renewal {
                s.renewed += 1;
            } else {
                s.created += 1;
            }
        });
        if changed {
            tracing::info!(protocol, %external, lifetime, "port mapped");
            self.tell_node(Some(external));
        }
    }

    fn unmapped(&self) {
        let mut was = false;
        self.with_status(|s| {
            was = s.external.is_some();
            s.protocol = None;
            s.external = None;
            s.lifetime_sec = 0;
        });
        if was {
            self.tell_node(None);
        }
    }

    fn run(self, which: Protocols) {
        let mut wait = None;
        loop {
            let created_before = self.status.lock().map_or(0, |s| s.created);
            let turns: [(&'static str, bool); 3] = [
                ("pcp", which.pcp),
                ("natpmp", which.natpmp),
                ("upnp", which.upnp),
            ];
            for (name, on) in turns {
                if !on || self.stopping() {
                    continue;
                }
                let ended = match name {
                    "pcp" => {
                        let mut seed = [0u8; 12];
                        let _ = getrandom::getrandom(&mut seed);
                        let p = Pcp {
                            client_ip: IpAddr::V4(self.local_ip),
                            nonce: seed,
                        };
                        self.run_udp(name, p, None)
                    }
                    "natpmp" => match crate::nat::gateway_report(self.gateway) {
                        Some(moss_nat::classify::GatewayReport::External(IpAddr::V4(ip))) => {
                            self.run_udp(name, NatPmp, Some(ip))
                        }
                        Some(_) => Ended::Failed("NAT-PMP gateway has no public address".into()),
                        None => Ended::Failed("no NAT-PMP answer".into()),
                    },
                    _ => self.run_upnp(),
                };
                self.unmapped();
                match ended {
                    Ended::Stopped => return,
                    Ended::Failed(why) => {
                        tracing::info!(protocol = name, reason = %why, "port mapping failed");
                        self.with_status(|s| {
                            s.failures += 1;
                            s.last_error = Some(format!("{name}: {why}"));
                        });
                    }
                }
            }
            let held = self.status.lock().map_or(0, |s| s.created) != created_before;
            let w = next_retry(wait, held, self.retry_first);
            wait = Some(w);
            match self.signal.wait(w) {
                Woke::Stop => return,
                // The gateway (its mapping service started, or restarted): try now.
                Woke::Heard(a) => {
                    tracing::info!(?a, "port mapping: asking the announcing gateway now")
                }
                Woke::Timeout => {}
            }
        }
    }

    /// One NAT-PMP or PCP mapping through the shared client: create, renew
    /// at half-life, delete at stop. `external_ip` is the gateway's address
    /// when the protocol's grants do not carry it (NAT-PMP).
    fn run_udp<P: MappingProtocol>(
        &self,
        name: &'static str,
        proto: P,
        mut external_ip: Option<Ipv4Addr>,
    ) -> Ended {
        let sock = match UdpSocket::bind((self.local_ip, 0)).and_then(|s| {
            s.connect((self.gateway, moss_nat::natpmp::SERVER_PORT))?;
            s.set_read_timeout(Some(TICK))?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => return Ended::Failed(format!("socket: {e}")),
        };
        let mut client = MappingClient::new(proto, self.port, self.lifetime, UDP_ATTEMPTS);
        let mut buf = [0u8; moss_nat::pcp::MAX_MESSAGE];
        let mut renewing = false;
        let mut stopping = false;
        let mut stop_by = None;
        loop {
            if self.stopping() && !stopping {
                stopping = true;
                stop_by = Some(Instant::now() + DELETE_TIMEOUT);
                client.stop();
            }
            if stop_by.is_some_and(|t| Instant::now() >= t) {
                // The gateway did not confirm the deletion in time: the
                // lease ends it.
                return Ended::Stopped;
            }
            let now = Instant::now();
            if let Some(a) = self.signal.take(now) {
                // A restart or a new external address: ask (renew) now;
                // the reply reports the address.
                if let Some(ip) = a.address() {
                    external_ip = Some(ip);
                }
                client.ask_now();
            }
            while let Some(req) = client.poll_transmit(now) {
                renewing = matches!(client.state(), MappingState::Mapped { .. });
                self.with_status(|s| s.requests += 1);
                // A send error is a lost request: the retransmission timer covers it.
                let _ = sock.send(&req);
            }
            match client.state() {
                MappingState::Stopped => {
                    if stopping {
                        self.with_status(|s| s.deleted += 1);
                        return Ended::Stopped;
                    }
                    return Ended::Failed("the gateway removed the mapping".into());
                }
                MappingState::Failed(code) => {
                    if stopping {
                        return Ended::Stopped;
                    }
                    return Ended::Failed(match code {
                        Some(c) => format!("refused, result code {c}"),
                        None => "no answer".into(),
                    });
                }
                _ => {}
            }
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let before = client.state();
                    if client.handle_datagram(Instant::now(), &buf[..n]).is_err() {
                        self.with_status(|s| s.malformed += 1);
                    }
                    if let MappingState::Mapped {
                        external_port,
                        lifetime,
                    } = client.state()
                    {
                        let created = !matches!(before, MappingState::Mapped { .. });
                        if created || std::mem::take(&mut renewing) {
                            let ip = client
                                .external_ip()
                                .or(external_ip.map(IpAddr::V4))
                                .unwrap_or(IpAddr::V4(self.gateway));
                            let at = SocketAddr::new(ip, external_port);
                            self.mapped(name, at, lifetime, !created);
                        }
                    }
                }
                Err(_) => client.handle_timeout(Instant::now()),
            }
            client.handle_timeout(Instant::now());
        }
    }

    /// One UPnP IGD mapping: SSDP search, description, external address,
    /// AddPortMapping, renewed at half the lease, DeletePortMapping at stop.
    fn run_upnp(&self) -> Ended {
        let ctl = match self.upnp_control() {
            Ok(c) => c,
            Err(e) => return Ended::Failed(e),
        };
        let ip = match self.soap(&ctl, &Action::GetExternalIp) {
            Ok(Some(ip)) => ip,
            Ok(None) => return Ended::Failed("no external address".into()),
            Err(e) => return Ended::Failed(format!("GetExternalIPAddress: {e}")),
        };
        let mut lease = self.lifetime;
        let mut port = None;
        for ext in (0..UPNP_PORT_TRIES).filter_map(|i| self.port.checked_add(i)) {
            let add = |lease| Action::AddUdp {
                external_port: ext,
                internal_port: self.port,
                client: self.local_ip,
                lease,
            };
            self.with_status(|s| s.requests += 1);
            let mut r = self.soap(&ctl, &add(lease));
            if fault(&r, UPNP_PERMANENT_ONLY) {
                lease = 0;
                self.with_status(|s| s.requests += 1);
                r = self.soap(&ctl, &add(lease));
            }
            match &r {
                Ok(_) => {
                    port = Some(ext);
                    break;
                }
                Err(_) if fault(&r, UPNP_CONFLICT) => continue,
                Err(e) => return Ended::Failed(format!("AddPortMapping: {e}")),
            }
        }
        let Some(ext) = port else {
            return Ended::Failed("every external port tried is taken".into());
        };
        let mut external = SocketAddr::new(IpAddr::V4(ip), ext);
        self.mapped("upnp", external, lease, false);
        // A permanent lease is still refreshed, every default half-lifetime.
        let half =
            Duration::from_secs(u64::from(if lease == 0 { self.lifetime } else { lease })) / 2;
        loop {
            let woke = self.signal.wait(half);
            if woke == Woke::Stop {
                self.with_status(|s| s.requests += 1);
                if self
                    .soap_within(
                        &ctl,
                        &Action::DeleteUdp { external_port: ext },
                        DELETE_TIMEOUT,
                    )
                    .is_ok()
                {
                    self.with_status(|s| s.deleted += 1);
                }
                return Ended::Stopped;
            }
            if matches!(woke, Woke::Heard(_)) {
                // An announcement: the external address may have changed.
                match self.soap(&ctl, &Action::GetExternalIp) {
                    Ok(Some(ip)) => external.set_ip(IpAddr::V4(ip)),
                    Ok(None) => return Ended::Failed("no external address".into()),
                    Err(e) => return Ended::Failed(format!("GetExternalIPAddress: {e}")),
                }
            }
            self.with_status(|s| s.requests += 1);
            let renew = Action::AddUdp {
                external_port: ext,
                internal_port: self.port,
                client: self.local_ip,
                lease,
            };
            if let Err(e) = self.soap(&ctl, &renew) {
                return Ended::Failed(format!("renewal: {e}"));
            }
            self.mapped("upnp", external, lease, true);
        }
    }

    /// Finds the gateway's WAN connection service: an SSDP search answered
    /// by the gateway itself, then its description (both on the gateway's IP).
    fn upnp_control(&self) -> Result<Control, String> {
        let sock = UdpSocket::bind((self.local_ip, 0)).map_err(|e| format!("socket: {e}"))?;
        sock.set_read_timeout(Some(TICK))
            .map_err(|e| format!("socket: {e}"))?;
        let req = upnp::search_request();
        let _ = sock.send_to(&req, upnp::SSDP_ADDR);
        let _ = sock.send_to(
            &req,
            SocketAddrV4::new(self.gateway, upnp::SSDP_ADDR.port()),
        );
        let end = Instant::now() + SSDP_WAIT;
        let mut buf = [0u8; upnp::MAX_SSDP + 1];
        let loc = loop {
            if Instant::now() >= end || self.stopping() {
                return Err("no SSDP answer from the gateway".into());
            }
            match sock.recv_from(&mut buf) {
                Ok((n, from)) if from.ip() == IpAddr::V4(self.gateway) => {
                    match upnp::parse_search_response(&buf[..n]) {
                        Ok(l) if *l.addr.ip() == self.gateway => break l,
                        Ok(_) => self.with_status(|s| s.malformed += 1),
                        Err(_) => self.with_status(|s| s.malformed += 1),
                    }
                }
                _ => {}
            }
        };
        let body = http_exchange(loc.addr, &upnp::get_request(&loc), HTTP_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let r = upnp::parse_http(&body, upnp::MAX_HTTP).map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("description: HTTP {}", r.status));
        }
        upnp::parse_description(&r.body, &loc).map_err(|e| e.to_string())
    }

    fn soap(&self, ctl: &Control, action: &Action) -> Result<Option<Ipv4Addr>, SoapError> {
        self.soap_within(ctl, action, HTTP_TIMEOUT)
    }

    /// A SOAP action whose connect, write and read each take at most `timeout`.
    fn soap_within(
        &self,
        ctl: &Control,
        action: &Action,
        timeout: Duration,
    ) -> Result<Option<Ipv4Addr>, SoapError> {
        let reply =
            http_exchange(ctl.url.addr, &action.request(ctl), timeout).map_err(SoapError::Io)?;
        let r = action.parse_reply(&reply);
        if matches!(r, Err(ref e) if !matches!(e, UpnpError::Fault { .. })) {
            self.with_status(|s| s.malformed += 1);
        }
        r.map_err(SoapError::Upnp)
    }
}

/// One HTTP request over a fresh TCP connection; the answer up to
/// [`upnp::MAX_HTTP`] + 1 bytes (so an oversized one is seen as such).
fn http_exchange(to: SocketAddrV4, req: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::V4(to), timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(req)?;
    let mut out = Vec::new();
    s.take(upnp::MAX_HTTP as u64 + 1).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

    #[test]
    fn retries_start_at_10_s_double_to_300_s_and_restart_after_a_mapping() {
        let mut w = None;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let next = next_retry(w, false, RETRY_FIRST);
            seen.push(next.as_secs());
            w = Some(next);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(next_retry(w, true, RETRY_FIRST), RETRY_FIRST);
        // A longer first wait (the test knob) is not cut by the cap.
        let long = Duration::from_secs(600);
        assert_eq!(next_retry(Some(long), false, long), long);
    }

    fn shared() -> Arc<Shared> {
        Arc::new(Shared {
            peer_count: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            events_dropped: AtomicU64::new(0),
            messages_dropped: AtomicU64::new(0),
            next_subscription: AtomicU64::new(0),
            busy_poll: Duration::ZERO,
            waker: Arc::new(crate::io::NoWake),
            publish_buffers: crate::host::BufferPool::new(),
        })
    }

    /// A UPnP gateway that answers SSDP on `ip` and then accepts the
    /// description request and never answers it (a gateway busy for far
    /// longer than the HTTP timeout): `stop` still returns within
    /// [`STOP_DEADLINE`] (plus scheduling), not after the exchange's
    /// [`HTTP_TIMEOUT`], and the status says the deletion was left.
    #[test]
    fn stop_is_bounded_with_a_gateway_that_never_answers() {
        // A loopback address of its own, so parallel runs do not share 1900.
        let pid = std::process::id();
        let ip = Ipv4Addr::new(127, 77, (pid >> 8) as u8, (pid as u8).max(2));
        let Ok(ssdp) = UdpSocket::bind((ip, upnp::SSDP_ADDR.port())) else {
            panic!("cannot bind {ip}:1900 for the test gateway");
        };
        let http = TcpListener::bind((ip, 0)).unwrap();
        let loc = http.local_addr().unwrap();
        let accepted = Arc::new(AtomicBool::new(false));
        let flag = accepted.clone();
        let gateway = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            ssdp.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let Ok((_, from)) = ssdp.recv_from(&mut buf) else {
                return;
            };
            let answer = format!(
                "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://{loc}/rootDesc.xml\r\n\r\n"
            );
            let _ = ssdp.send_to(answer.as_bytes(), from);
            // Accept, then hold the connection unanswered for 20 s.
            if let Ok((conn, _)) = http.accept() {
                flag.store(true, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(20));
                drop(conn);
            }
        });
        let (tx, _rx) = crossbeam_channel::bounded(16);
        let which = Protocols {
            pcp: false,
            natpmp: false,
            upnp: true,
        };
        let mut pm = Portmap::start_on(
            which,
            ip,
            Ipv4Addr::LOCALHOST,
            41999,
            (Duration::from_secs(60), RETRY_FIRST),
            tx,
            shared(),
        )
        .unwrap();
        for _ in 0..200 {
            if accepted.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(
            accepted.load(Ordering::SeqCst),
            "the node never asked the gateway"
        );
        let t = Instant::now();
        pm.stop();
        let took = t.elapsed();
        assert!(took < HTTP_TIMEOUT, "stop waited for the gateway: {took:?}");
        assert!(pm.status().stop_abandoned);
        drop(gateway);
    }
}
