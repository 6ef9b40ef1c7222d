//! Tracker worker threads: one per tracker URL, so a hanging tracker blocks only itself.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::later;
use crate::compact::PeerFamily;
use crate::http_tracker::{self, FetchLimits, HttpAnnounceParams, HttpTrackerError};
use crate::runner::{DiscoveryConfig, Source};
use crate::sink::Shared;
use crate::tracker_url::{TrackerKind, TrackerUrl};
use crate::udp_tracker::{
    AnnounceEvent, Rejected, UdpTrackerClient, UdpTrackerConfig, UdpTrackerEvent,
};

/// Shortest interval honoured from a tracker.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest a worker blocks in one socket call before checking for stop.
const POLL_SLICE: Duration = Duration::from_millis(100);

pub(crate) struct TrackerJob {
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    pub(crate) url_text: String,
    pub(crate) url: TrackerUrl,
    pub(crate) infohash: [u8; 20],
    pub(crate) peer_id: [u8; 20],
    pub(crate) seed: u64,
    pub(crate) config: DiscoveryConfig,
}

impl TrackerJob {
    pub(crate) fn run(self) {
        match self.url.kind {
            TrackerKind::Udp => self.run_udp(),
            TrackerKind::Http => self.run_http(),
        }
    }

    fn fail(&self, error: String) {
        self.shared
            .tracker_failed(self.index, &self.url_text, error);
    }

    fn source(&self) -> Source {
        Source::Tracker(self.url_text.clone())
    }

    fn resolve(&self) -> Result<SocketAddr, String> {
        let host = self.url.host_port();
        let addrs: Vec<SocketAddr> = host
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        // Prefer IPv4: most trackers and most hosts have working IPv4.
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied()
            .ok_or_else(|| format!("cannot resolve {host}: no addresses"))
    }

