//! BEP 3 HTTP tracker: announce URL building, response parsing, and a small
//! blocking HTTP/1.0 client over [`std::net::TcpStream`] with timeouts and a
//! response size cap.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::bencode::{self, BencodeError, Limits, Value};
use crate::clock::later;
use crate::compact::{parse_compact, PeerFamily};
use crate::tracker_url::TrackerUrl;
use crate::udp_tracker::AnnounceEvent;

/// Parameters of one HTTP announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpAnnounceParams {
    /// The rendezvous key.
    pub info_hash: [u8; 20],
    /// Our peer id.
    pub peer_id: [u8; 20],
    /// Our listen port.
    pub port: u16,
    /// started / periodic.
    pub event: AnnounceEvent,
    /// Peers requested (Moss: 50).
    pub num_want: u32,
    /// Random per session.
    pub key: u32,
}

/// Percent-encodes bytes, keeping only RFC 3986 unreserved characters.
pub fn percent_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// Path and query of an announce: the tracker URL's own path/query plus the
/// BEP 3 parameters (`uploaded=0`, `downloaded=0`, `left=1`, `compact=1`).
pub fn announce_path(url: &TrackerUrl, p: &HttpAnnounceParams) -> String {
    let sep = if url.path_and_query.contains('?') {
        '&'
    } else {
        '?'
    };
    let mut q = format!(
        "{}{sep}info_hash={}&peer_id={}&port={}&uploaded=0&downloaded=0&left=1&compact=1&numwant={}&key={:08x}",
        url.path_and_query,
        percent_encode(&p.info_hash),
        percent_encode(&p.peer_id),
        p.port,
        p.num_want,
        p.key,
    );
    if let Some(event) = p.event.http_name() {
        q.push_str("&event=");
        q.push_str(event);
    }
    q
}

/// The HTTP/1.0 GET request for `path_and_query` on `url`'s host.
pub fn build_request(url: &TrackerUrl, path_and_query: &str) -> Vec<u8> {
    let host = if url.port == 80 {
        if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        }
    } else {
        url.host_port()
    };
    format!(
        "GET {path_and_query} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: moss-discovery/{}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .into_bytes()
}

/// A successful announce response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpAnnounce {
    /// Peers from `peers` and `peers6` (capped).
    pub peers: Vec<SocketAddr>,
    /// Peers beyond the cap that were dropped.
    pub truncated: usize,
    /// The tracker's `interval`, if present.
    pub interval: Option<Duration>,
    /// The tracker's `warning message`, if present (lossy UTF-8, capped).
    pub warning: Option<String>,
}

/// Everything that can go wrong with an HTTP announce.
#[derive(Debug, thiserror::Error)]
pub enum HttpTrackerError {
    /// Host name resolution failed or gave no address.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// `host:port` that was looked up.
        host: String,
        /// The resolver's message.
        reason: String,
    },
    /// No resolved address accepted a TCP connection in time.
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    /// Sending the request failed.
    #[error("write failed: {0}")]
    Write(std::io::Error),
    /// Reading the response failed.
    #[error("read failed: {0}")]
    Read(std::io::Error),
    /// The response did not complete within the deadline.
    #[error("response timed out")]
    Timeout,
    /// The runner is stopping.
    #[error("cancelled")]
    Cancelled,
    /// The response exceeded the size cap.
    #[error("response larger than {0} bytes")]
    ResponseTooLarge(usize),
    /// No blank line ends the header block.
    #[error("no end of headers")]
    NoHeaderEnd,
    /// The first line is not `HTTP/1.x <code> …`.
    #[error("malformed status line")]
    BadStatusLine,
    /// A status other than 200.
    #[error("http status {0}")]
    Status(u16),
    /// Malformed chunked transfer encoding.
    #[error("malformed chunked body")]
    BadChunk,
    /// Fewer body bytes than `Content-Length` announced.
    #[error("body shorter than content-length")]
    BodyTruncated,
    /// The body is not valid bencode.
    #[error("bencode: {0}")]
    Bencode(#[from] BencodeError),
    /// The body is bencode but not a dictionary.
    #[error("response is not a dictionary")]
    NotADict,
    /// The tracker's `failure reason`.
    #[error("tracker failure: {0}")]
    TrackerFailure(String),
    /// `peers` / `peers6` of an unexpected type.
    #[error("malformed peers field")]
    BadPeers,
    /// A negative or absurd `interval`.
    #[error("invalid interval")]
    InvalidInterval,
}

