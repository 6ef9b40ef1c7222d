//! The transport half of established sessions as a sans-IO
//! [`SessionShard`]: unmask the header, look the receiver index up, AEAD
//! open with the replay window (in place), and on the way out seal and
//! mask a session's plaintext.
//!
//! Every [`crate::Node`] goes through one: a single-threaded node owns a
//! local one (every session's keys are in it), and a sharded node
//! ([`crate::Node::detach_transport`]) hands each established session's keys
//! to the engine shard named by the top [`SHARD_BITS`] bits of the
//! session's local index ([`TransportOp::Install`]), which then opens its
//! datagrams and seals the plaintext the node emits per session
//! ([`TransportOp::Send`]). The wire format is the same either way.

use crate::path::Path;
use crate::relay::route::{IndexHash, RelayRoutes, Route, RouteLimits};
use crate::stats::{DropReason, Stats};
use crate::wire::{Head, MAX_DATAGRAM, MAX_PLAINTEXT};
use moss_crypto::scramble::{HEAD_LEN, MIN_DATAGRAM};
use moss_crypto::transport::TAG_LEN;
use moss_crypto::{MeshKeys, OpenError, Scrambler, TransportCipher};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;

/// Bits at the top of a session index that name its owning shard.
pub const SHARD_BITS: u32 = 4;
/// Most shards a detached node can spread its sessions over.
pub const MAX_SHARDS: usize = 1 << SHARD_BITS;
const SHARD_SHIFT: u32 = 32 - SHARD_BITS;
const LOCAL_MASK: u32 = (1 << SHARD_SHIFT) - 1;

/// The shard that owns session index `index` (its top [`SHARD_BITS`] bits).
pub fn owner_of(index: u32) -> usize {
    (index >> SHARD_SHIFT) as usize
}

/// `random` with its top bits replaced by `owner`.
pub(crate) fn with_owner(random: u32, owner: usize) -> u32 {
    (random & LOCAL_MASK) | (((owner % MAX_SHARDS) as u32) << SHARD_SHIFT)
}

/// A 32-bit digest of `path` (std's fixed-key SipHash), never 0: enough
/// to tell a relayed session's supernode from a roaming peer (a collision
/// only keeps a session where it is). Computed at install and when a
/// relayed session's datagram comes from elsewhere, never per datagram.
fn path_tag(path: &Path) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    path.hash(&mut h);
    (h.finish() as u32).max(1)
}

/// Transport state of one established session, moved from the node to the
/// shard that owns it.
pub struct ShardSession {
    remote_index: u32,
    path: Path,
    /// A relayed session's supernode address (its path at install), as
    /// [`path_tag`] (0: not relayed): authenticated data from there never
    /// moves the session, so a datagram the relay forwarded late does not
    /// take a session that migrated to a direct path back to the relay.
    /// A tag, not the address: it fits beside `remote_index` and keeps
    /// every idle session's record at its old size.
    relay: u32,
    cipher: TransportCipher,
}

impl ShardSession {
    pub(crate) fn new(remote_index: u32, path: Path, cipher: TransportCipher) -> Self {
        Self {
            remote_index,
            path,
            relay: 0,
            cipher,
        }
    }

    /// This session is relayed: its path is the supernode's address.
    pub(crate) fn relayed(mut self) -> Self {
        self.relay = path_tag(&self.path);
        self
    }

    /// Where the peer's datagrams come from (and ours go).
    pub fn path(&self) -> Path {
        self.path
    }

    /// The peer's index for this session.
    pub fn remote_index(&self) -> u32 {
        self.remote_index
    }
}

impl std::fmt::Debug for ShardSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("ShardSession")
            .field("remote_index", &self.remote_index)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Work a sharded node hands to the shard owning a session
