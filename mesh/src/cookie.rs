//! Cookies under handshake floods (WireGuard's cookie reply, QUIC's
//! Retry): a responder under load answers message 1 with a cookie, a MAC
//! of the sender's origin under a secret that rotates every
//! [`COOKIE_ROTATE`], and keeps no state. An initiator that echoes a valid
//! cookie proves it receives at its address, and is admitted ahead of the
//! flood on a budget of its own.
//!
//! The origin ([`origin`]) is the sender's IP address (an IPv6 sender's
//! /64), not its IP and port: the per-origin reply and admission limits
//! hold for a flooder that rotates source ports (or TCP connections), so
//! it gets one cookie reply per [`COOKIE_REPLY_INTERVAL`] and one cookied
//! admission per [`COOKIED_INTERVAL`] in all, not one per port.
//!
//! Wire forms (handshake-kind datagrams, body scrambled like any
//! handshake body):
//! * cookie reply (kind 8): `sender_index (u32 LE) ‖ cookie (16)`, `pad_len`
//!   0: 36 bytes, smaller than any message 1;
//! * message 1 with a cookie (kind 9): `cookie (16) ‖ inner kind (u8: 1 for
//!   XX, 5 for IK) ‖ the message 1 body ‖ padding`.

use crate::path::Path;
use crate::wire::{HandshakeBody, Kind, WireError};
use crate::Time;
use blake2::{Blake2s256, Digest};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Bytes of a cookie.
pub const COOKIE_LEN: usize = 16;
/// Body bytes of a cookie reply.
pub const COOKIE_REPLY_BODY: usize = 4 + COOKIE_LEN;
/// How long a cookie secret is current (the previous one is accepted too).
pub const COOKIE_ROTATE: Duration = Duration::from_secs(120);
/// Cookie replies a node sends in a burst.
pub const COOKIE_REPLY_BURST: u32 = 1024;
/// Cookie replies a node sends per second, sustained.
pub const COOKIE_REPLY_RATE: u32 = 8192;
/// Shortest gap between two cookie replies to one path: a flood from a
/// few addresses cannot use up the reply budget a newcomer needs.
pub const COOKIE_REPLY_INTERVAL: Duration = Duration::from_millis(250);
/// Message 1s with a valid cookie a node answers in a burst.
pub const COOKIED_BURST: u32 = 128;
/// Message 1s with a valid cookie a node answers per second, sustained.
pub const COOKIED_RATE: u32 = 500;
/// Shortest gap between two cookied message 1s answered from one path.
pub const COOKIED_INTERVAL: Duration = Duration::from_millis(100);

/// A cookie reply's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieReply {
    /// The initiator's `sender_index` of the message 1 it answers.
    pub index: u32,
    /// The cookie to echo.
    pub cookie: [u8; COOKIE_LEN],
}

impl CookieReply {
    /// The body.
    pub fn encode(&self) -> [u8; COOKIE_REPLY_BODY] {
        let mut b = [0u8; COOKIE_REPLY_BODY];
        b[..4].copy_from_slice(&self.index.to_le_bytes());
        b[4..].copy_from_slice(&self.cookie);
        b
    }

    /// Decodes an (unscrambled) body; `pad_len` must be 0.
    pub fn decode(body: &[u8], pad_len: u16) -> Result<Self, WireError> {
        if pad_len != 0 || body.len() != COOKIE_REPLY_BODY {
            return Err(WireError::BadLength);
        }
        let index = u32::from_le_bytes([body[0], body[1], body[2], body[3]]);
        if index == 0 {
            return Err(WireError::Reserved);
        }
        let mut cookie = [0u8; COOKIE_LEN];
        cookie.copy_from_slice(&body[4..]);
        Ok(Self { index, cookie })
    }
}

/// A decoded message 1 with a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiedInit<'a> {
    /// The echoed cookie.
    pub cookie: [u8; COOKIE_LEN],
    /// [`Kind::Init`] or [`Kind::IkInit`].
    pub inner: Kind,
    /// The message 1 body.
    pub body: HandshakeBody<'a>,
}

impl<'a> CookiedInit<'a> {
    /// Appends `cookie ‖ inner` to `out` (the message 1 body follows).
    pub fn encode_prefix(cookie: &[u8; COOKIE_LEN], inner: Kind, out: &mut Vec<u8>) {
        out.extend_from_slice(cookie);
        out.push(inner as u8);
    }

    /// Decodes an (unscrambled) body with `pad_len` padding bytes.
    pub fn decode(b: &'a [u8], pad_len: u16) -> Result<Self, WireError> {
        if b.len() < COOKIE_LEN + 1 {
            return Err(WireError::Truncated);
        }
        let mut cookie = [0u8; COOKIE_LEN];
        cookie.copy_from_slice(&b[..COOKIE_LEN]);
        let inner = match b[COOKIE_LEN] {
            1 => Kind::Init,
            5 => Kind::IkInit,
            other => return Err(WireError::UnknownKind(other)),
        };
        let body = HandshakeBody::decode(&b[COOKIE_LEN + 1..], pad_len)?;
        Ok(Self {
            cookie,
            inner,
            body,
        })
    }
}

/// The rotating secret and the cookies it makes.
pub(crate) struct CookieJar {
    current: [u8; 32],
    previous: [u8; 32],
    rotated: Time,
}

