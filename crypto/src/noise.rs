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
use curve25519_dalek::montgomery::MontgomeryPoint;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, RingResolver};
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
    public: [u8; 32],
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
            public,
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

/// The primitives of moss's two patterns and nothing else: X25519
/// ([`Dh25519`]), BLAKE2s ([`Blake2sHash`]), ring's ChaCha20-Poly1305, and
/// our seeded RNG for ephemeral keys. snow's default resolver (AES-GCM,
/// SHA-2, BLAKE2b and a second ChaCha20-Poly1305) is not referenced, so
/// a build that drops unused code (the browser's LTO) leaves it out.
struct Resolver {
    seed: [u8; 32],
    /// Our static key pair, so setting the static key costs no scalar
    /// multiplication.
    local: ([u8; 32], [u8; 32]),
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng(ChaCha20Rng::from_seed(self.seed))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(Dh25519 {
                privkey: [0; 32],
                pubkey: [0; 32],
                known: self.local,
            })),
            _ => None,
        }
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::Blake2s => Some(Box::new(Blake2sHash(Blake2s256::new()))),
            _ => None,
        }
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        match choice {
            CipherChoice::ChaChaPoly => RingResolver.resolve_cipher(choice),
            _ => None,
        }
    }
}

/// X25519 through curve25519-dalek (as snow's default). `set` with the
/// secret of `known` takes its public key instead of deriving it again.
struct Dh25519 {
    privkey: [u8; 32],
    pubkey: [u8; 32],
    known: ([u8; 32], [u8; 32]),
}

impl Dh for Dh25519 {
    fn name(&self) -> &'static str {
        "25519"
    }
    fn pub_len(&self) -> usize {
        32
    }
    fn priv_len(&self) -> usize {
        32
    }
    fn set(&mut self, privkey: &[u8]) {
        let mut bytes = [0u8; 32];
        let n = privkey.len().min(32);
        bytes[..n].copy_from_slice(&privkey[..n]);
        self.privkey = bytes;
        self.pubkey = if same_secret(&bytes, &self.known.0) {
            self.known.1
        } else {
            MontgomeryPoint::mul_base_clamped(bytes).to_bytes()
        };
    }
    fn generate(&mut self, rng: &mut dyn Random) {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        self.privkey = bytes;
        self.pubkey = MontgomeryPoint::mul_base_clamped(bytes).to_bytes();
    }
    fn pubkey(&self) -> &[u8] {
        &self.pubkey
    }
    fn privkey(&self) -> &[u8] {
        &self.privkey
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let mut point = [0u8; 32];
        point.copy_from_slice(pubkey.get(..32).ok_or(snow::Error::Dh)?);
        let shared = MontgomeryPoint(point).mul_clamped(self.privkey).to_bytes();
        out.get_mut(..32)
            .ok_or(snow::Error::Dh)?
            .copy_from_slice(&shared);
        Ok(())
    }
}

