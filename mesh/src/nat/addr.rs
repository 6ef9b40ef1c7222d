//! The address codec shared by the handshake's observed address (`extra`
//! of messages 2 and 3) and the NAT frames: `family (u8: 4 or 6) ‖ ip (4 or
//! 16) ‖ port (u16 BE)`. Decoding is strict and total.

use std::net::{IpAddr, SocketAddr};

/// Encoded length of an IPv4 address.
pub const V4_LEN: usize = 1 + 4 + 2;
/// Encoded length of an IPv6 address.
pub const V6_LEN: usize = 1 + 16 + 2;

/// Why bytes are not an encoded address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// No bytes at all.
    #[error("empty address")]
    Empty,
    /// The family byte is neither 4 nor 6.
    #[error("unknown address family {0}")]
    BadFamily(u8),
    /// The length does not match the family.
    #[error("address of {got} bytes for its family")]
    BadLength {
        /// Bytes given.
        got: usize,
    },
    /// An unspecified IP or port 0: nobody can be reached there.
    #[error("unspecified address or port 0")]
    Unspecified,
}

/// Appends the encoding of `a` to `out`.
pub fn encode_addr(a: SocketAddr, out: &mut Vec<u8>) {
    match a.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&a.port().to_be_bytes());
}

/// Encoded length of `a`.
pub fn addr_len(a: SocketAddr) -> usize {
    if a.is_ipv4() {
        V4_LEN
    } else {
        V6_LEN
    }
}

/// Decodes exactly one address occupying all of `b`.
pub fn decode_addr(b: &[u8]) -> Result<SocketAddr, AddrError> {
    let (&family, _) = b.split_first().ok_or(AddrError::Empty)?;
    let want = match family {
        4 => V4_LEN,
        6 => V6_LEN,
        f => return Err(AddrError::BadFamily(f)),
    };
    if b.len() != want {
        return Err(AddrError::BadLength { got: b.len() });
    }
    let port = u16::from_be_bytes([b[want - 2], b[want - 1]]);
    let ip: IpAddr = if family == 4 {
        <[u8; 4]>::try_from(&b[1..5])
            .map(IpAddr::from)
            .map_err(|_| AddrError::BadLength { got: b.len() })?
    } else {
        <[u8; 16]>::try_from(&b[1..17])
            .map(IpAddr::from)
            .map_err(|_| AddrError::BadLength { got: b.len() })?
    };
    if ip.is_unspecified() || port == 0 {
        return Err(AddrError::Unspecified);
    }
    Ok(SocketAddr::new(ip, port))
}

/// Splits an address off the front of `b`: its length follows from the
/// family byte.
pub fn split_addr(b: &[u8]) -> Result<(SocketAddr, &[u8]), AddrError> {
    let n = match b.first() {
        None => return Err(AddrError::Empty),
        Some(4) => V4_LEN,
        Some(6) => V6_LEN,
        Some(&f) => return Err(AddrError::BadFamily(f)),
    };
    let head = b.get(..n).ok_or(AddrError::BadLength { got: b.len() })?;
    Ok((decode_addr(head)?, &b[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(a: &str) -> Vec<u8> {
        let mut v = Vec::new();
        encode_addr(a.parse().unwrap(), &mut v);
        v
    }

    #[test]
    fn both_families_round_trip() {
        for a in ["203.0.113.7:4000", "[2001:db8::1]:65535"] {
            let b = enc(a);
            assert_eq!(b.len(), addr_len(a.parse().unwrap()));
            assert_eq!(decode_addr(&b), Ok(a.parse().unwrap()));
            assert_eq!(split_addr(&[&b[..], b"rest"].concat()).unwrap().1, b"rest");
        }
    }

    #[test]
    fn empty_is_rejected() {
        assert_eq!(decode_addr(&[]), Err(AddrError::Empty));
        assert_eq!(split_addr(&[]), Err(AddrError::Empty));
    }

    #[test]
    fn unknown_family_is_rejected() {
        assert_eq!(
            decode_addr(&[9, 1, 2, 3, 4, 0, 1]),
            Err(AddrError::BadFamily(9))
        );
        assert_eq!(split_addr(&[0]), Err(AddrError::BadFamily(0)));
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert_eq!(decode_addr(&[4, 1]), Err(AddrError::BadLength { got: 2 }));
        let mut long = enc("203.0.113.7:4000");
        long.push(0);
        assert_eq!(decode_addr(&long), Err(AddrError::BadLength { got: 8 }));
        assert_eq!(split_addr(&[6, 0, 0]), Err(AddrError::BadLength { got: 3 }));
    }

    #[test]
    fn unspecified_is_rejected() {
        assert_eq!(decode_addr(&enc("0.0.0.0:5")), Err(AddrError::Unspecified));
        assert_eq!(
            decode_addr(&enc("203.0.113.7:0")),
            Err(AddrError::Unspecified)
        );
    }
}
