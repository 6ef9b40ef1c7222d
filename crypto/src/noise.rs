//! Noise XX (`Noise_XX_25519_ChaChaPoly_BLAKE2s`) handshakes for first
//! contact and Noise IK (`Noise_IK_25519_ChaChaPoly_BLAKE2s`) for 1-RTT
//! reconnects to a responder whose static key we hold, with the peer's
//! Ed25519 identity bound to its Noise static key and to the mesh.
//!
//! * The prologue is derived from the mesh id and PSK, so peers of another
//!   mesh, or without the PSK, fail to decrypt message 2 (initiator side) or
//!   message 3 (responder side) and never get a session.
//! * Every message that follows the sender's static key (XX messages 2
//!   and 3, IK messages 1 and 2) carries `ed25519_pub (32) ‖ signature (64)
//!   ‖ extra`, the signature covering `"moss/bind/v1" ‖ prologue ‖
//!   noise_static_pub`.
//!   A peer id therefore always names the key that completed the handshake.
//! * The X25519 static key is derived from the identity seed, so it is
//!   stable across restarts (ready for IK reconnects).
//!
//! Randomness (ephemeral keys) comes from a seed the caller passes, so a
//! simulator replays handshakes byte for byte.

use crate::identity::{Identity, PeerId};
use blake2::{Blake2s256, Digest};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver, RingResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// The Noise protocol name of first contact.
pub const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// The Noise protocol name of a reconnect to a known responder key.
pub const PATTERN_IK: &str = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/// Bytes the identity binding adds to handshake messages 2 and 3.
pub const BINDING_LEN: usize = 32 + 64;
/// Largest handshake message this module writes or reads.
pub const MAX_MESSAGE: usize = 1024;
/// Largest `extra` payload a handshake message may carry.
pub const MAX_EXTRA: usize = 512;

const BIND_LABEL: &[u8] = b"moss/bind/v1";

/// Which side of the handshake we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We sent message 1.
    Initiator,
    /// We answered message 1.
    Responder,
}

/// Which Noise handshake pattern runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Three messages; neither side knows the other's static key.
    Xx,
    /// Two messages; the initiator knows the responder's static key.
    Ik,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A message did not decrypt: wrong mesh id or PSK, or corrupted.
    #[error("handshake message did not decrypt (wrong mesh, PSK or corrupted)")]
    Decrypt,
    /// A message was malformed at the Noise layer.
    #[error("malformed handshake message: {0}")]
    Malformed(String),
    /// The payload is too short to hold the identity binding.
    #[error("handshake payload lacks the identity binding")]
    MissingBinding,
    /// The identity signature over the static key does not verify.
    #[error("identity signature does not verify")]
    BadSignature,
    /// The `extra` payload exceeds [`MAX_EXTRA`].
    #[error("extra payload of {0} bytes exceeds the limit")]
    ExtraTooLarge(usize),
    /// A call came in the wrong order (e.g. reading when it is our turn).
    #[error("handshake call out of order")]
    OutOfOrder,
    /// The Noise library failed to build the handshake.
    #[error("noise setup failed: {0}")]
    Setup(String),
}

/// Keys and identity of a finished handshake.
pub struct HandshakeOutcome {
    /// The authenticated identity of the peer.
    pub remote: PeerId,
    /// Key for datagrams we send.
    pub send_key: [u8; 32],
    /// Key for datagrams we receive.
    pub recv_key: [u8; 32],
    /// The Noise handshake hash (unique per session; channel binding).
    pub handshake_hash: [u8; 32],
    /// The peer's X25519 Noise static key (what an IK reconnect needs).
    pub remote_static: [u8; 32],
}

/// Our side's long-lived handshake material for one mesh: the X25519 static
/// key pair and the signed identity binding. Computing it costs a scalar
/// multiplication and a signature, so a node builds it once, not per
/// handshake.
#[derive(Clone)]
pub struct LocalStatic {
    secret: [u8; 32],
    binding: [u8; BINDING_LEN],
    prologue: [u8; 32],
}

impl LocalStatic {
    /// Derives the static key from `identity` and signs the binding for the
    /// mesh `prologue` ([`crate::MeshKeys::prologue`]).
    pub fn new(identity: &Identity, prologue: &[u8; 32]) -> Self {
        let (secret, public) = static_keypair(identity);
        let mut binding = [0u8; BINDING_LEN];
        binding[..32].copy_from_slice(&identity.public_key().0);
        binding[32..].copy_from_slice(&identity.sign(&bind_message(prologue, &public)));
        Self {
            secret,
            binding,
            prologue: *prologue,
        }
    }
}

/// One in-progress Noise XX or IK handshake.
pub struct Handshake {
    state: snow::HandshakeState,
    role: Role,
    pattern: Pattern,
    binding: [u8; BINDING_LEN],
    prologue: [u8; 32],
    remote: Option<PeerId>,
}