/// Longest `failure reason` / `warning message` kept, in bytes.
pub const MAX_MESSAGE: usize = 512;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn lossy_capped(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_MESSAGE)]).into_owned()
}

/// Parses a raw HTTP response (status line, headers, body) from a tracker.
pub fn parse_response(raw: &[u8], max_peers: usize) -> Result<HttpAnnounce, HttpTrackerError> {
    let (head, body) = match find(raw, b"\r\n\r\n") {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => match find(raw, b"\n\n") {
            Some(i) => (&raw[..i], &raw[i + 2..]),
            None => return Err(HttpTrackerError::NoHeaderEnd),
        },
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let status = lines.next().ok_or(HttpTrackerError::BadStatusLine)?;
    let mut parts = status.split_whitespace();
    let version = parts.next().ok_or(HttpTrackerError::BadStatusLine)?;
    if !version.starts_with("HTTP/1.") {
        return Err(HttpTrackerError::BadStatusLine);
    }
    let code: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or(HttpTrackerError::BadStatusLine)?;
    if code != 200 {
        return Err(HttpTrackerError::Status(code));
    }
    let mut chunked = false;
    let mut content_length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok();
        }
    }
    let body: Vec<u8> = if chunked {
        dechunk(body)?
    } else if let Some(len) = content_length {
        if body.len() < len {
            return Err(HttpTrackerError::BodyTruncated);
        }
        body[..len].to_vec()
    } else {
        body.to_vec()
    };
    parse_body(body.trim_ascii_end(), max_peers)
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, HttpTrackerError> {
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").ok_or(HttpTrackerError::BadChunk)?;
        let size_field =
            std::str::from_utf8(&body[..line_end]).map_err(|_| HttpTrackerError::BadChunk)?;
        let size_hex = size_field.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| HttpTrackerError::BadChunk)?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        // checked: a size field of `ffffffffffffffff` must not overflow
        let end = size.checked_add(2).ok_or(HttpTrackerError::BadChunk)?;
        if body.len() < end || &body[size..end] != b"\r\n" {
            return Err(HttpTrackerError::BadChunk);
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// Parses a bencoded announce response body.
pub fn parse_body(body: &[u8], max_peers: usize) -> Result<HttpAnnounce, HttpTrackerError> {
    let value = bencode::decode(body, Limits::default())?;
    let Value::Dict(dict) = value else {
        return Err(HttpTrackerError::NotADict);
    };
    if let Some(reason) = dict.get(&b"failure reason"[..]) {
        let text = match reason {
            Value::Bytes(b) => lossy_capped(b),
            _ => "(non-string failure reason)".to_string(),
        };
        return Err(HttpTrackerError::TrackerFailure(text));
    }
    let interval = match dict.get(&b"interval"[..]) {
        None => None,
        Some(Value::Int(i)) if (0..=7 * 24 * 3600).contains(i) => {
            Some(Duration::from_secs(i.unsigned_abs()))
        }
        Some(_) => return Err(HttpTrackerError::InvalidInterval),
    };
    let warning = dict
        .get(&b"warning message"[..])
        .and_then(Value::as_bytes)
        .map(lossy_capped);
    let mut out = HttpAnnounce {
        interval,
        warning,
        ..HttpAnnounce::default()
    };
    for (key, family) in [
        (&b"peers"[..], PeerFamily::V4),
        (&b"peers6"[..], PeerFamily::V6),
    ] {
        let room = max_peers - out.peers.len();
        match dict.get(key) {
            None => {}
            Some(Value::Bytes(raw)) => {
                let parsed = parse_compact(raw, family, room);
                out.peers.extend(parsed.peers);
                out.truncated += parsed.truncated;
            }
            Some(Value::List(items)) if family == PeerFamily::V4 => {
                for item in items {
                    if out.peers.len() >= max_peers {
                        out.truncated += 1;
                        continue;
                    }
                    let ip = item
                        .get(b"ip")
                        .and_then(Value::as_bytes)
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .and_then(|s| s.parse::<IpAddr>().ok());
                    let port = item
                        .get(b"port")
                        .and_then(Value::as_int)
                        .and_then(|p| u16::try_from(p).ok());
                    match (ip, port) {
                        (Some(ip), Some(port)) => out.peers.push(SocketAddr::new(ip, port)),
                        _ => return Err(HttpTrackerError::BadPeers),
                    }
                }
            }
            Some(_) => return Err(HttpTrackerError::BadPeers),
        }
    }
    Ok(out)
}

/// Timeouts and size cap of [`fetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchLimits {
    /// Per-address TCP connect timeout.
    pub connect_timeout: Duration,
    /// Deadline for the whole exchange after connecting.
    pub response_timeout: Duration,
    /// Largest response accepted, headers included.
    pub max_response: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            max_response: 64 * 1024,
        }
    }
}

