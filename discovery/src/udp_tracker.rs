//! BEP 15 UDP tracker protocol: wire codec and a sans-IO client state machine.
//!
//! The [`UdpTrackerClient`] owns no socket and no clock: the driver feeds it
//! [`UdpTrackerClient::handle_timeout`] and [`UdpTrackerClient::handle_datagram`]
//! with the current [`Instant`], sends what [`UdpTrackerClient::poll_transmit`]
//! returns to the tracker, and reads results from
//! [`UdpTrackerClient::poll_event`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::clock::later;
use crate::compact::{parse_compact, CompactPeers, PeerFamily};
use crate::rng::SplitMix64;

/// Magic `protocol_id` of a connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;
/// Action code: connect.
pub const ACTION_CONNECT: u32 = 0;
/// Action code: announce.
pub const ACTION_ANNOUNCE: u32 = 1;
/// Action code: scrape (not used by Moss; decoded only to reject it by name).
pub const ACTION_SCRAPE: u32 = 2;
/// Action code: error.
pub const ACTION_ERROR: u32 = 3;
/// Length of a connect request.
pub const CONNECT_REQUEST_LEN: usize = 16;
/// Length of an announce request (IPv4 layout, no extensions).
pub const ANNOUNCE_REQUEST_LEN: usize = 98;
/// How long a connection id may be used after it was received (BEP 15: one minute).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(60);
/// Longest error message kept from an error response, in bytes.
pub const MAX_ERROR_MESSAGE: usize = 512;

/// The `event` field of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceEvent {
    /// Periodic announce (0).
    None,
    /// Download finished (1); Moss never sends it.
    Completed,
    /// First announce of a session (2).
    Started,
    /// Leaving the swarm (3).
    Stopped,
}

impl AnnounceEvent {
    /// BEP 15 numeric code.
    pub fn code(self) -> u32 {
        match self {
            AnnounceEvent::None => 0,
            AnnounceEvent::Completed => 1,
            AnnounceEvent::Started => 2,
            AnnounceEvent::Stopped => 3,
        }
    }

    /// BEP 3 `event=` query value (`None` for periodic announces).
    pub fn http_name(self) -> Option<&'static str> {
        match self {
            AnnounceEvent::None => None,
            AnnounceEvent::Completed => Some("completed"),
            AnnounceEvent::Started => Some("started"),
            AnnounceEvent::Stopped => Some("stopped"),
        }
    }
}

/// Encodes a connect request.
pub fn encode_connect(transaction_id: u32) -> [u8; CONNECT_REQUEST_LEN] {
    let mut out = [0u8; CONNECT_REQUEST_LEN];
    out[0..8].copy_from_slice(&PROTOCOL_ID.to_be_bytes());
    out[8..12].copy_from_slice(&ACTION_CONNECT.to_be_bytes());
    out[12..16].copy_from_slice(&transaction_id.to_be_bytes());
    out
}

/// The fields of an announce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// From the connect response.
    pub connection_id: u64,
    /// Random, echoed by the tracker.
    pub transaction_id: u32,
    /// The rendezvous key.
    pub info_hash: [u8; 20],
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// Bytes downloaded (Moss: 0).
    pub downloaded: u64,
    /// Bytes left (Moss: 1, so trackers treat us as a leecher and return peers).
    pub left: u64,
    /// Bytes uploaded (Moss: 0).
    pub uploaded: u64,
    /// started / periodic.
    pub event: AnnounceEvent,
    /// Random per session, lets the tracker recognise us across IP changes.
    pub key: u32,
    /// How many peers we want (Moss: 50).
    pub num_want: u32,
    /// Our listen port.
    pub port: u16,
}

impl AnnounceRequest {
    /// Encodes the 98-byte request (the `ip` field is 0: the tracker uses the source address).
    pub fn encode(&self) -> [u8; ANNOUNCE_REQUEST_LEN] {
        let mut out = [0u8; ANNOUNCE_REQUEST_LEN];
        out[0..8].copy_from_slice(&self.connection_id.to_be_bytes());
        out[8..12].copy_from_slice(&ACTION_ANNOUNCE.to_be_bytes());
        out[12..16].copy_from_slice(&self.transaction_id.to_be_bytes());
        out[16..36].copy_from_slice(&self.info_hash);
        out[36..56].copy_from_slice(&self.peer_id);
        out[56..64].copy_from_slice(&self.downloaded.to_be_bytes());
        out[64..72].copy_from_slice(&self.left.to_be_bytes());
        out[72..80].copy_from_slice(&self.uploaded.to_be_bytes());
        out[80..84].copy_from_slice(&self.event.code().to_be_bytes());
        // 84..88: ip = 0
        out[88..92].copy_from_slice(&self.key.to_be_bytes());
        out[92..96].copy_from_slice(&self.num_want.to_be_bytes());
        out[96..98].copy_from_slice(&self.port.to_be_bytes());
        out
    }
}

