//! Compact peer lists (BEP 23 for IPv4, BEP 7 for IPv6): 6 or 18 bytes per peer.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// Address family of a compact peer list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerFamily {
    /// 4-byte address + 2-byte port.
    V4,
    /// 16-byte address + 2-byte port.
    V6,
}

impl PeerFamily {
    /// Bytes per peer entry.
    pub fn entry_len(self) -> usize {
        match self {
            PeerFamily::V4 => 6,
            PeerFamily::V6 => 18,
        }
    }
}

/// Peers parsed from a compact list, capped at a maximum count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactPeers {
    /// Parsed peers, at most the cap given to [`parse_compact`].
    pub peers: Vec<SocketAddr>,
    /// Entries beyond the cap that were not parsed.
    pub truncated: usize,
    /// Bytes at the end that did not form a whole entry.
    pub trailing_bytes: usize,
}

/// Parses a compact peer list, keeping at most `max_peers` entries.
///
/// Never allocates more than `max_peers` addresses, whatever the input size.
pub fn parse_compact(raw: &[u8], family: PeerFamily, max_peers: usize) -> CompactPeers {
    let entry = family.entry_len();
    let whole = raw.len() / entry;
    let kept = whole.min(max_peers);
    let mut peers = Vec::with_capacity(kept);
    for chunk in raw.chunks_exact(entry).take(kept) {
        let port = u16::from_be_bytes([chunk[entry - 2], chunk[entry - 1]]);
        let addr = match family {
            PeerFamily::V4 => SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::new(chunk[0], chunk[1], chunk[2], chunk[3]),
                port,
            )),
            PeerFamily::V6 => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&chunk[..16]);
                SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0))
            }
        };
        peers.push(addr);
    }
    CompactPeers {
        peers,
        truncated: whole - kept,
        trailing_bytes: raw.len() % entry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v4_and_v6() {
        let v4 = parse_compact(
            &[127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 80, 9],
            PeerFamily::V4,
            50,
        );
        assert_eq!(
            v4.peers,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap()
            ]
        );
        assert_eq!(v4.trailing_bytes, 1);
        let mut raw = vec![0u8; 15];
        raw.push(1);
        raw.extend_from_slice(&[0x1a, 0xe1]);
        let v6 = parse_compact(&raw, PeerFamily::V6, 50);
        assert_eq!(v6.peers, vec!["[::1]:6881".parse().unwrap()]);
    }

    #[test]
    fn caps_the_count() {
        let raw = vec![1u8; 6 * 1000];
        let p = parse_compact(&raw, PeerFamily::V4, 200);
        assert_eq!(p.peers.len(), 200);
        assert_eq!(p.truncated, 800);
    }
}
