//! The TCP record codec: a byte stream of `nonce (12) ‖ record*` per
//! direction, each record `masked length (2) ‖ datagram`. The datagram is
//! exactly what UDP would carry (scrambled head, one AEAD or one handshake
//! message); the length is XORed with a ChaCha20 keystream keyed by the
//! mesh's scramble key and selected by the direction's random nonce, so no
//! plaintext length field is visible on the wire (docs/PROTOCOL.md,
//! "TCP carrier").

use blake2::digest::{FixedOutput, KeyInit, Update};
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use moss_crypto::scramble::MIN_DATAGRAM;

/// Bytes of the per-direction nonce that opens a stream.
pub const NONCE_LEN: usize = 12;
/// Bytes of a record's masked length.
pub const LEN_LEN: usize = 2;
/// Smallest datagram a record may carry (the scramble codec's minimum).
pub const MIN_RECORD: usize = MIN_DATAGRAM;
/// Largest datagram a record may carry (the engine's UDP receive limit).
pub const MAX_RECORD: usize = crate::backend::MAX_RECV_DATAGRAM;

/// Domain separation of the length-mask key.
const MASK_LABEL: &[u8] = b"moss tcp record length mask v1";

/// The key of the length masks of a mesh: BLAKE2s-256 keyed with the
/// scramble key over `"moss tcp record length mask v1"` (so it never shares a keystream with
/// the scramble codec).
pub fn mask_key(scramble_key: &[u8; 32]) -> [u8; 32] {
    let mut mac = blake2::Blake2sMac256::new_from_slice(scramble_key)
        .unwrap_or_else(|_| unreachable!("32-byte keys are valid BLAKE2s keys"));
    mac.update(MASK_LABEL);
    mac.finalize_fixed().into()
}

/// The length-mask keystream of one direction of a connection.
pub struct Mask(ChaCha20);

impl Mask {
    /// The keystream of the direction that opened with `nonce`.
    pub fn new(key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> Self {
        Self(ChaCha20::new(key.into(), nonce.into()))
    }

    /// Masks (or unmasks: XOR) the next record's two length bytes.
    fn toggle(&mut self, len: &mut [u8; LEN_LEN]) {
        // A direction carries far fewer than 2^37 bytes of length masks
        // before the connection is replaced; the cipher panics only past
        // its 256 GiB keystream.
        self.0.apply_keystream(len);
    }
}

/// Why a stream was closed by its decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A record length outside [`MIN_RECORD`]..=[`MAX_RECORD`]: garbage, a
    /// peer of another mesh, or a probe.
    #[error("record length {0} outside {MIN_RECORD}..={MAX_RECORD}")]
    BadLength(usize),
}

/// Appends the record carrying `datagram` to `out`. The caller keeps
/// datagrams within [`MIN_RECORD`]..=[`MAX_RECORD`] (the node's are).
pub fn encode(mask: &mut Mask, datagram: &[u8], out: &mut Vec<u8>) {
    let n = u16::try_from(datagram.len()).unwrap_or(u16::MAX);
    let mut len = n.to_be_bytes();
    mask.toggle(&mut len);
    out.extend_from_slice(&len);
    out.extend_from_slice(datagram);
}

/// Where the decoder of one direction stands.
enum Stage {
    /// Waiting for the direction's nonce.
    Nonce,
    /// Waiting for a record's masked length.
    Length(Mask),
    /// Waiting for `len` datagram bytes.
    Body(Mask, usize),
}

/// Incremental decoder of one direction's byte stream: bytes in (any
/// split), whole datagrams out.
pub struct Decoder {
    key: [u8; 32],
    stage: Stage,
    buf: Vec<u8>,
}