/// A decoded tracker response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answer to a connect request.
    Connect {
        /// Echoed transaction id.
        transaction_id: u32,
        /// Connection id to use in announces.
        connection_id: u64,
    },
    /// Answer to an announce.
    Announce {
        /// Echoed transaction id.
        transaction_id: u32,
        /// Seconds the tracker wants between announces.
        interval: u32,
        /// Leechers in the swarm.
        leechers: u32,
        /// Seeders in the swarm.
        seeders: u32,
        /// The peers (capped).
        peers: CompactPeers,
    },
    /// The tracker refused the request.
    Error {
        /// Echoed transaction id.
        transaction_id: u32,
        /// Human-readable reason (lossy UTF-8, at most [`MAX_ERROR_MESSAGE`] bytes).
        message: String,
    },
}

impl Response {
    /// The transaction id the response carries.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Response::Connect { transaction_id, .. }
            | Response::Announce { transaction_id, .. }
            | Response::Error { transaction_id, .. } => *transaction_id,
        }
    }
}

/// Why a datagram is not a valid tracker response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than 8 bytes (no action and transaction id).
    #[error("datagram too short for a header")]
    TooShort,
    /// A connect response shorter than 16 bytes.
    #[error("connect response too short")]
    ConnectTooShort,
    /// An announce response shorter than 20 bytes.
    #[error("announce response too short")]
    AnnounceTooShort,
    /// A scrape response (Moss never scrapes).
    #[error("unexpected scrape response")]
    Scrape,
    /// An action code outside 0..=3.
    #[error("unknown action {0}")]
    UnknownAction(u32),
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(w)
}

/// Decodes a tracker response; `family` is the address family of the tracker
/// (IPv6 trackers return 18-byte peers), `max_peers` caps the peer list.
pub fn decode_response(
    bytes: &[u8],
    family: PeerFamily,
    max_peers: usize,
) -> Result<Response, DecodeError> {
    if bytes.len() < 8 {
        return Err(DecodeError::TooShort);
    }
    let action = be_u32(bytes, 0);
    let transaction_id = be_u32(bytes, 4);
    match action {
        ACTION_CONNECT => {
            if bytes.len() < 16 {
                return Err(DecodeError::ConnectTooShort);
            }
            let mut id = [0u8; 8];
            id.copy_from_slice(&bytes[8..16]);
            Ok(Response::Connect {
                transaction_id,
                connection_id: u64::from_be_bytes(id),
            })
        }
        ACTION_ANNOUNCE => {
            if bytes.len() < 20 {
                return Err(DecodeError::AnnounceTooShort);
            }
            Ok(Response::Announce {
                transaction_id,
                interval: be_u32(bytes, 8),
                leechers: be_u32(bytes, 12),
                seeders: be_u32(bytes, 16),
                peers: parse_compact(&bytes[20..], family, max_peers),
            })
        }
        ACTION_SCRAPE => Err(DecodeError::Scrape),
        ACTION_ERROR => {
            let raw = &bytes[8..];
            let raw = &raw[..raw.len().min(MAX_ERROR_MESSAGE)];
            Ok(Response::Error {
                transaction_id,
                message: String::from_utf8_lossy(raw).into_owned(),
            })
        }
        other => Err(DecodeError::UnknownAction(other)),
    }
}

/// Timing and announce parameters of a [`UdpTrackerClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpTrackerConfig {
    /// Our configured announce interval; the tracker's interval is used when shorter.
    pub announce_interval: Duration,
    /// Floor for the interval a tracker asks for (a tracker answering 0 must not make us spin).
    pub min_interval: Duration,
    /// First retransmission timeout (BEP 15: 15 s); doubles on each retransmission.
    pub retransmit_base: Duration,
    /// Retransmissions before a request is given up. BEP 15 allows up to 8
    /// (3840 s); Moss defaults to 3 (15+30+60+120 s) so a dead tracker is
    /// reported within four minutes, and retries at the next announce.
    pub max_retransmits: u32,
    /// Peers requested (`num_want`).
    pub num_want: u32,
    /// Largest peer list accepted from one response.
    pub max_peers: usize,
}