/// ([`crate::Node::poll_transport`]).
#[derive(Debug)]
pub enum TransportOp {
    /// A session was established: its cipher now lives on the shard.
    Install {
        /// Our local index (names the owning shard).
        index: u32,
        /// The transport half of the session (boxed: ciphers are large,
        /// sends are the common operation).
        session: Box<ShardSession>,
    },
    /// The session is gone; forget its cipher.
    Remove {
        /// Our local index.
        index: u32,
    },
    /// Seal `plaintext` (encoded frames, possibly empty for a keepalive)
    /// into one datagram of session `index` and send it.
    Send {
        /// Our local index.
        index: u32,
        /// Frames; return the buffer with [`crate::Node::recycle`].
        plaintext: Vec<u8>,
    },
    /// Supernode data plane, for **every** shard ([`TransportOp::broadcast`]):
    /// forward datagrams with receiver index `index` along `route`.
    Route {
        /// The far end's session index (not ours).
        index: u32,
        /// Where from and where to.
        route: Route,
        /// The limits in force.
        limits: RouteLimits,
    },
    /// Every shard: forget the routes of relay session `session`.
    Unroute {
        /// The relay session.
        session: u64,
    },
    /// Seal an empty keepalive of session `index` and send it to `to`
    /// instead of the session's path: a probe of a direct path for a
    /// relayed session (migration).
    Probe {
        /// Our local index.
        index: u32,
        /// The address to try.
        to: SocketAddr,
    },
}

impl TransportOp {
    /// The session index the operation is about.
    /// The session index the operation is about (for routes, the far
    /// end's index; for unroutes, 0).
    pub fn index(&self) -> u32 {
        match self {
            Self::Install { index, .. }
            | Self::Remove { index }
            | Self::Send { index, .. }
            | Self::Route { index, .. }
            | Self::Probe { index, .. } => *index,
            Self::Unroute { .. } => 0,
        }
    }

    /// The shard that must carry it out (for a broadcast, the first).
    pub fn shard(&self) -> usize {
        if self.broadcast() {
            return 0;
        }
        owner_of(self.index())
    }

    /// True for the relay data-plane operations every shard applies: the
    /// kernel may hand a relayed end's datagrams to any shard. Each shard
    /// keeps its own copy of the route and its buckets; since one end's
    /// datagrams (one 4-tuple) always land on the same shard, an end's
    /// bucket is in effect one.
    pub fn broadcast(&self) -> bool {
        matches!(self, Self::Route { .. } | Self::Unroute { .. })
    }

    /// A copy of a broadcast operation (`None` for the others).
    pub fn clone_broadcast(&self) -> Option<Self> {
        match *self {
            Self::Route {
                index,
                route,
                limits,
            } => Some(Self::Route {
                index,
                route,
                limits,
            }),
            Self::Unroute { session } => Some(Self::Unroute { session }),
            _ => None,
        }
    }
}

/// What a shard made of one received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Authenticated data of a session this shard owns; the plaintext frames
    /// are `datagram[plain]` (possibly empty: a keepalive). Feed them to
    /// [`crate::Node::handle`] as [`crate::Input::Plaintext`].
    Frames {
        /// Our local session index.
        index: u32,
        /// Where the plaintext lies in the datagram.
        plain: Range<usize>,
    },
    /// A handshake datagram (untouched): feed it to
    /// [`crate::Node::handle_shard_datagram`].
    Handshake,
    /// Data of a session another shard owns (untouched): hand it there.
    Foreign {
        /// The owning shard.
        owner: usize,
    },
    /// Data for an index this shard owns but has no cipher for (untouched):
    /// the install may still be on its way from the node.
    Unknown {
        /// The receiver index.
        index: u32,
    },
    /// Dropped (and counted) for this reason.
    Dropped(DropReason),
    /// Relayed (supernode data plane): send the datagram, untouched, to
    /// `to` (counted as relayed).
    Relay {
        /// The far end.
        to: SocketAddr,
    },
}

/// Why a plaintext could not be sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShardSealError {
    /// This shard holds no cipher for the session.
    #[error("no such session on this shard")]
    UnknownSession,
    /// The plaintext exceeds one datagram.
    #[error("plaintext larger than one datagram")]
    TooLarge,
    /// The session's send counter is exhausted.
    #[error("send counter exhausted")]
    CounterExhausted,
}

/// Where a shard finds the transport records of the sessions it opens
/// and seals, by our local index: its own map (an engine shard's, a
/// sharded node's for its TCP and channel sessions), or, for a
/// single-threaded node, the session table, whose established sessions
/// hold their record themselves (one table, the path and index not kept
/// twice: `moss-bench idle`).
pub(crate) trait Records {
    /// The record of session `index`, if held here.
    fn record(&mut self, index: u32) -> Option<&mut ShardSession>;
    /// True if the record of session `index` is held here.
    fn holds(&self, index: u32) -> bool;
}