struct SeededRng(ChaCha20Rng);

impl RngCore for SeededRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.try_fill_bytes(dest)
    }
}
impl CryptoRng for SeededRng {}
impl Random for SeededRng {}

/// ring for the cipher, snow's defaults (BLAKE2s, X25519) for the rest, and
/// our seeded RNG for ephemeral keys.
struct Resolver {
    seed: [u8; 32],
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        RingResolver
            .resolve_cipher(choice)
            .or_else(|| DefaultResolver.resolve_cipher(choice))
    }
}

/// The X25519 static secret and public key derived from an identity.
pub fn static_keypair(identity: &Identity) -> ([u8; 32], [u8; 32]) {
    let mut h = Blake2s256::new();
    h.update(b"moss/noise-static/v1");
    h.update(identity.seed());
    let secret: [u8; 32] = h.finalize().into();
    let public = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(secret));
    (secret, public.to_bytes())
}

fn bind_message(prologue: &[u8; 32], static_pub: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(BIND_LABEL.len() + 64);
    m.extend_from_slice(BIND_LABEL);
    m.extend_from_slice(prologue);
    m.extend_from_slice(static_pub);
    m
}

fn snow_err(e: snow::Error) -> HandshakeError {
    match e {
        snow::Error::Decrypt => HandshakeError::Decrypt,
        other => HandshakeError::Malformed(other.to_string()),
    }
}

impl Handshake {
    /// Starts a handshake. `prologue` is [`crate::MeshKeys::prologue`];
    /// `rng_seed` supplies the ephemeral key. Builds the static material on
    /// the spot; nodes use [`Handshake::with_static`] instead.
    pub fn new(
        role: Role,
        identity: &Identity,
        prologue: &[u8; 32],
        rng_seed: [u8; 32],
    ) -> Result<Self, HandshakeError> {
        Self::with_static(role, &LocalStatic::new(identity, prologue), rng_seed)
    }

    /// Starts an XX handshake with precomputed static material.
    pub fn with_static(
        role: Role,
        local: &LocalStatic,
        rng_seed: [u8; 32],
    ) -> Result<Self, HandshakeError> {
        Self::build(role, Pattern::Xx, local, None, rng_seed)
    }

    /// Starts an IK handshake as initiator towards the responder whose
    /// X25519 static key is `remote_static` (learnt in an earlier session).
    pub fn ik_initiator(
        local: &LocalStatic,
        remote_static: &[u8; 32],
        rng_seed: [u8; 32],
    ) -> Result<Self, HandshakeError> {
        Self::build(
            Role::Initiator,
            Pattern::Ik,
            local,
            Some(remote_static),
            rng_seed,
        )
    }

    /// Starts an IK handshake as responder (it reads message 1 next).
    pub fn ik_responder(local: &LocalStatic, rng_seed: [u8; 32]) -> Result<Self, HandshakeError> {
        Self::build(Role::Responder, Pattern::Ik, local, None, rng_seed)
    }

