//! Moss LAN beacon (version 1): a 40-byte authenticated UDP multicast datagram.
//!
//! Layout (all integers big-endian), documented with a test vector in
//! `PROTOCOL.md`:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `MOSL` |
//! | 4 | 1 | version = 1 |
//! | 5 | 1 | flags = 0 (reserved) |
//! | 6 | 2 | sender's listen port (non-zero) |
//! | 8 | 8 | mesh tag = BLAKE2s-64(key = beacon_key, persona `MossTag1`, msg = "") |
//! | 16 | 8 | sender instance id (random per runner) |
//! | 24 | 16 | MAC = BLAKE2s-128(key = beacon_key, persona `MossLAN1`, msg = bytes 0..24) |

use blake2::digest::consts::{U16, U8};
use blake2::digest::Mac;
use blake2::Blake2sMac;

/// Leading magic bytes.
pub const MAGIC: &[u8; 4] = b"MOSL";
/// Beacon format version produced and accepted.
pub const VERSION: u8 = 1;
/// Exact length of a version-1 beacon.
pub const BEACON_LEN: usize = 40;
/// Default multicast group (same as the original Moss).
pub const DEFAULT_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 255, 77, 77);
/// Default UDP port of the group (same as the original Moss).
pub const DEFAULT_PORT: u16 = 44445;
/// Default interval between beacons (same as the original Moss: 1500 ms).
pub const DEFAULT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1500);

const TAG_PERSONA: &[u8; 8] = b"MossTag1";
const MAC_PERSONA: &[u8; 8] = b"MossLAN1";

/// A decoded, authenticated beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beacon {
    /// The sender's listen port; the candidate is the datagram's source IP with this port.
    pub listen_port: u16,
    /// The sender's random instance id (lets a runner ignore its own beacons).
    pub instance_id: [u8; 8],
}

/// Why a datagram is not an acceptable beacon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BeaconError {
    /// Not exactly [`BEACON_LEN`] bytes.
    #[error("wrong length {0}")]
    WrongLength(usize),
    /// Does not start with [`MAGIC`].
    #[error("bad magic")]
    BadMagic,
    /// A version other than [`VERSION`].
    #[error("unsupported version {0}")]
    UnsupportedVersion(u8),
    /// Reserved flag bits set.
    #[error("reserved flags set")]
    ReservedFlags,
    /// The mesh tag belongs to another mesh (or another key).
    #[error("beacon of another mesh")]
    ForeignMesh,
    /// The mesh tag matches but the MAC does not: forged or corrupted.
    #[error("bad mac")]
    BadMac,
    /// Authenticated, but the listen port is 0.
    #[error("zero listen port")]
    ZeroPort,
}

fn mesh_tag(key: &[u8; 32]) -> [u8; 8] {
    let mut out = [0u8; 8];
    if let Ok(mac) = Blake2sMac::<U8>::new_with_salt_and_personal(key, &[], TAG_PERSONA) {
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

fn mac_over(key: &[u8; 32], body: &[u8]) -> Option<Blake2sMac<U16>> {
    let mut mac = Blake2sMac::<U16>::new_with_salt_and_personal(key, &[], MAC_PERSONA).ok()?;
    mac.update(body);
    Some(mac)
}

/// Encodes a beacon under `key`.
pub fn encode(key: &[u8; 32], beacon: &Beacon) -> [u8; BEACON_LEN] {
    let mut out = [0u8; BEACON_LEN];
    out[0..4].copy_from_slice(MAGIC);
    out[4] = VERSION;
    out[5] = 0;
    out[6..8].copy_from_slice(&beacon.listen_port.to_be_bytes());
    out[8..16].copy_from_slice(&mesh_tag(key));
    out[16..24].copy_from_slice(&beacon.instance_id);
    if let Some(mac) = mac_over(key, &out[..24]) {
        out[24..40].copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// Decodes and authenticates a beacon under `key` (constant-time MAC check).
pub fn decode(key: &[u8; 32], bytes: &[u8]) -> Result<Beacon, BeaconError> {
    if bytes.len() != BEACON_LEN {
        return Err(BeaconError::WrongLength(bytes.len()));
    }
    if &bytes[0..4] != MAGIC {
        return Err(BeaconError::BadMagic);
    }
    if bytes[4] != VERSION {
        return Err(BeaconError::UnsupportedVersion(bytes[4]));
    }
    if bytes[5] != 0 {
        return Err(BeaconError::ReservedFlags);
    }
    if bytes[8..16] != mesh_tag(key) {
        return Err(BeaconError::ForeignMesh);
    }
    let mac = mac_over(key, &bytes[..24]).ok_or(BeaconError::BadMac)?;
    mac.verify_slice(&bytes[24..40])
        .map_err(|_| BeaconError::BadMac)?;
    let listen_port = u16::from_be_bytes([bytes[6], bytes[7]]);
    if listen_port == 0 {
        return Err(BeaconError::ZeroPort);
    }
    let mut instance_id = [0u8; 8];
    instance_id.copy_from_slice(&bytes[16..24]);
    Ok(Beacon {
        listen_port,
        instance_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [0x42; 32];
    const B: Beacon = Beacon {
        listen_port: 4242,
        instance_id: [1, 2, 3, 4, 5, 6, 7, 8],
    };

    #[test]
    fn round_trip() {
        let wire = encode(&KEY, &B);
        assert_eq!(decode(&KEY, &wire), Ok(B));
    }

    #[test]
    fn rejects_each_cause() {
        let wire = encode(&KEY, &B);
        assert_eq!(decode(&KEY, &wire[..39]), Err(BeaconError::WrongLength(39)));
        let mut w = wire;
        w[0] = b'X';
        assert_eq!(decode(&KEY, &w), Err(BeaconError::BadMagic));
        let mut w = wire;
        w[4] = 2;
        assert_eq!(decode(&KEY, &w), Err(BeaconError::UnsupportedVersion(2)));
        let mut w = wire;
        w[5] = 1;
        assert_eq!(decode(&KEY, &w), Err(BeaconError::ReservedFlags));
        assert_eq!(decode(&[0x43; 32], &wire), Err(BeaconError::ForeignMesh));
        for i in [6, 7, 16, 23, 24, 39] {
            let mut w = wire;
            w[i] ^= 0x01;
            assert_eq!(decode(&KEY, &w), Err(BeaconError::BadMac), "byte {i}");
        }
        let zero = encode(
            &KEY,
            &Beacon {
                listen_port: 0,
                ..B
            },
        );
        assert_eq!(decode(&KEY, &zero), Err(BeaconError::ZeroPort));
    }
}