impl Records for HashMap<u32, Box<ShardSession>, IndexHash> {
    fn record(&mut self, index: u32) -> Option<&mut ShardSession> {
        self.get_mut(&index).map(|b| &mut **b)
    }

    fn holds(&self, index: u32) -> bool {
        self.contains_key(&index)
    }
}

/// One shard's slice of the session table: transport ciphers and replay
/// windows of the sessions it owns.
pub struct SessionShard {
    core: Core,
    /// Boxed: an idle session's slot is a pointer, not its 144 B of keys
    /// and counters, at the map's spare capacity (`moss-bench idle`).
    /// Keyed by index with [`IndexHash`]: every received data datagram
    /// (relayed ones too) looks its receiver index up here first.
    sessions: HashMap<u32, Box<ShardSession>, IndexHash>,
}

/// Everything of a shard but its records: the receive and seal steps run
/// on this with the records passed in ([`Records`]).
struct Core {
    id: usize,
    /// The shard of a single-threaded node: it owns every index.
    owns_all: bool,
    scrambler: Scrambler,
    stats: Stats,
    routes: RelayRoutes,
    now_ms: u64,
}

impl SessionShard {
    /// Shard number `id` of a node of the mesh with these keys.
    pub fn new(id: usize, keys: &MeshKeys) -> Self {
        Self {
            core: Core {
                id,
                owns_all: false,
                scrambler: Scrambler::new(keys.scramble_key),
                stats: Stats::default(),
                routes: RelayRoutes::new(crate::relay::default_limits()),
                now_ms: 0,
            },
            sessions: HashMap::with_hasher(IndexHash::random()),
        }
    }

    /// The one shard of a node that is not sharded: it owns every index
    /// (never answers [`Inbound::Foreign`]).
    pub fn whole(keys: &MeshKeys) -> Self {
        let mut s = Self::new(0, keys);
        s.core.owns_all = true;
        s
    }

    /// This shard's number.
    pub fn id(&self) -> usize {
        self.core.id
    }

    /// Sessions whose cipher this shard holds.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// True if the shard holds session `index`.
    pub fn contains(&self, index: u32) -> bool {
        self.sessions.contains_key(&index)
    }

    /// Datagram and drop counters of this shard's transport work.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// Counts a drop decided by the driver (e.g. an [`Inbound::Unknown`]
    /// datagram that waited in vain).
    pub fn drop_input(&mut self, r: DropReason) {
        self.core.stats.drops.add(r);
    }

    /// The time relay buckets refill by (the driver's clock, set once per
    /// batch; only a relaying shard reads it).
    pub fn set_clock(&mut self, now: crate::Time) {
        self.core.now_ms = now.as_millis() as u64;
    }

    /// Relay routes this shard forwards by.
    pub fn routes(&self) -> &RelayRoutes {
        &self.core.routes
    }

    /// Takes over the transport half of session `index`.
    pub fn install(&mut self, index: u32, session: Box<ShardSession>) {
        self.sessions.insert(index, session);
    }

    /// Forgets session `index`; true if it was here.
    pub fn remove(&mut self, index: u32) -> bool {
        self.sessions.remove(&index).is_some()
    }

    /// Applies an install or remove; a send is sealed into `out` and its
    /// destination returned.
    pub fn apply(
        &mut self,
        op: TransportOp,
        out: &mut Vec<u8>,
    ) -> Result<Option<(Path, Vec<u8>)>, ShardSealError> {
        match op {
            TransportOp::Install { index, session } => {
                self.install(index, session);
                Ok(None)
            }
            TransportOp::Remove { index } => {
                self.remove(index);
                Ok(None)
            }
            TransportOp::Send { index, plaintext } => {
                let to = self.seal(index, &plaintext, out)?;
                Ok(Some((to, plaintext)))
            }
            TransportOp::Route {
                index,
                route,
                limits,
            } => {
                let c = &mut self.core;
                c.routes.set_limits(limits);
                // A taken index stays with its first session: the later
                // pair's data is not relayed (its ends see a dead relay
                // and go elsewhere), never misdirected.
                let _ = c.routes.add(index, route, c.now_ms);
                Ok(None)
            }
            TransportOp::Unroute { session } => {
                self.core.routes.remove_session(session);
                Ok(None)
            }
            TransportOp::Probe { index, to } => {
                self.seal(index, &[], out)?;
                Ok(Some((Path::Udp(to), Vec::new())))
            }
        }
    }