impl Decoder {
    /// A decoder for a stream of a mesh with this length-mask key.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            stage: Stage::Nonce,
            buf: Vec::with_capacity(NONCE_LEN + LEN_LEN + MAX_RECORD),
        }
    }

    /// How many bytes the decoder wants before it can make progress.
    fn want(&self) -> usize {
        match self.stage {
            Stage::Nonce => NONCE_LEN,
            Stage::Length(_) => LEN_LEN,
            Stage::Body(_, n) => n,
        }
    }

    /// Feeds `bytes`, calling `f` with each whole datagram (mutable, for
    /// in-place opening). A bad length stops the stream: the error is
    /// returned and the connection must close. The buffer never holds more
    /// than one record.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        f: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), RecordError> {
        while !bytes.is_empty() {
            let take = (self.want() - self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buf.len() < self.want() {
                break;
            }
            self.stage = match std::mem::replace(&mut self.stage, Stage::Nonce) {
                Stage::Nonce => {
                    let mut nonce = [0u8; NONCE_LEN];
                    nonce.copy_from_slice(&self.buf);
                    Stage::Length(Mask::new(&self.key, &nonce))
                }
                Stage::Length(mut mask) => {
                    let mut len = [self.buf[0], self.buf[1]];
                    mask.toggle(&mut len);
                    let n = usize::from(u16::from_be_bytes(len));
                    if !(MIN_RECORD..=MAX_RECORD).contains(&n) {
                        return Err(RecordError::BadLength(n));
                    }
                    Stage::Body(mask, n)
                }
                Stage::Body(mask, _) => {
                    f(&mut self.buf);
                    Stage::Length(mask)
                }
            };
            self.buf.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> [u8; 32] {
        mask_key(&moss_crypto::MeshKeys::derive("tcp-test-vector", None).scramble_key)
    }

    fn stream(nonce: [u8; NONCE_LEN], datagrams: &[Vec<u8>]) -> Vec<u8> {
        let mut out = nonce.to_vec();
        let mut m = Mask::new(&key(), &nonce);
        for d in datagrams {
            encode(&mut m, d, &mut out);
        }
        out
    }

    fn decode_split(bytes: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, RecordError> {
        let mut d = Decoder::new(key());
        let mut got = Vec::new();
        for c in bytes.chunks(chunk.max(1)) {
            d.feed(c, &mut |r| got.push(r.to_vec()))?;
        }
        Ok(got)
    }

    #[test]
    fn records_round_trip_in_any_split() {
        let ds: Vec<Vec<u8>> = [32usize, 1200, 77, MAX_RECORD]
            .iter()
            .map(|&n| (0..n).map(|i| i as u8).collect())
            .collect();
        let s = stream([9; NONCE_LEN], &ds);
        for chunk in [1, 2, 3, 13, 500, s.len()] {
            assert_eq!(decode_split(&s, chunk).unwrap(), ds, "chunk {chunk}");
        }
    }

    #[test]
    fn lengths_are_masked() {
        // Two streams carrying records of one length: the length bytes
        // differ (other nonce) and are not the plain length.
        let d = vec![vec![0u8; 100]];
        let a = stream([1; NONCE_LEN], &d);
        let b = stream([2; NONCE_LEN], &d);
        let (la, lb) = (&a[NONCE_LEN..NONCE_LEN + 2], &b[NONCE_LEN..NONCE_LEN + 2]);
        assert_ne!(la, lb);
        assert_ne!(la, &100u16.to_be_bytes());
    }

    #[test]
    fn bad_lengths_close_the_stream() {
        let nonce = [3; NONCE_LEN];
        for n in [0usize, 1, MIN_RECORD - 1, MAX_RECORD + 1, 65535] {
            let mut s = nonce.to_vec();
            let mut len = (n as u16).to_be_bytes();
            Mask::new(&key(), &nonce).toggle(&mut len);
            s.extend_from_slice(&len);
            assert_eq!(decode_split(&s, 1), Err(RecordError::BadLength(n)));
        }
        // The wrong mesh's key reads garbage lengths.
        let good = stream(nonce, &[vec![5u8; 64]]);
        let mut other = Decoder::new(mask_key(&[7; 32]));
        let mut n = 0;
        let r = other.feed(&good, &mut |_| n += 1);
        assert!(r.is_err() || n == 0);
    }

    /// The test vector of docs/PROTOCOL.md ("TCP carrier"), read from the
    /// document (its `tcp-vector:` lines); cross-checked against Python's
    /// `hashlib.blake2s` and `cryptography`'s ChaCha20.
    #[test]
    fn test_vector() {
        let scramble = moss_crypto::MeshKeys::derive("tcp-test-vector", None).scramble_key;
        let nonce: [u8; NONCE_LEN] = core::array::from_fn(|i| i as u8);
        let s = stream(nonce, &[vec![0xaa; 32], vec![0xbb; 1200]]);
        let second = NONCE_LEN + 2 + 32;
        let code = [
            ("scramble_key", hex::encode(scramble)),
            ("tcp_mask_key", hex::encode(key())),
            ("stream_head", hex::encode(&s[..NONCE_LEN + 2])),
            ("second_len", hex::encode(&s[second..second + 2])),
        ];
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
                .expect("docs/PROTOCOL.md");
        let written: Vec<(String, String)> = doc
            .lines()
            .filter_map(|l| l.trim().strip_prefix("tcp-vector: "))
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let code: Vec<(String, String)> =
            code.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(
            written, code,
            "docs/PROTOCOL.md tcp vectors differ from the code"
        );
    }
}