    fn run_udp(self) {
        let interval = self.config.announce_interval;
        // Resolve and bind, retrying once per interval until it works.
        let (socket, family) = loop {
            if self.shared.stopping() {
                return;
            }
            let attempt = self.resolve().and_then(|addr| {
                let bind: SocketAddr = if addr.is_ipv4() {
                    SocketAddr::from(([0, 0, 0, 0], 0))
                } else {
                    SocketAddr::from(([0u16; 8], 0))
                };
                let socket = UdpSocket::bind(bind).map_err(|e| format!("bind: {e}"))?;
                socket.connect(addr).map_err(|e| format!("connect: {e}"))?;
                let family = if addr.is_ipv4() {
                    PeerFamily::V4
                } else {
                    PeerFamily::V6
                };
                Ok((socket, family))
            });
            match attempt {
                Ok(ok) => break ok,
                Err(e) => {
                    self.fail(e);
                    if !self.shared.sleep_until(later(Instant::now(), interval)) {
                        return;
                    }
                }
            }
        };
        let mut port = self.shared.port();
        let mut client = UdpTrackerClient::new(
            UdpTrackerConfig {
                announce_interval: interval,
                min_interval: MIN_INTERVAL,
                retransmit_base: self.config.udp_retransmit_base,
                max_retransmits: self.config.udp_max_retransmits,
                num_want: 50,
                max_peers: self.config.max_peers_per_response,
            },
            family,
            self.infohash,
            self.peer_id,
            port,
            self.seed,
            Instant::now(),
        );
        let mut buf = vec![0u8; 65536];
        let mut socket_error: Option<String> = None;
        while !self.shared.stopping() {
            let current = self.shared.port();
            if current != port {
                port = current;
                client.set_port(port);
            }
            let now = Instant::now();
            client.handle_timeout(now);
            while let Some(datagram) = client.poll_transmit() {
                // A send error (e.g. ICMP unreachable reported late) is treated
                // like a lost datagram: the retransmission timer covers it.
                let _ = socket.send(&datagram);
            }
            self.drain_udp_events(&mut client, &mut socket_error);
            let wait = client
                .poll_timeout()
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), POLL_SLICE);
            if socket.set_read_timeout(Some(wait)).is_err() {
                std::thread::sleep(wait);
                continue;
            }
            match socket.recv(&mut buf) {
                Ok(n) => {
                    if let Err(rejected) = client.handle_datagram(Instant::now(), &buf[..n]) {
                        let mut stats = self.shared.stats();
                        match rejected {
                            Rejected::Malformed(_) => stats.drops.malformed_tracker_responses += 1,
                            Rejected::Unsolicited
                            | Rejected::TransactionMismatch
                            | Rejected::ActionMismatch => {
                                stats.drops.unexpected_tracker_responses += 1
                            }
                        }
                    }
                    self.drain_udp_events(&mut client, &mut socket_error);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    // An ICMP error on the connected socket (e.g. port
                    // unreachable): the retransmission timer still decides,
                    // but the reason goes into the failure message.
                    socket_error = Some(e.to_string());
                }
            }
        }
    }

    fn drain_udp_events(&self, client: &mut UdpTrackerClient, socket_error: &mut Option<String>) {
        while let Some(event) = client.poll_event() {
            match event {
                UdpTrackerEvent::Announced {
                    peers,
                    truncated,
                    interval,
                } => {
                    *socket_error = None;
                    self.shared.tracker_ok(
                        self.index,
                        &self.url_text,
                        peers.len(),
                        truncated,
                        interval,
                    );
                    for peer in peers {
                        self.shared.offer(peer, self.source());
                    }
                }
                UdpTrackerEvent::Failed(failure) => match socket_error.take() {
                    Some(e) => self.fail(format!("{failure} (last socket error: {e})")),
                    None => self.fail(failure.to_string()),
                },
            }
        }
    }

    fn run_http(self) {
        let configured = self.config.announce_interval;
        let limits = FetchLimits {
            connect_timeout: self.config.http_connect_timeout,
            response_timeout: self.config.http_response_timeout,
            max_response: self.config.http_max_response,
        };
        let key = (self.seed >> 32) as u32;
        let mut started_sent = false;
        let mut next = Instant::now();
        loop {
            if !self.shared.sleep_until(next) {
                return;
            }
            let params = HttpAnnounceParams {
                info_hash: self.infohash,
                peer_id: self.peer_id,
                port: self.shared.port(),
                event: if started_sent {
                    AnnounceEvent::None
                } else {
                    AnnounceEvent::Started
                },
                num_want: 50,
                key,
            };
            let path = http_tracker::announce_path(&self.url, &params);
            let request = http_tracker::build_request(&self.url, &path);
            let result = http_tracker::fetch(&self.url, &request, limits, &self.shared.stop)
                .and_then(|raw| {
                    http_tracker::parse_response(&raw, self.config.max_peers_per_response)
                });
            next = later(Instant::now(), configured);
            match result {
                Ok(announce) => {
                    started_sent = true;
                    let interval = announce
                        .interval
                        .unwrap_or(configured)
                        .min(configured)
                        .max(MIN_INTERVAL);
                    next = later(Instant::now(), interval);
                    self.shared.tracker_ok(
                        self.index,
                        &self.url_text,
                        announce.peers.len(),
                        announce.truncated,
                        interval,
                    );
                    for peer in announce.peers {
                        self.shared.offer(peer, self.source());
                    }
                }
                Err(HttpTrackerError::Cancelled) => return,
                Err(e) => {
                    if matches!(
                        e,
                        HttpTrackerError::Bencode(_)
                            | HttpTrackerError::NotADict
                            | HttpTrackerError::BadPeers
                            | HttpTrackerError::InvalidInterval
                            | HttpTrackerError::NoHeaderEnd
                            | HttpTrackerError::BadStatusLine
                            | HttpTrackerError::BadChunk
                            | HttpTrackerError::BodyTruncated
                            | HttpTrackerError::ResponseTooLarge(_)
                    ) {
                        self.shared.stats().drops.malformed_tracker_responses += 1;
                    }
                    self.fail(e.to_string());
                }
            }
        }
    }
}