impl CookieJar {
    /// A jar with a fresh secret from `seed` at `now`.
    pub fn new(seed: [u8; 32], now: Time) -> Self {
        Self {
            current: seed,
            previous: seed,
            rotated: now,
        }
    }

    /// Rotates to `fresh` when the current secret is [`COOKIE_ROTATE`] old.
    pub fn rotate(&mut self, now: Time, fresh: impl FnOnce() -> [u8; 32]) {
        if now.saturating_sub(self.rotated) >= COOKIE_ROTATE {
            self.previous = self.current;
            self.current = fresh();
            self.rotated = now;
        }
    }

    /// The cookie for `path`'s origin under the current secret.
    pub fn cookie(&self, path: &Path) -> [u8; COOKIE_LEN] {
        mac(&self.current, &origin(path))
    }

    /// True if `cookie` is `path`'s origin's under the current or previous
    /// secret.
    pub fn valid(&self, path: &Path, cookie: &[u8; COOKIE_LEN]) -> bool {
        let o = origin(path);
        let eq =
            |a: [u8; COOKIE_LEN]| a.iter().zip(cookie).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
        eq(mac(&self.current, &o)) | eq(mac(&self.previous, &o))
    }
}

/// The origin a cookie binds and the cookie limits count, as a path: UDP
/// and TCP senders by IP address (port 0; IPv6 by its /64, the block one
/// host usually holds), so ports and connections of one host share it; a
/// relay session or a host channel is its own origin.
pub fn origin(path: &Path) -> Path {
    match *path {
        Path::Udp(a) | Path::Tcp { addr: a, .. } => {
            let ip = match a.ip() {
                IpAddr::V4(v4) => IpAddr::V4(v4),
                IpAddr::V6(v6) => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            };
            Path::Udp(SocketAddr::new(ip, 0))
        }
        other => other,
    }
}

/// `BLAKE2s("moss/cookie/v2" ‖ secret ‖ origin)`, first 16 bytes (BLAKE2
/// is not length-extendable, so the secret prefix makes a MAC). No
/// allocation: the MAC runs for every message 1 under a flood.
fn mac(secret: &[u8; 32], origin: &Path) -> [u8; COOKIE_LEN] {
    let mut h = Blake2s256::new();
    h.update(b"moss/cookie/v2");
    h.update(secret);
    match origin {
        Path::Udp(a) | Path::Tcp { addr: a, .. } => {
            h.update([0]);
            match a.ip() {
                IpAddr::V4(ip) => h.update(ip.octets()),
                IpAddr::V6(ip) => h.update(ip.octets()),
            }
        }
        Path::Relay { via, session } => {
            h.update([1]);
            h.update(via.0);
            h.update(session.to_le_bytes());
        }
        Path::Channel(id) => {
            h.update([2]);
            h.update(id.to_le_bytes());
        }
    }
    let d = h.finalize();
    let mut c = [0u8; COOKIE_LEN];
    c.copy_from_slice(&d[..COOKIE_LEN]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(port: u16) -> Path {
        Path::Udp(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn cookies_bind_the_ip_and_survive_one_rotation() {
        let mut j = CookieJar::new([1; 32], Duration::ZERO);
        let c = j.cookie(&p(1));
        assert!(j.valid(&p(1), &c));
        // Another port or a TCP connection of the same host: same origin.
        assert!(j.valid(&p(2), &c));
        let tcp = Path::Tcp {
            id: 9,
            addr: "127.0.0.1:7".parse().unwrap(),
        };
        assert!(j.valid(&tcp, &c));
        // Another IP: not.
        assert!(!j.valid(&Path::Udp("127.0.0.2:1".parse().unwrap()), &c));
        // IPv6: one /64 is one origin.
        let v6 = |s: &str| Path::Udp(s.parse().unwrap());
        let c6 = j.cookie(&v6("[2001:db8:1:2::5]:9"));
        assert!(j.valid(&v6("[2001:db8:1:2:ffff::1]:10"), &c6));
        assert!(!j.valid(&v6("[2001:db8:1:3::5]:9"), &c6));
        j.rotate(COOKIE_ROTATE, || [2; 32]);
        assert!(j.valid(&p(1), &c), "previous secret still accepted");
        j.rotate(COOKIE_ROTATE * 2, || [3; 32]);
        assert!(!j.valid(&p(1), &c), "two rotations later it is stale");
    }

    #[test]
    fn wire_forms_round_trip_and_reject_garbage() {
        let r = CookieReply {
            index: 7,
            cookie: [9; 16],
        };
        assert_eq!(CookieReply::decode(&r.encode(), 0), Ok(r));
        assert!(CookieReply::decode(&r.encode(), 1).is_err());
        assert!(CookieReply::decode(&[0; COOKIE_REPLY_BODY], 0).is_err());
        let mut b = Vec::new();
        CookiedInit::encode_prefix(&[5; 16], Kind::IkInit, &mut b);
        HandshakeBody {
            sender: 3,
            receiver: 0,
            noise: b"abc",
        }
        .encode(&mut b);
        b.push(0xee);
        let d = CookiedInit::decode(&b, 1).unwrap();
        assert_eq!(
            (d.cookie, d.inner, d.body.noise),
            ([5; 16], Kind::IkInit, &b"abc"[..])
        );
        b[16] = 2;
        assert!(CookiedInit::decode(&b, 1).is_err());
        assert!(CookiedInit::decode(&b[..10], 0).is_err());
    }
}