    /// Handles a datagram received on this shard's socket (counted).
    pub fn receive(&mut self, from: impl Into<Path>, datagram: &mut [u8]) -> Inbound {
        let head = self.core.scrambler.peek_head(datagram);
        self.receive_peeked(from, datagram, head)
    }

    /// The unmasked heads of a receive chunk in one lane-wise pass
    /// ([`Scrambler::peek_heads`]): `heads[i]` is what
    /// [`SessionShard::receive_peeked`] takes for `datagrams[i]`.
    pub fn peek_heads(&self, datagrams: &[&[u8]], heads: &mut [Option<[u8; HEAD_LEN]>]) {
        self.core.scrambler.peek_heads(datagrams, heads);
    }

    /// [`SessionShard::receive`] of a datagram whose head
    /// [`SessionShard::peek_heads`] unmasked already: `head` must be that
    /// peek of these very bytes.
    pub fn receive_peeked(
        &mut self,
        from: impl Into<Path>,
        datagram: &mut [u8],
        head: Option<[u8; HEAD_LEN]>,
    ) -> Inbound {
        self.core.stats.datagrams_in += 1;
        self.core.stats.bytes_in += datagram.len() as u64;
        let r = self.open_peeked(from.into(), datagram, head);
        self.tally(r, datagram.len())
    }

    /// Handles a datagram another shard received and handed over (already
    /// counted there; drops are counted here).
    pub fn receive_forwarded(&mut self, from: impl Into<Path>, datagram: &mut [u8]) -> Inbound {
        let r = self.open(from.into(), datagram);
        self.tally(r, datagram.len())
    }

    /// Counts a drop or a relayed datagram of `len` bytes; returns `r`.
    fn tally(&mut self, r: Inbound, len: usize) -> Inbound {
        let stats = &mut self.core.stats;
        match r {
            Inbound::Dropped(reason) => stats.drops.add(reason),
            Inbound::Relay { .. } => {
                stats.relayed_datagrams += 1;
                stats.relayed_bytes += len as u64;
            }
            _ => {}
        }
        r
    }

    /// The one receive step, counting nothing (the caller counts an
    /// [`Inbound::Dropped`]): checks the size, unmasks the header, and opens
    /// the data of a session this shard holds in place. A peer whose
    /// authenticated data arrives on a new path has roamed: its sends
    /// follow.
    pub fn open(&mut self, from: Path, datagram: &mut [u8]) -> Inbound {
        self.core.open(from, datagram, &mut self.sessions)
    }

    /// [`SessionShard::open`] with the head unmasked already (`head`:
    /// [`SessionShard::peek_heads`] of these bytes).
    pub(crate) fn open_peeked(
        &mut self,
        from: Path,
        datagram: &mut [u8],
        head: Option<[u8; HEAD_LEN]>,
    ) -> Inbound {
        self.core
            .open_peeked(from, datagram, head, &mut self.sessions)
    }

    /// [`SessionShard::open`] with the records kept elsewhere (a
    /// single-threaded node's session table) and the head unmasked already
    /// (`head`: [`SessionShard::peek_heads`] of these bytes).
    pub(crate) fn open_in(
        &mut self,
        from: Path,
        datagram: &mut [u8],
        head: Option<[u8; HEAD_LEN]>,
        records: &mut impl Records,
    ) -> Inbound {
        self.core.open_peeked(from, datagram, head, records)
    }

    /// The unmasked head of `datagram` (`None` if it is too short).
    pub fn peek_head(&self, datagram: &[u8]) -> Option<[u8; HEAD_LEN]> {
        self.core.scrambler.peek_head(datagram)
    }