impl Default for UdpTrackerConfig {
    fn default() -> Self {
        Self {
            announce_interval: Duration::from_secs(120),
            min_interval: Duration::from_secs(1),
            retransmit_base: Duration::from_secs(15),
            max_retransmits: 3,
            num_want: 50,
            max_peers: 200,
        }
    }
}

/// What the client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpTrackerEvent {
    /// An announce succeeded.
    Announced {
        /// Peers returned (capped at [`UdpTrackerConfig::max_peers`]).
        peers: Vec<SocketAddr>,
        /// Peers beyond the cap that were dropped.
        truncated: usize,
        /// Interval until the next announce (min of the tracker's and ours).
        interval: Duration,
    },
    /// An announce cycle failed; the next one is scheduled after the configured interval.
    Failed(Failure),
}

/// Why an announce cycle failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No connect response after all retransmissions.
    #[error("connect timed out after {attempts} attempts")]
    ConnectTimeout {
        /// Requests sent.
        attempts: u32,
    },
    /// No announce response after all retransmissions.
    #[error("announce timed out after {attempts} attempts")]
    AnnounceTimeout {
        /// Requests sent.
        attempts: u32,
    },
    /// The tracker answered with an error action.
    #[error("tracker error: {0}")]
    TrackerError(String),
}

/// Why a datagram was ignored by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not a valid response.
    #[error("malformed response: {0}")]
    Malformed(#[from] DecodeError),
    /// No request is outstanding.
    #[error("no request outstanding")]
    Unsolicited,
    /// The transaction id is not the one of the outstanding request.
    #[error("transaction id mismatch")]
    TransactionMismatch,
    /// A connect response to an announce or vice versa.
    #[error("response action does not match the request")]
    ActionMismatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Idle {
        next_at: Instant,
    },
    Connecting {
        tx: u32,
        sent_at: Instant,
        attempt: u32,
    },
    Announcing {
        tx: u32,
        sent_at: Instant,
        attempt: u32,
    },
}

/// Sans-IO BEP 15 client for one tracker: connect → announce, periodic re-announce.
#[derive(Debug, Clone)]
pub struct UdpTrackerClient {
    config: UdpTrackerConfig,
    family: PeerFamily,
    info_hash: [u8; 20],
    peer_id: [u8; 20],
    port: u16,
    key: u32,
    rng: SplitMix64,
    connection: Option<(u64, Instant)>,
    started_sent: bool,
    stage: Stage,
    transmit: Option<Vec<u8>>,
    events: VecDeque<UdpTrackerEvent>,
}

impl UdpTrackerClient {
    /// A client whose first announce (event `started`) is due at `now`.
    ///
    /// `seed` feeds transaction ids and the announce key.
    pub fn new(
        config: UdpTrackerConfig,
        family: PeerFamily,
        info_hash: [u8; 20],
        peer_id: [u8; 20],
        port: u16,
        seed: u64,
        now: Instant,
    ) -> Self {
        let mut rng = SplitMix64::new(seed);
        let key = rng.next_u32();
        Self {
            config,
            family,
            info_hash,
            peer_id,
            port,
            key,
            rng,
            connection: None,
            started_sent: false,
            stage: Stage::Idle { next_at: now },
            transmit: None,
            events: VecDeque::new(),
        }
    }

    /// Changes the port announced from the next request on.
    pub fn set_port(&mut self, port: u16) {
        self.port = port;
    }