    fn build(
        role: Role,
        pattern: Pattern,
        local: &LocalStatic,
        remote_static: Option<&[u8; 32]>,
        rng_seed: [u8; 32],
    ) -> Result<Self, HandshakeError> {
        let name = match pattern {
            Pattern::Xx => PATTERN,
            Pattern::Ik => PATTERN_IK,
        };
        let params = name
            .parse()
            .map_err(|e: snow::Error| HandshakeError::Setup(e.to_string()))?;
        let mut builder =
            snow::Builder::with_resolver(params, Box::new(Resolver { seed: rng_seed }))
                .local_private_key(&local.secret)
                .prologue(&local.prologue);
        if let Some(rs) = remote_static {
            builder = builder.remote_public_key(rs);
        }
        let state = match role {
            Role::Initiator => builder.build_initiator(),
            Role::Responder => builder.build_responder(),
        }
        .map_err(|e| HandshakeError::Setup(e.to_string()))?;
        Ok(Self {
            state,
            role,
            pattern,
            binding: local.binding,
            prologue: local.prologue,
            remote: None,
        })
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The pattern this handshake runs.
    pub fn pattern(&self) -> Pattern {
        self.pattern
    }

    /// True when it is our turn to write.
    pub fn is_my_turn(&self) -> bool {
        self.state.is_my_turn()
    }

    /// True once every message of the pattern has been exchanged.
    pub fn is_finished(&self) -> bool {
        self.state.is_handshake_finished()
    }

    /// The authenticated remote identity, once its binding was read.
    pub fn remote(&self) -> Option<PeerId> {
        self.remote
    }

    /// Writes the next message into `out`, carrying `extra` application
    /// bytes (every message but XX's first also carries our identity
    /// binding).
    pub fn write(&mut self, extra: &[u8], out: &mut [u8]) -> Result<usize, HandshakeError> {
        if !self.state.is_my_turn() || self.state.is_handshake_finished() {
            return Err(HandshakeError::OutOfOrder);
        }
        if extra.len() > MAX_EXTRA {
            return Err(HandshakeError::ExtraTooLarge(extra.len()));
        }
        // XX message 1 carries no static key, so no binding (an IK
        // initiator knows the responder's key from the start).
        let first = self.role == Role::Initiator && self.state.get_remote_static().is_none();
        let mut payload = Vec::with_capacity(BINDING_LEN + extra.len());
        if !first {
            payload.extend_from_slice(&self.binding);
        }
        payload.extend_from_slice(extra);
        self.state.write_message(&payload, out).map_err(snow_err)
    }

    /// Reads the peer's next message; returns its `extra` bytes. Verifies the
    /// identity binding of every message that carries one.
    pub fn read(&mut self, msg: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        if self.state.is_my_turn() || self.state.is_handshake_finished() {
            return Err(HandshakeError::OutOfOrder);
        }
        if msg.len() > MAX_MESSAGE {
            return Err(HandshakeError::Malformed("message too long".into()));
        }
        let mut payload = vec![0u8; MAX_MESSAGE];
        let n = self
            .state
            .read_message(msg, &mut payload)
            .map_err(snow_err)?;
        payload.truncate(n);
        let carries_binding = self.state.get_remote_static().is_some();
        if !carries_binding {
            return Ok(payload);
        }
        if payload.len() < BINDING_LEN {
            return Err(HandshakeError::MissingBinding);
        }
        let static_pub = self
            .state
            .get_remote_static()
            .ok_or(HandshakeError::MissingBinding)?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&payload[..32]);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&payload[32..BINDING_LEN]);
        let peer = PeerId(id);
        if !peer.verify(&bind_message(&self.prologue, static_pub), &sig) {
            return Err(HandshakeError::BadSignature);
        }
        self.remote = Some(peer);
        Ok(payload[BINDING_LEN..].to_vec())
    }

    /// Consumes a finished handshake into transport keys.
    pub fn finish(mut self) -> Result<HandshakeOutcome, HandshakeError> {
        if !self.state.is_handshake_finished() {
            return Err(HandshakeError::OutOfOrder);
        }
        let remote = self.remote.ok_or(HandshakeError::MissingBinding)?;
        let mut handshake_hash = [0u8; 32];
        let h = self.state.get_handshake_hash();
        handshake_hash.copy_from_slice(&h[..32.min(h.len())]);
        let mut remote_static = [0u8; 32];
        let rs = self
            .state
            .get_remote_static()
            .ok_or(HandshakeError::MissingBinding)?;
        if rs.len() != 32 {
            return Err(HandshakeError::MissingBinding);
        }
        remote_static.copy_from_slice(rs);
        let (i2r, r2i) = self.state.dangerously_get_raw_split();
        let (send_key, recv_key) = match self.role {
            Role::Initiator => (i2r, r2i),
            Role::Responder => (r2i, i2r),
        };
        Ok(HandshakeOutcome {
            remote,
            send_key,
            recv_key,
            handshake_hash,
            remote_static,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::MeshKeys;
    use crate::transport::{TransportCipher, TAG_LEN};

    fn run(
        a_pro: &[u8; 32],
        b_pro: &[u8; 32],
    ) -> Result<(HandshakeOutcome, HandshakeOutcome), HandshakeError> {
        let ida = Identity::from_seed([1; 32]);
        let idb = Identity::from_seed([2; 32]);
        let mut a = Handshake::new(Role::Initiator, &ida, a_pro, [3; 32])?;
        let mut b = Handshake::new(Role::Responder, &idb, b_pro, [4; 32])?;
        let mut buf = [0u8; MAX_MESSAGE];
        let n = a.write(b"", &mut buf)?;
        b.read(&buf[..n])?;
        let n = b.write(b"port=1", &mut buf)?;
        assert_eq!(a.read(&buf[..n])?, b"port=1");
        assert_eq!(a.remote(), Some(idb.public_key()));
        let n = a.write(b"x", &mut buf)?;
        assert_eq!(b.read(&buf[..n])?, b"x");
        assert_eq!(b.remote(), Some(ida.public_key()));
        Ok((a.finish()?, b.finish()?))
    }

    #[test]
    fn xx_binds_identities_and_keys_match() {
        let k = MeshKeys::derive("m", None);
        let (a, b) = run(&k.prologue, &k.prologue).unwrap();
        assert_eq!(a.send_key, b.recv_key);
        assert_eq!(a.recv_key, b.send_key);
        assert_eq!(a.handshake_hash, b.handshake_hash);
        let mut ta = TransportCipher::new(&a.send_key, &a.recv_key);
        let mut tb = TransportCipher::new(&b.send_key, &b.recv_key);
        let mut msg = b"ping".to_vec();
        let mut tag = [0u8; TAG_LEN];
        let c = ta.seal(b"", &mut msg, &mut tag).unwrap();
        msg.extend_from_slice(&tag);
        let n = tb.open(c, b"", &mut msg).unwrap();
        assert_eq!(&msg[..n], b"ping");
    }

    #[test]
    fn ik_completes_in_two_messages_and_binds_identities() {
        let k = MeshKeys::derive("m", None);
        let (ida, idb) = (Identity::from_seed([1; 32]), Identity::from_seed([2; 32]));
        let (la, lb) = (
            LocalStatic::new(&ida, &k.prologue),
            LocalStatic::new(&idb, &k.prologue),
        );
        let rs = static_keypair(&idb).1;
        let mut a = Handshake::ik_initiator(&la, &rs, [3; 32]).unwrap();
        let mut b = Handshake::ik_responder(&lb, [4; 32]).unwrap();
        let mut buf = [0u8; MAX_MESSAGE];
        let n = a.write(b"hello", &mut buf).unwrap();
        assert_eq!(b.read(&buf[..n]).unwrap(), b"hello");
        assert_eq!(b.remote(), Some(ida.public_key()));
        let n = b.write(b"port=1", &mut buf).unwrap();
        assert!(b.is_finished());
        assert_eq!(a.read(&buf[..n]).unwrap(), b"port=1");
        assert!(a.is_finished());
        let (a, b) = (a.finish().unwrap(), b.finish().unwrap());
        assert_eq!((a.remote, b.remote), (idb.public_key(), ida.public_key()));
        assert_eq!((a.send_key, a.recv_key), (b.recv_key, b.send_key));
        assert_eq!(a.remote_static, rs);
        assert_eq!(b.remote_static, static_keypair(&ida).1);
    }

    #[test]
    fn ik_to_a_changed_key_does_not_decrypt() {
        let k = MeshKeys::derive("m", None);
        let la = LocalStatic::new(&Identity::from_seed([1; 32]), &k.prologue);
        let lb = LocalStatic::new(&Identity::from_seed([2; 32]), &k.prologue);
        let stale = static_keypair(&Identity::from_seed([9; 32])).1;
        let mut a = Handshake::ik_initiator(&la, &stale, [3; 32]).unwrap();
        let mut b = Handshake::ik_responder(&lb, [4; 32]).unwrap();
        let mut buf = [0u8; MAX_MESSAGE];
        let n = a.write(b"", &mut buf).unwrap();
        assert_eq!(b.read(&buf[..n]), Err(HandshakeError::Decrypt));
    }

    #[test]
    fn wrong_mesh_or_psk_never_completes() {
        let a = MeshKeys::derive("m", Some(&[1; 32]));
        let b = MeshKeys::derive("m", Some(&[2; 32]));
        assert_eq!(
            run(&a.prologue, &b.prologue).err(),
            Some(HandshakeError::Decrypt)
        );
        let c = MeshKeys::derive("other", Some(&[1; 32]));
        assert_eq!(
            run(&a.prologue, &c.prologue).err(),
            Some(HandshakeError::Decrypt)
        );
    }

    #[test]
    fn forged_binding_is_rejected() {
        // A responder that signs with one identity but claims another key.
        let k = MeshKeys::derive("m", None);
        let ida = Identity::from_seed([1; 32]);
        let idb = Identity::from_seed([2; 32]);
        let mut a = Handshake::new(Role::Initiator, &ida, &k.prologue, [3; 32]).unwrap();
        let mut b = Handshake::new(Role::Responder, &idb, &k.prologue, [4; 32]).unwrap();
        b.binding[..32].copy_from_slice(&Identity::from_seed([9; 32]).public_key().0);
        let mut buf = [0u8; MAX_MESSAGE];
        let n = a.write(b"", &mut buf).unwrap();
        b.read(&buf[..n]).unwrap();
        let n = b.write(b"", &mut buf).unwrap();
        assert_eq!(a.read(&buf[..n]), Err(HandshakeError::BadSignature));
    }

    #[test]
    fn out_of_order_and_garbage() {
        let k = MeshKeys::derive("m", None);
        let id = Identity::from_seed([1; 32]);
        let mut r = Handshake::new(Role::Responder, &id, &k.prologue, [3; 32]).unwrap();
        let mut buf = [0u8; MAX_MESSAGE];
        assert_eq!(r.write(b"", &mut buf), Err(HandshakeError::OutOfOrder));
        assert!(r.read(&[1, 2, 3]).is_err());
    }
}
