//! The session table: every session slot by local index, and the two
//! indices over it (by path, by authenticated peer), plus the sessions with
//! frames waiting to be sealed. Roaming (a peer's authenticated data from a
//! new path) is [`SessionTable::rebind`], in one place. A slot may own
//! more paths than its own (aliases: the address we dialled when the reply
//! came from elsewhere, the path of a duplicate session it won over), so a
//! dial to any of them counts as connected; they go with the slot.

use crate::path::Path;
use crate::relay::route::IndexHash;
use crate::session::{Established, FragmentResult, Piece, ReassemblyPool, Session};
use crate::shard::{Records, ShardSession};
use crate::Time;
use moss_crypto::PeerId;
use rand_core::RngCore;
use std::collections::HashMap;

/// Session slots and their indices.
///
/// Maps keyed by our own local indices (drawn at random by us, never
/// chosen by a peer) hash with the keyed multiply-fold [`IndexHash`]: the
/// slot map is looked up once per received data datagram, relayed ones
/// too, and SipHash cost more than the rest of that lookup. Maps whose keys
/// a remote picks (its address, its public key, which it can grind, its
/// own handshake index) keep the standard library's SipHash.
#[derive(Default)]
pub(crate) struct SessionTable {
    /// Every slot, handshaking or established, by our local index.
    pub sessions: HashMap<u32, Session, IndexHash>,
    /// The newest slot per peer path (its own path or an alias).
    pub by_path: HashMap<Path, u32>,
    /// Paths other than its own that a slot owns in `by_path`.
    aliases: HashMap<u32, Vec<Path>, IndexHash>,
    /// The established session per peer.
    pub by_peer: HashMap<PeerId, u32>,
    /// Sessions with pending frames, in the order they got them.
    dirty: Vec<u32>,
    /// Responder slots not yet the peer's session, by the path and the
    /// initiator's index of the message 1 that made them: a repeated
    /// message 1 finds its answer here.
    by_dial: HashMap<(Path, u32), u32>,
    /// Buffers every session's reassembly reuses.
    pub reassembly: ReassemblyPool,
}

/// With local transport the established sessions hold their transport
/// records: the shard opens through the table.
impl Records for SessionTable {
    fn record(&mut self, index: u32) -> Option<&mut ShardSession> {
        self.established_mut(index)?.keys.as_deref_mut()
    }

    fn holds(&self, index: u32) -> bool {
        self.established(index).is_some_and(|e| e.keys.is_some())
    }
}

impl SessionTable {
    /// Slot `idx`.
    pub fn get(&self, idx: u32) -> Option<&Session> {
        self.sessions.get(&idx)
    }

    /// Slot `idx`, mutably.
    pub fn get_mut(&mut self, idx: u32) -> Option<&mut Session> {
        self.sessions.get_mut(&idx)
    }

    /// The established state of slot `idx`.
    pub fn established(&self, idx: u32) -> Option<&Established> {
        self.get(idx).and_then(Session::established)
    }

    /// The established state of slot `idx`, mutably.
    pub fn established_mut(&mut self, idx: u32) -> Option<&mut Established> {
        self.get_mut(idx).and_then(Session::established_mut)
    }

    /// Adds one piece of a fragmented message to established session
    /// `idx`'s reassembly (buffers from the table's pool); `None` for a
    /// slot that is not established. A complete body goes back with
    /// `self.reassembly.recycle_body` once used.
    pub fn add_fragment(
        &mut self,
        idx: u32,
        piece: Piece<'_>,
        max_body: usize,
        now: Time,
    ) -> Option<FragmentResult> {
        let e = self.sessions.get_mut(&idx)?.established_mut()?;
        Some(e.reassembly.add(&mut self.reassembly, piece, max_body, now))
    }

    /// The authenticated peer of slot `idx`.
    pub fn peer_of(&self, idx: u32) -> Option<PeerId> {
        self.established(idx).map(|e| e.peer)
    }

    /// The slot for `path`.
    pub fn by_path(&self, path: &Path) -> Option<u32> {
        self.by_path.get(path).copied()
    }

    /// The established session with `peer`.
    pub fn by_peer(&self, peer: &PeerId) -> Option<u32> {
        self.by_peer.get(peer).copied()
    }

    /// Indices of every established peer's session, in index order (the
    /// map's own order is random: frames queued in it would leave in
    /// another order in every run).
    pub fn peer_indices(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.by_peer.values().copied().collect();
        v.sort_unstable();
        v
    }

    /// Handshakes in flight.
    pub fn pending_handshakes(&self) -> usize {
        self.sessions.len() - self.by_peer.len()
    }

    /// Points `path` at slot `idx`.
    pub fn bind(&mut self, path: Path, idx: u32) {
        self.by_path.insert(path, idx);
    }

    /// Points `path` at slot `idx` as an alias: it stays there when the
    /// slot moves (roaming) and goes when the slot is removed.
    pub fn alias(&mut self, path: Path, idx: u32) {
        self.by_path.insert(path, idx);
        let list = self.aliases.entry(idx).or_default();
        if !list.contains(&path) {
            list.push(path);
        }
    }