/// Resolves `url`'s host, sends `request` and reads the response until EOF,
/// the size cap, the deadline, or `stop` becoming true.
pub fn fetch(
    url: &TrackerUrl,
    request: &[u8],
    limits: FetchLimits,
    stop: &AtomicBool,
) -> Result<Vec<u8>, HttpTrackerError> {
    let host = url.host_port();
    let addrs: Vec<SocketAddr> = host
        .to_socket_addrs()
        .map_err(|e| HttpTrackerError::Resolve {
            host: host.clone(),
            reason: e.to_string(),
        })?
        .collect();
    if addrs.is_empty() {
        return Err(HttpTrackerError::Resolve {
            host,
            reason: "no addresses".into(),
        });
    }
    let mut last_err = None;
    let mut stream = None;
    for addr in addrs {
        if stop.load(Ordering::Relaxed) {
            return Err(HttpTrackerError::Cancelled);
        }
        match TcpStream::connect_timeout(&addr, limits.connect_timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some(mut stream) = stream else {
        return Err(HttpTrackerError::Connect(last_err.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotConnected, "no address")
        })));
    };
    let deadline = later(Instant::now(), limits.response_timeout);
    stream
        .set_write_timeout(Some(limits.response_timeout.max(Duration::from_millis(1))))
        .map_err(HttpTrackerError::Write)?;
    stream.write_all(request).map_err(HttpTrackerError::Write)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(HttpTrackerError::Cancelled);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(HttpTrackerError::Timeout);
        }
        let slice = (deadline - now).min(Duration::from_millis(200));
        stream
            .set_read_timeout(Some(slice.max(Duration::from_millis(1))))
            .map_err(HttpTrackerError::Read)?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => {
                if out.len() + n > limits.max_response {
                    return Err(HttpTrackerError::ResponseTooLarge(limits.max_response));
                }
                out.extend_from_slice(&buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(HttpTrackerError::Read(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> TrackerUrl {
        TrackerUrl::parse(s).unwrap()
    }

    fn params(event: AnnounceEvent) -> HttpAnnounceParams {
        HttpAnnounceParams {
            info_hash: [
                0x00, 0x7f, b'a', b' ', 0xff, b'~', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
            ],
            peer_id: *b"-MS0100-abcdefghijkl",
            port: 6881,
            event,
            num_want: 50,
            key: 0xdeadbeef,
        }
    }

    #[test]
    fn builds_announce_url() {
        let u = url("http://127.0.0.1:8000/announce");
        let path = announce_path(&u, &params(AnnounceEvent::Started));
        assert_eq!(
            path,
            "/announce?info_hash=%00%7Fa%20%FF~%00%00%00%00%00%00%00%00%00%00%00%00%00%10\
&peer_id=-MS0100-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=1&compact=1\
&numwant=50&key=deadbeef&event=started"
        );
        let periodic = announce_path(&url("http://h/a?passkey=x"), &params(AnnounceEvent::None));
        assert!(periodic.starts_with("/a?passkey=x&info_hash="));
        assert!(!periodic.contains("event="));
        let req = build_request(&u, &path);
        let text = String::from_utf8(req).unwrap();
        assert!(text.starts_with("GET /announce?info_hash=%00"));
        assert!(text.contains(" HTTP/1.0\r\nHost: 127.0.0.1:8000\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn parses_compact_peers_and_interval() {
        let mut body = b"d8:intervali900e5:peers12:".to_vec();
        body.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 127, 0, 0, 2, 0x1a, 0xe2]);
        body.extend_from_slice(b"6:peers618:");
        body.extend_from_slice(&[0; 15]);
        body.extend_from_slice(&[1, 0, 80]);
        body.extend_from_slice(b"15:warning message4:hey!e");
        let mut raw =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        raw.extend_from_slice(&body);
        let r = parse_response(&raw, 50).unwrap();
        assert_eq!(r.interval, Some(Duration::from_secs(900)));
        assert_eq!(r.warning.as_deref(), Some("hey!"));
        assert_eq!(
            r.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "127.0.0.2:6882".parse().unwrap(),
                "[::1]:80".parse().unwrap()
            ]
        );
    }

    #[test]
    fn parses_dict_peers_and_chunked() {
        let body = b"d5:peersld2:ip9:127.0.0.14:porti7000eeee";
        let mut raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        raw.extend_from_slice(format!("{:x}\r\n", 10).as_bytes());
        raw.extend_from_slice(&body[..10]);
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(format!("{:x}\r\n", body.len() - 10).as_bytes());
        raw.extend_from_slice(&body[10..]);
        raw.extend_from_slice(b"\r\n0\r\n\r\n");
        let r = parse_response(&raw, 50).unwrap();
        assert_eq!(r.peers, vec!["127.0.0.1:7000".parse().unwrap()]);
        assert_eq!(r.interval, None);
    }

    #[test]
    fn a_chunk_size_near_usize_max_is_a_bad_chunk() {
        // found by the fuzz target http_tracker_response (an overflow panic)
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n\xaf!";
        assert!(matches!(
            parse_response(raw, 50),
            Err(HttpTrackerError::BadChunk)
        ));
    }

    #[test]
    fn reports_failures_and_malformed_responses() {
        let e = parse_response(
            b"HTTP/1.0 200 OK\r\n\r\nd14:failure reason12:bad infohashe",
            50,
        );
        assert!(matches!(e, Err(HttpTrackerError::TrackerFailure(ref m)) if m == "bad infohash"));
        assert!(matches!(
            parse_response(b"HTTP/1.0 404 Not Found\r\n\r\n", 50),
            Err(HttpTrackerError::Status(404))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.0 200 OK\r\n", 50),
            Err(HttpTrackerError::NoHeaderEnd)
        ));
        assert!(matches!(
            parse_response(b"SSH-2.0\r\n\r\n", 50),
            Err(HttpTrackerError::BadStatusLine)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\nd5:peers", 50),
            Err(HttpTrackerError::Bencode(_))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\nli1ee", 50),
            Err(HttpTrackerError::NotADict)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\nd5:peersi3ee", 50),
            Err(HttpTrackerError::BadPeers)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\nd8:intervali-5ee", 50),
            Err(HttpTrackerError::InvalidInterval)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 99\r\n\r\nde", 50),
            Err(HttpTrackerError::BodyTruncated)
        ));
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nde",
                50
            ),
            Err(HttpTrackerError::BadChunk)
        ));
    }

    #[test]
    fn caps_oversized_peer_lists() {
        let n = 1000;
        let mut body = format!("d5:peers{}:", n * 6).into_bytes();
        body.extend(std::iter::repeat_n([10u8, 0, 0, 1, 0, 80], n).flatten());
        body.push(b'e');
        let r = parse_body(&body, 200).unwrap();
        assert_eq!(r.peers.len(), 200);
        assert_eq!(r.truncated, 800);
    }
}