/// Equality of two secrets without a data-dependent early exit.
fn same_secret(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// BLAKE2s-256 for snow's hash, HMAC and HKDF.
struct Blake2sHash(Blake2s256);

impl Hash for Blake2sHash {
    fn name(&self) -> &'static str {
        "BLAKE2s"
    }
    fn block_len(&self) -> usize {
        64
    }
    fn hash_len(&self) -> usize {
        32
    }
    fn reset(&mut self) {
        self.0 = Blake2s256::new();
    }
    fn input(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn result(&mut self, out: &mut [u8]) {
        let h = self.0.finalize_reset();
        if let Some(o) = out.get_mut(..32) {
            o.copy_from_slice(&h);
        }
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
        let mut builder = snow::Builder::with_resolver(
            params,
            Box::new(Resolver {
                seed: rng_seed,
                local: (local.secret, local.public),
            }),
        )
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

    /// snow's default X25519 and BLAKE2s with ring's cipher (the resolver
    /// this module used before its own), for the interop check.
    struct SnowDefaults([u8; 32]);

    impl CryptoResolver for SnowDefaults {
        fn resolve_rng(&self) -> Option<Box<dyn Random>> {
            Some(Box::new(SeededRng(ChaCha20Rng::from_seed(self.0))))
        }
        fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
            snow::resolvers::DefaultResolver.resolve_dh(choice)
        }
        fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
            snow::resolvers::DefaultResolver.resolve_hash(choice)
        }
        fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
            RingResolver.resolve_cipher(choice)
        }
    }

    fn snow_side(
        resolver: Box<dyn CryptoResolver + Send>,
        local: &LocalStatic,
        initiator: bool,
    ) -> snow::HandshakeState {
        let b = snow::Builder::with_resolver(PATTERN.parse().unwrap(), resolver)
            .local_private_key(&local.secret)
            .prologue(&local.prologue);
        if initiator {
            b.build_initiator().unwrap()
        } else {
            b.build_responder().unwrap()
        }
    }

    #[test]
    fn own_resolver_writes_what_snows_default_writes() {
        let k = MeshKeys::derive("m", None);
        let la = LocalStatic::new(&Identity::from_seed([1; 32]), &k.prologue);
        let lb = LocalStatic::new(&Identity::from_seed([2; 32]), &k.prologue);
        let ours = |l: &LocalStatic, seed| {
            Box::new(Resolver {
                seed,
                local: (l.secret, l.public),
            })
        };
        // Same seeds: our resolver and snow's defaults write the same bytes.
        let mut a1 = snow_side(ours(&la, [3; 32]), &la, true);
        let mut b1 = snow_side(ours(&lb, [4; 32]), &lb, false);
        let mut a2 = snow_side(Box::new(SnowDefaults([3; 32])), &la, true);
        let mut b2 = snow_side(Box::new(SnowDefaults([4; 32])), &lb, false);
        type Hs = snow::HandshakeState;
        fn step(w1: &mut Hs, r1: &mut Hs, w2: &mut Hs, r2: &mut Hs) {
            let (mut m1, mut m2, mut p) = ([0u8; 256], [0u8; 256], [0u8; 256]);
            let n1 = w1.write_message(b"x", &mut m1).unwrap();
            let n2 = w2.write_message(b"x", &mut m2).unwrap();
            assert_eq!(m1[..n1], m2[..n2]);
            r1.read_message(&m1[..n1], &mut p).unwrap();
            r2.read_message(&m2[..n2], &mut p).unwrap();
        }
        step(&mut a1, &mut b1, &mut a2, &mut b2);
        step(&mut b1, &mut a1, &mut b2, &mut a2);
        step(&mut a1, &mut b1, &mut a2, &mut b2);
        let (mut m1, mut p) = ([0u8; 256], [0u8; 256]);
        assert_eq!(a1.get_handshake_hash(), a2.get_handshake_hash());
        // Across resolvers: ours against snow's defaults completes.
        let mut a = snow_side(ours(&la, [5; 32]), &la, true);
        let mut b = snow_side(Box::new(SnowDefaults([6; 32])), &lb, false);
        let n = a.write_message(&[], &mut m1).unwrap();
        b.read_message(&m1[..n], &mut p).unwrap();
        let n = b.write_message(&[], &mut m1).unwrap();
        a.read_message(&m1[..n], &mut p).unwrap();
        let n = a.write_message(&[], &mut m1).unwrap();
        b.read_message(&m1[..n], &mut p).unwrap();
        assert_eq!(a.get_handshake_hash(), b.get_handshake_hash());
        assert_eq!(b.get_remote_static(), Some(&la.public[..]));
    }

    #[test]
    fn static_key_of_another_secret_is_derived() {
        let mut dh = Dh25519 {
            privkey: [0; 32],
            pubkey: [0; 32],
            known: ([1; 32], [2; 32]),
        };
        dh.set(&[1; 32]);
        assert_eq!(dh.pubkey(), &[2; 32]);
        dh.set(&[9; 32]);
        assert_eq!(
            dh.pubkey(),
            &MontgomeryPoint::mul_base_clamped([9; 32]).to_bytes()
        );
        let mut out = [0u8; 32];
        assert!(dh.dh(&[5; 31], &mut out).is_err());
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
