//! Key derivation: everything a mesh id and optional PSK determine.
//!
//! HKDF over BLAKE2s with input key material `len(mesh_id) ‖ mesh_id ‖ psk`
//! and a distinct label per derived value, so a mesh with a PSK cannot be
//! enumerated (or even recognised on the wire) by someone who knows only
//! its id.

use blake2::Blake2s256;
use hkdf::SimpleHkdf;

/// Salt of every Moss HKDF extraction.
const SALT: &[u8] = b"moss/v1";

/// Label of the DPI scramble key; rotating it is the flag-day mechanism.
pub const SCRAMBLE_LABEL: &[u8] = b"moss/scramble/v1";

/// Keys derived from a mesh id and its optional 32-byte PSK.
#[derive(Clone)]
pub struct MeshKeys {
    /// The 20-byte rendezvous key announced to trackers and the DHT.
    pub infohash: [u8; 20],
    /// Key of the scramble codec that hides datagrams from DPI.
    pub scramble_key: [u8; 32],
    /// Key that authenticates LAN beacons.
    pub beacon_key: [u8; 32],
    /// Noise prologue: both sides must agree on mesh id and PSK, or the
    /// handshake fails.
    pub prologue: [u8; 32],
}

impl MeshKeys {
    /// Derives all mesh keys.
    pub fn derive(mesh_id: &str, psk: Option<&[u8; 32]>) -> Self {
        let mut ikm = Vec::with_capacity(8 + mesh_id.len() + 32);
        ikm.extend_from_slice(&(mesh_id.len() as u64).to_be_bytes());
        ikm.extend_from_slice(mesh_id.as_bytes());
        if let Some(psk) = psk {
            ikm.extend_from_slice(psk);
        }
        let hk = SimpleHkdf::<Blake2s256>::new(Some(SALT), &ikm);
        let mut infohash = [0u8; 20];
        let mut scramble_key = [0u8; 32];
        let mut beacon_key = [0u8; 32];
        let mut prologue = [0u8; 32];
        // expand only fails for outputs longer than 255 hash lengths.
        for (label, out) in [
            (&b"moss/infohash"[..], &mut infohash[..]),
            (SCRAMBLE_LABEL, &mut scramble_key[..]),
            (&b"moss/beacon"[..], &mut beacon_key[..]),
            (&b"moss/prologue"[..], &mut prologue[..]),
        ] {
            let _ = hk.expand(label, out);
        }
        Self {
            infohash,
            scramble_key,
            beacon_key,
            prologue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_changes_every_key() {
        let a = MeshKeys::derive("global", None);
        let b = MeshKeys::derive("global", Some(&[1; 32]));
        assert_ne!(a.infohash, b.infohash);
        assert_ne!(a.scramble_key, b.scramble_key);
        assert_ne!(a.beacon_key, b.beacon_key);
        assert_ne!(a.prologue, b.prologue);
        let c = MeshKeys::derive("global2", None);
        assert_ne!(a.infohash, c.infohash);
        // deterministic
        assert_eq!(a.infohash, MeshKeys::derive("global", None).infohash);
    }

    #[test]
    fn labels_separate_keys() {
        let a = MeshKeys::derive("m", None);
        assert_ne!(a.scramble_key, a.beacon_key);
        assert_ne!(a.scramble_key, a.prologue);
    }
}