    /// The next instant at which [`Self::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Instant {
        match self.stage {
            Stage::Idle { next_at } => next_at,
            Stage::Connecting {
                sent_at, attempt, ..
            }
            | Stage::Announcing {
                sent_at, attempt, ..
            } => later(sent_at, self.retransmit_after(attempt)),
        }
    }

    /// The next datagram to send to the tracker, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.take()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<UdpTrackerEvent> {
        self.events.pop_front()
    }

    /// Advances timers: starts a due announce, retransmits, or gives up.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.poll_timeout() {
            return;
        }
        match self.stage {
            Stage::Idle { .. } => self.begin(now, 0),
            Stage::Connecting { attempt, .. } => {
                if attempt >= self.config.max_retransmits {
                    self.fail(
                        now,
                        Failure::ConnectTimeout {
                            attempts: attempt + 1,
                        },
                    );
                } else {
                    self.send_connect(now, attempt + 1);
                }
            }
            Stage::Announcing { attempt, .. } => {
                if attempt >= self.config.max_retransmits {
                    self.connection = None;
                    self.fail(
                        now,
                        Failure::AnnounceTimeout {
                            attempts: attempt + 1,
                        },
                    );
                } else {
                    self.begin(now, attempt + 1);
                }
            }
        }
    }

    /// Processes a datagram received from the tracker.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), Rejected> {
        let response = decode_response(bytes, self.family, self.config.max_peers)?;
        let (expected_tx, connecting) = match self.stage {
            Stage::Idle { .. } => return Err(Rejected::Unsolicited),
            Stage::Connecting { tx, .. } => (tx, true),
            Stage::Announcing { tx, .. } => (tx, false),
        };
        if response.transaction_id() != expected_tx {
            return Err(Rejected::TransactionMismatch);
        }
        match (response, connecting) {
            (Response::Connect { connection_id, .. }, true) => {
                self.connection = Some((connection_id, now));
                self.send_announce(now, connection_id, 0);
                Ok(())
            }
            (
                Response::Announce {
                    interval, peers, ..
                },
                false,
            ) => {
                let tracker = Duration::from_secs(u64::from(interval));
                let interval = tracker
                    .min(self.config.announce_interval)
                    .max(self.config.min_interval);
                self.started_sent = true;
                self.stage = Stage::Idle {
                    next_at: later(now, interval),
                };
                self.events.push_back(UdpTrackerEvent::Announced {
                    peers: peers.peers,
                    truncated: peers.truncated,
                    interval,
                });
                Ok(())
            }
            (Response::Error { message, .. }, _) => {
                self.connection = None;
                self.fail(now, Failure::TrackerError(message));
                Ok(())
            }
            _ => Err(Rejected::ActionMismatch),
        }
    }

    fn retransmit_after(&self, attempt: u32) -> Duration {
        self.config
            .retransmit_base
            .saturating_mul(1u32 << attempt.min(8))
    }

    fn begin(&mut self, now: Instant, attempt: u32) {
        match self.connection {
            Some((id, got_at))
                if now.saturating_duration_since(got_at) < CONNECTION_ID_LIFETIME =>
            {
                self.send_announce(now, id, attempt)
            }
            _ => {
                self.connection = None;
                self.send_connect(now, attempt)
            }
        }
    }

    fn send_connect(&mut self, now: Instant, attempt: u32) {
        let tx = self.rng.next_u32();
        self.transmit = Some(encode_connect(tx).to_vec());
        self.stage = Stage::Connecting {
            tx,
            sent_at: now,
            attempt,
        };
    }

    fn send_announce(&mut self, now: Instant, connection_id: u64, attempt: u32) {
        let tx = self.rng.next_u32();
        let request = AnnounceRequest {
            connection_id,
            transaction_id: tx,
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            downloaded: 0,
            left: 1,
            uploaded: 0,
            event: if self.started_sent {
                AnnounceEvent::None
            } else {
                AnnounceEvent::Started
            },
            key: self.key,
            num_want: self.config.num_want,
            port: self.port,
        };
        self.transmit = Some(request.encode().to_vec());
        self.stage = Stage::Announcing {
            tx,
            sent_at: now,
            attempt,
        };
    }

    fn fail(&mut self, now: Instant, failure: Failure) {
        self.transmit = None;
        self.stage = Stage::Idle {
            next_at: later(now, self.config.announce_interval),
        };
        self.events.push_back(UdpTrackerEvent::Failed(failure));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IH: [u8; 20] = [7u8; 20];
    const PID: [u8; 20] = *b"-MS0100-abcdefghijkl";

    fn client(now: Instant) -> UdpTrackerClient {
        UdpTrackerClient::new(
            UdpTrackerConfig::default(),
            PeerFamily::V4,
            IH,
            PID,
            4000,
            1,
            now,
        )
    }

    fn connect_reply(req: &[u8], conn: u64) -> Vec<u8> {
        let mut r = vec![0, 0, 0, 0];
        r.extend_from_slice(&req[12..16]);
        r.extend_from_slice(&conn.to_be_bytes());
        r
    }

    fn announce_reply(req: &[u8], interval: u32, peers: &[u8]) -> Vec<u8> {
        let mut r = vec![0, 0, 0, 1];
        r.extend_from_slice(&req[12..16]);
        r.extend_from_slice(&interval.to_be_bytes());
        r.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
        r.extend_from_slice(peers);
        r
    }

    #[test]
    fn announce_request_layout() {
        let req = AnnounceRequest {
            connection_id: 0x0102030405060708,
            transaction_id: 0xAABBCCDD,
            info_hash: IH,
            peer_id: PID,
            downloaded: 0,
            left: 1,
            uploaded: 0,
            event: AnnounceEvent::Started,
            key: 0x11223344,
            num_want: 50,
            port: 0x1F90,
        }
        .encode();
        assert_eq!(&req[0..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&req[8..12], &[0, 0, 0, 1]);
        assert_eq!(&req[12..16], &[0xAA, 0xBB, 0xCC, 0xDD]);
        assert_eq!(&req[16..36], &IH);
        assert_eq!(&req[36..56], &PID);
        assert_eq!(&req[56..64], &[0; 8]);
        assert_eq!(&req[64..72], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&req[80..84], &[0, 0, 0, 2]);
        assert_eq!(&req[84..88], &[0; 4]);
        assert_eq!(&req[88..92], &[0x11, 0x22, 0x33, 0x44]);
        assert_eq!(&req[92..96], &[0, 0, 0, 50]);
        assert_eq!(&req[96..98], &[0x1F, 0x90]);
        let c = encode_connect(5);
        assert_eq!(
            c,
            [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0, 0, 0, 5]
        );
    }

    #[test]
    fn decodes_responses() {
        assert_eq!(
            decode_response(&[0; 7], PeerFamily::V4, 50),
            Err(DecodeError::TooShort)
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 0, 0, 0, 0, 9, 1], PeerFamily::V4, 50),
            Err(DecodeError::ConnectTooShort)
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 1, 0, 0, 0, 9, 1], PeerFamily::V4, 50),
            Err(DecodeError::AnnounceTooShort)
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 2, 0, 0, 0, 9], PeerFamily::V4, 50),
            Err(DecodeError::Scrape)
        );
        assert_eq!(
            decode_response(&[0, 0, 0, 7, 0, 0, 0, 9], PeerFamily::V4, 50),
            Err(DecodeError::UnknownAction(7))
        );
        let err = decode_response(b"\0\0\0\x03\0\0\0\x09bad \xffhash", PeerFamily::V4, 50).unwrap();
        assert_eq!(
            err,
            Response::Error {
                transaction_id: 9,
                message: "bad \u{fffd}hash".into()
            }
        );
        let mut v6 = vec![0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0];
        v6.extend_from_slice(&[0; 15]);
        v6.extend_from_slice(&[1, 0x1a, 0xe1]);
        match decode_response(&v6, PeerFamily::V6, 50).unwrap() {
            Response::Announce {
                peers, interval, ..
            } => {
                assert_eq!(interval, 60);
                assert_eq!(peers.peers, vec!["[::1]:6881".parse().unwrap()]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn connect_then_announce_then_periodic() {
        let t0 = Instant::now();
        let mut c = client(t0);
        assert!(c.poll_transmit().is_none());
        c.handle_timeout(t0);
        let conn_req = c.poll_transmit().unwrap();
        assert_eq!(conn_req.len(), 16);
        assert_eq!(&conn_req[0..8], &PROTOCOL_ID.to_be_bytes());
        // A reply with the wrong transaction id is rejected.
        let mut wrong = connect_reply(&conn_req, 99);
        wrong[7] ^= 1;
        assert_eq!(
            c.handle_datagram(t0, &wrong),
            Err(Rejected::TransactionMismatch)
        );
        c.handle_datagram(t0, &connect_reply(&conn_req, 99))
            .unwrap();
        let ann = c.poll_transmit().unwrap();
        assert_eq!(ann.len(), 98);
        assert_eq!(&ann[0..8], &99u64.to_be_bytes());
        assert_eq!(
            &ann[80..84],
            &2u32.to_be_bytes(),
            "first announce is `started`"
        );
        assert_eq!(&ann[64..72], &1u64.to_be_bytes(), "left = 1");
        assert_eq!(&ann[92..96], &50u32.to_be_bytes(), "num_want = 50");
        // A connect reply while announcing is an action mismatch.
        let mut stray = connect_reply(&ann, 5);
        stray[4..8].copy_from_slice(&ann[12..16]);
        assert_eq!(c.handle_datagram(t0, &stray), Err(Rejected::ActionMismatch));
        c.handle_datagram(t0, &announce_reply(&ann, 1800, &[127, 0, 0, 1, 0x1f, 0x90]))
            .unwrap();
        match c.poll_event().unwrap() {
            UdpTrackerEvent::Announced {
                peers, interval, ..
            } => {
                assert_eq!(peers, vec!["127.0.0.1:8080".parse().unwrap()]);
                assert_eq!(
                    interval,
                    Duration::from_secs(120),
                    "min(tracker 1800, ours 120)"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.poll_timeout(), t0 + Duration::from_secs(120));
        assert_eq!(
            c.handle_datagram(t0, &announce_reply(&ann, 1, &[])),
            Err(Rejected::Unsolicited)
        );
        // 120 s later the connection id (60 s lifetime) has expired: connect again.
        let t1 = t0 + Duration::from_secs(120);
        c.handle_timeout(t1);
        let conn2 = c.poll_transmit().unwrap();
        assert_eq!(conn2.len(), 16);
        c.handle_datagram(t1, &connect_reply(&conn2, 7)).unwrap();
        let ann2 = c.poll_transmit().unwrap();
        assert_eq!(
            &ann2[80..84],
            &0u32.to_be_bytes(),
            "periodic announce has event none"
        );
        // A shorter tracker interval wins.
        c.handle_datagram(t1, &announce_reply(&ann2, 30, &[]))
            .unwrap();
        assert_eq!(c.poll_timeout(), t1 + Duration::from_secs(30));
    }

    #[test]
    fn reuses_fresh_connection_id() {
        let t0 = Instant::now();
        let cfg = UdpTrackerConfig {
            announce_interval: Duration::from_secs(10),
            ..UdpTrackerConfig::default()
        };
        let mut c = UdpTrackerClient::new(cfg, PeerFamily::V4, IH, PID, 1, 2, t0);
        c.handle_timeout(t0);
        let req = c.poll_transmit().unwrap();
        c.handle_datagram(t0, &connect_reply(&req, 42)).unwrap();
        let ann = c.poll_transmit().unwrap();
        c.handle_datagram(t0, &announce_reply(&ann, 10, &[]))
            .unwrap();
        let t1 = t0 + Duration::from_secs(10);
        c.handle_timeout(t1);
        let next = c.poll_transmit().unwrap();
        assert_eq!(
            next.len(),
            98,
            "connection id still valid: announce directly"
        );
        assert_eq!(&next[0..8], &42u64.to_be_bytes());
    }

    #[test]
    fn retransmits_with_backoff_then_fails() {
        let t0 = Instant::now();
        let mut c = client(t0);
        c.handle_timeout(t0);
        let mut sent = vec![c.poll_transmit().unwrap()];
        let mut t = t0;
        for n in 0..3u32 {
            let wait = Duration::from_secs(15 * (1 << n));
            assert_eq!(c.poll_timeout(), t + wait);
            c.handle_timeout(t + wait - Duration::from_millis(1));
            assert!(c.poll_transmit().is_none(), "no retransmit before 15*2^n");
            t += wait;
            c.handle_timeout(t);
            sent.push(c.poll_transmit().unwrap());
        }
        // Fresh transaction id on every retransmission.
        assert_ne!(sent[0][12..16], sent[1][12..16]);
        t += Duration::from_secs(120);
        c.handle_timeout(t);
        assert!(c.poll_transmit().is_none());
        assert_eq!(
            c.poll_event(),
            Some(UdpTrackerEvent::Failed(Failure::ConnectTimeout {
                attempts: 4
            }))
        );
        assert_eq!(c.poll_timeout(), t + Duration::from_secs(120));
    }

    #[test]
    fn error_action_fails_the_cycle() {
        let t0 = Instant::now();
        let mut c = client(t0);
        c.handle_timeout(t0);
        let req = c.poll_transmit().unwrap();
        let mut err = vec![0, 0, 0, 3];
        err.extend_from_slice(&req[12..16]);
        err.extend_from_slice(b"unregistered torrent");
        c.handle_datagram(t0, &err).unwrap();
        assert_eq!(
            c.poll_event(),
            Some(UdpTrackerEvent::Failed(Failure::TrackerError(
                "unregistered torrent".into()
            )))
        );
        // The next cycle still starts with `started`.
        let t1 = c.poll_timeout();
        c.handle_timeout(t1);
        let req = c.poll_transmit().unwrap();
        c.handle_datagram(t1, &connect_reply(&req, 3)).unwrap();
        let ann = c.poll_transmit().unwrap();
        assert_eq!(&ann[80..84], &2u32.to_be_bytes());
    }
}