    /// Seals `plaintext` as one datagram of the session whose record is
    /// `record` into `out` (cleared first) and returns where it goes.
    pub(crate) fn seal_record(
        &mut self,
        record: &mut ShardSession,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Path, ShardSealError> {
        self.core.seal(record, plaintext, out)
    }

    /// Seals `plaintext` as one datagram of session `index` into `out`
    /// (cleared first) and returns where it goes.
    pub fn seal(
        &mut self,
        index: u32,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Path, ShardSealError> {
        let s = self
            .sessions
            .get_mut(&index)
            .ok_or(ShardSealError::UnknownSession)?;
        self.core.seal(s, plaintext, out)
    }
}

impl Core {
    /// [`SessionShard::open`] over `records`.
    fn open(&mut self, from: Path, datagram: &mut [u8], records: &mut impl Records) -> Inbound {
        let head = self.scrambler.peek_head(datagram);
        self.open_peeked(from, datagram, head, records)
    }

    /// [`Core::open`] with the unmasked head given (`head`: the peek of
    /// `datagram`, `None` when it is too short).
    fn open_peeked(
        &mut self,
        from: Path,
        datagram: &mut [u8],
        head: Option<[u8; HEAD_LEN]>,
        records: &mut impl Records,
    ) -> Inbound {
        if datagram.len() < MIN_DATAGRAM {
            return Inbound::Dropped(DropReason::TooShort);
        }
        if datagram.len() > MAX_DATAGRAM {
            return Inbound::Dropped(DropReason::Oversize);
        }
        let Some(raw) = head else {
            return Inbound::Dropped(DropReason::TooShort);
        };
        let (receiver, counter) = match Head::decode(&raw) {
            Ok(Head::Data { receiver, counter }) => (receiver, counter),
            Ok(Head::Handshake { .. }) => return Inbound::Handshake,
            Err(_) => return Inbound::Dropped(DropReason::Unrecognized),
        };
        if !self.routes.is_empty() && !records.holds(receiver) {
            let len = datagram.len();
            match self.routes.forward(receiver, from, len, self.now_ms) {
                Some(Ok(to)) => return Inbound::Relay { to },
                Some(Err(r)) => return Inbound::Dropped(r),
                None => {}
            }
        }
        let owner = owner_of(receiver);
        if owner != self.id && !self.owns_all {
            return Inbound::Foreign { owner };
        }
        let Some(s) = records.record(receiver) else {
            return Inbound::Unknown { index: receiver };
        };
        datagram[..HEAD_LEN].copy_from_slice(&raw);
        match s.cipher.open(counter, &raw, &mut datagram[HEAD_LEN..]) {
            Ok(n) => {
                if s.path != from && (s.relay == 0 || s.relay != path_tag(&from)) {
                    s.path = from;
                }
                Inbound::Frames {
                    index: receiver,
                    plain: HEAD_LEN..HEAD_LEN + n,
                }
            }
            Err(OpenError::Replay) => Inbound::Dropped(DropReason::Replay),
            Err(_) => Inbound::Dropped(DropReason::BadTag),
        }
    }

    /// Seals `plaintext` as one datagram of the session of record `s`.
    fn seal(
        &mut self,
        s: &mut ShardSession,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Path, ShardSealError> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(ShardSealError::TooLarge);
        }
        let head = Head::Data {
            receiver: s.remote_index,
            counter: s.cipher.next_counter(),
        }
        .encode();
        out.clear();
        out.extend_from_slice(&head);
        out.extend_from_slice(plaintext);
        let mut tag = [0u8; TAG_LEN];
        s.cipher
            .seal(&head, &mut out[HEAD_LEN..], &mut tag)
            .map_err(|_| ShardSealError::CounterExhausted)?;
        out.extend_from_slice(&tag);
        self.scrambler.toggle_head(out);
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += out.len() as u64;
        Ok(s.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (SessionShard, SessionShard, MeshKeys) {
        let keys = MeshKeys::derive("shard-unit", None);
        let mut a = SessionShard::new(0, &keys);
        let mut b = SessionShard::new(1, &keys);
        let (ia, ib) = (with_owner(0x1234_5678, 0), with_owner(0x0abc_def0, 1));
        let addr_a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let addr_b: SocketAddr = "10.0.0.2:2".parse().unwrap();
        a.install(
            ia,
            Box::new(ShardSession::new(
                ib,
                addr_b.into(),
                TransportCipher::new(&[1; 32], &[2; 32]),
            )),
        );
        b.install(
            ib,
            Box::new(ShardSession::new(
                ia,
                addr_a.into(),
                TransportCipher::new(&[2; 32], &[1; 32]),
            )),
        );
        (a, b, keys)
    }

    #[test]
    fn seal_then_open_and_every_other_outcome() {
        let (mut a, mut b, keys) = pair();
        let ia = with_owner(0x1234_5678, 0);
        let ib = with_owner(0x0abc_def0, 1);
        let from: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let mut d = Vec::new();
        let to = a.seal(ia, b"frames", &mut d).unwrap();
        assert_eq!(to, "10.0.0.2:2".parse::<SocketAddr>().unwrap());
        let mut copy = d.clone();
        match b.receive(from, &mut d) {
            Inbound::Frames { index, plain } => {
                assert_eq!(index, ib);
                assert_eq!(&d[plain], b"frames");
            }
            other => panic!("{other:?}"),
        }
        // The same datagram again is a replay.
        assert_eq!(
            b.receive(from, &mut copy),
            Inbound::Dropped(DropReason::Replay)
        );
        // An empty keepalive opens to empty frames.
        let mut k = Vec::new();
        a.seal(ia, &[], &mut k).unwrap();
        assert!(
            matches!(b.receive(from, &mut k), Inbound::Frames { plain, .. } if plain.is_empty())
        );
        // Data for shard 1's session arriving at shard 0 is foreign.
        let mut f = Vec::new();
        a.seal(ia, b"x", &mut f).unwrap();
        assert_eq!(a.receive(from, &mut f), Inbound::Foreign { owner: 1 });
        // Removed: unknown (left untouched for a later install).
        b.remove(ib);
        let before = f.clone();
        assert_eq!(
            b.receive_forwarded(from, &mut f),
            Inbound::Unknown { index: ib }
        );
        assert_eq!(f, before);
        // Handshake heads go to the node; junk and short input are dropped.
        let mut h = crate::wire::Head::Handshake {
            kind: crate::wire::Kind::Init,
            pad_len: 0,
            nonce: [0; 12],
        }
        .encode()
        .to_vec();
        h.extend_from_slice(&[0u8; 40]);
        Scrambler::new(keys.scramble_key).toggle_head(&mut h);
        assert_eq!(b.receive(from, &mut h), Inbound::Handshake);
        assert_eq!(
            b.receive(from, &mut [0u8; 8]),
            Inbound::Dropped(DropReason::TooShort)
        );
        assert_eq!(
            a.seal(ia, &[0u8; MAX_PLAINTEXT + 1], &mut d),
            Err(ShardSealError::TooLarge)
        );
        assert_eq!(
            a.seal(ib, b"x", &mut d),
            Err(ShardSealError::UnknownSession)
        );
        assert_eq!(b.stats().drops.get(DropReason::Replay), 1);
    }

    /// Shard 1 of [`pair`] relaying receiver index `RELAYED` from x to y.
    fn relaying() -> (SessionShard, SessionShard, MeshKeys) {
        let (a, mut b, keys) = pair();
        let route = Route {
            src: "10.0.0.7:7".parse().unwrap(),
            dst: "10.0.0.8:8".parse().unwrap(),
            session: 9,
        };
        let limits = RouteLimits {
            peer_burst: 1 << 30,
            peer_rate: 1 << 30,
            total_rate: 1 << 30,
        };
        let op = TransportOp::Route {
            index: RELAYED,
            route,
            limits,
        };
        b.apply(op, &mut Vec::new()).unwrap();
        (a, b, keys)
    }

    const RELAYED: u32 = 0x1777_0001;

    /// 80 datagrams of every kind a shard tells apart, with their senders.
    fn mixed(a: &mut SessionShard, keys: &MeshKeys) -> Vec<(SocketAddr, Vec<u8>)> {
        let ia = with_owner(0x1234_5678, 0);
        let peer: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let x: SocketAddr = "10.0.0.7:7".parse().unwrap();
        let sc = Scrambler::new(keys.scramble_key);
        let mut out = Vec::new();
        let mut last = Vec::new();
        for k in 0..80u32 {
            let mut d = Vec::new();
            let mut from = peer;
            match k % 9 {
                0 | 1 => {
                    a.seal(ia, &k.to_le_bytes(), &mut d).unwrap();
                    last = d.clone();
                }
                2 => d = last.clone(),
                3 | 4 => {
                    d = Head::Data {
                        receiver: RELAYED,
                        counter: u64::from(k),
                    }
                    .encode()
                    .to_vec();
                    d.extend((0..24 + k).map(|j| (j * 7 + k) as u8));
                    sc.toggle_head(&mut d);
                    // Every other one from an address the route is not for.
                    from = if k % 9 == 3 { x } else { peer };
                }
                5 => d = vec![k as u8; (k % 32) as usize],
                6 => {
                    d = Head::Handshake {
                        kind: crate::wire::Kind::Init,
                        pad_len: 0,
                        nonce: [k as u8; 12],
                    }
                    .encode()
                    .to_vec();
                    d.extend_from_slice(&[0u8; 40]);
                    sc.toggle_head(&mut d);
                }
                7 => d = (0..48 + k).map(|j| (j * 13 + k * 3) as u8).collect(),
                _ => {
                    // Data for a session no shard holds, then an oversize one.
                    d = Head::Data {
                        receiver: with_owner(k, (k % 2) as usize),
                        counter: 1,
                    }
                    .encode()
                    .to_vec();
                    d.extend_from_slice(&[1u8; 40]);
                    if k % 2 == 0 {
                        d.resize(MAX_DATAGRAM + 1, 0);
                    }
                    sc.toggle_head(&mut d);
                }
            }
            out.push((from, d));
        }
        out
    }

    #[test]
    fn batched_heads_give_the_same_verdicts_as_one_by_one() {
        let (mut a, mut one, keys) = relaying();
        let (_, mut batched, _) = relaying();
        let input = mixed(&mut a, &keys);
        let mut by_one = input.clone();
        let singles: Vec<Inbound> = by_one
            .iter_mut()
            .map(|(from, d)| one.receive(*from, d))
            .collect();
        let mut by_chunk = input.clone();
        let mut verdicts = Vec::new();
        // A full receive chunk of 64, then a short one (lane tails too).
        let mut rest = &mut by_chunk[..];
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at_mut(rest.len().min(64));
            let views: Vec<&[u8]> = chunk.iter().map(|(_, d)| &d[..]).collect();
            let mut heads = vec![None; views.len()];
            batched.peek_heads(&views, &mut heads);
            for ((from, d), head) in chunk.iter_mut().zip(heads) {
                verdicts.push(batched.receive_peeked(*from, d, head));
            }
            rest = tail;
        }
        assert_eq!(verdicts, singles);
        assert_eq!(by_chunk, by_one);
        assert_eq!(batched.stats(), one.stats());
        // Every kind is in the mix.
        let kinds = |f: fn(&Inbound) -> bool| singles.iter().filter(|v| f(v)).count();
        assert!(kinds(|v| matches!(v, Inbound::Frames { .. })) >= 9);
        assert!(kinds(|v| matches!(v, Inbound::Relay { .. })) >= 4);
        assert!(kinds(|v| matches!(v, Inbound::Handshake)) >= 4);
        assert!(kinds(|v| matches!(v, Inbound::Unknown { .. } | Inbound::Foreign { .. })) >= 2);
        for r in [
            DropReason::Replay,
            DropReason::TooShort,
            DropReason::Oversize,
            DropReason::Unrecognized,
        ] {
            assert!(one.stats().drops.get(r) > 0, "{r:?}");
        }
        assert!(one.stats().relayed_datagrams >= 4);
    }

    #[test]
    fn owner_bits() {
        for owner in 0..MAX_SHARDS {
            let i = with_owner(0xdead_beef, owner);
            assert_eq!(owner_of(i), owner);
            assert_eq!(i & LOCAL_MASK, 0xdead_beef & LOCAL_MASK);
        }
        assert_eq!(owner_of(with_owner(u32::MAX, 17)), 1);
    }
}