    /// Hands every path of slot `from` (its own and its aliases) to slot
    /// `to` as aliases: `from` lost a duplicate to `to`, and a dial to any
    /// of them would reach the same peer again.
    pub fn merge_paths(&mut self, from: u32, to: u32) {
        let own = self.sessions.get(&from).map(|s| s.path);
        let target = self.sessions.get(&to).map(|s| s.path);
        let moved = self.aliases.remove(&from).unwrap_or_default();
        for p in own.into_iter().chain(moved) {
            if self.by_path.get(&p).is_some_and(|&i| i != from && i != to) {
                continue;
            }
            if Some(p) == target {
                self.by_path.insert(p, to);
            } else {
                self.alias(p, to);
            }
        }
    }

    /// An authenticated datagram of established session `idx` arrived on
    /// `path` at `now`: the session is alive, and a new path means the peer
    /// roamed. False if `idx` is no established session.
    pub fn heard(&mut self, idx: u32, path: Path, now: Time) -> bool {
        let Some(s) = self.sessions.get_mut(&idx) else {
            return false;
        };
        let Some(retired) = s.established().map(|e| e.retired.is_some()) else {
            return false;
        };
        s.heard(now);
        // A retired duplicate's paths belong to the session that won.
        if !retired && s.path != path {
            self.rebind(idx, path);
        }
        true
    }

    /// Moves slot `idx` to `path` (the peer roamed, or the handshake reply
    /// came from elsewhere).
    pub fn rebind(&mut self, idx: u32, path: Path) {
        let Some(s) = self.sessions.get_mut(&idx) else {
            return;
        };
        if s.path != path {
            if self.by_path.get(&s.path) == Some(&idx) {
                self.by_path.remove(&s.path);
            }
            s.path = path;
        }
        self.by_path.insert(path, idx);
    }

    /// Adds a slot.
    pub fn insert(&mut self, idx: u32, s: Session) {
        self.sessions.insert(idx, s);
    }

    /// Takes slot `idx` out, unbinding its path and aliases where they
    /// point here (the peer index is the caller's: it decides about
    /// disconnect events).
    pub fn remove(&mut self, idx: u32) -> Option<Session> {
        let s = self.take(idx)?;
        self.unbind(idx, s.path);
        Some(s)
    }

    /// Takes slot `idx` out and leaves its paths bound, for a caller that
    /// puts it back under the same index ([`SessionTable::insert`]) or
    /// else calls [`SessionTable::unbind`].
    pub fn take(&mut self, idx: u32) -> Option<Session> {
        let s = self.sessions.remove(&idx)?;
        self.forget_dial(idx, s.path, s.remote_index);
        Some(s)
    }

    /// Notes responder slot `idx`, made by the message 1 with sender index
    /// `remote` from `path`.
    pub fn note_dial(&mut self, path: Path, remote: u32, idx: u32) {
        self.by_dial.insert((path, remote), idx);
    }

    /// The responder slot that message 1 with sender index `remote` from
    /// `path` made.
    pub fn by_dial(&self, path: Path, remote: u32) -> Option<u32> {
        self.by_dial.get(&(path, remote)).copied()
    }

    /// True while a responder slot made by a message 1 from `path` waits
    /// for its message 3.
    pub fn answering(&self, path: Path) -> bool {
        self.by_dial.keys().any(|(p, _)| *p == path)
    }

    /// Forgets `(path, remote)` if it still names slot `idx`.
    pub fn forget_dial(&mut self, idx: u32, path: Path, remote: u32) {
        if self.by_dial.get(&(path, remote)) == Some(&idx) {
            self.by_dial.remove(&(path, remote));
        }
    }

    /// The established, current (not retired) session other than `except`
    /// that `path` names and whose own path it is, with its peer.
    pub fn other_on(&self, path: Path, except: u32) -> Option<(u32, PeerId)> {
        let idx = self.by_path(&path).filter(|&i| i != except)?;
        let s = self.sessions.get(&idx).filter(|s| s.path == path)?;
        let e = s
            .established()
            .filter(|e| e.retired.is_none() && !e.unconfirmed)?;
        Some((idx, e.peer))
    }

    /// Unbinds `path` (the slot's own) and the aliases of slot `idx`
    /// wherever they still point at it.
    pub fn unbind(&mut self, idx: u32, path: Path) {
        let aliases = self.aliases.remove(&idx).unwrap_or_default();
        for p in std::iter::once(path).chain(aliases) {
            if self.by_path.get(&p) == Some(&idx) {
                self.by_path.remove(&p);
            }
        }
    }

    /// A fresh local index: non-zero, unused, shaped by `shape` (the
    /// owning shard's bits when sharded).
    pub fn fresh_index(&self, rng: &mut impl RngCore, shape: impl Fn(u32) -> u32) -> u32 {
        loop {
            let i = shape(rng.next_u32());
            if i != 0 && !self.sessions.contains_key(&i) {
                return i;
            }
        }
    }

    /// Notes that slot `idx` has pending frames.
    pub fn mark_dirty(&mut self, idx: u32) {
        if !self.dirty.contains(&idx) {
            self.dirty.push(idx);
        }
    }

    /// The dirty list, taken (give it back with [`SessionTable::restore_dirty`]
    /// so its capacity is kept: no allocation per round).
    pub fn take_dirty(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.dirty)
    }

    /// Returns the (worked-off) dirty list, keeping entries marked since.
    pub fn restore_dirty(&mut self, mut list: Vec<u32>) {
        list.clear();
        list.append(&mut self.dirty);
        self.dirty = list;
    }
}
