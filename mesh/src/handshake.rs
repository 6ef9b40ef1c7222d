//! The handshake side of the node: dialling (Noise IK to a responder whose
//! static key we hold, XX otherwise), answering, retransmitting, hints,
//! and turning a finished exchange into an established session.

use crate::cookie::{
    CookieJar, CookieReply, CookiedInit, COOKIED_BURST, COOKIED_INTERVAL, COOKIED_RATE,
    COOKIE_REPLY_BODY, COOKIE_REPLY_BURST, COOKIE_REPLY_INTERVAL, COOKIE_REPLY_RATE,
};
use crate::event::{DisconnectReason, Event};
use crate::hint::{
    Hint, HintReason, RateMap, HINT_BURST, HINT_INTERVAL, HINT_RATE, PROBE_INTERVAL, RATE_MAP_CAP,
};
use crate::node::{Node, HANDSHAKE_BURST, HANDSHAKE_RATE, HANDSHAKE_RETRY, MAX_PENDING_HANDSHAKES};
use crate::path::Path;
use crate::session::{Established, Pending, Reassembly, Session, Stamp, State, TokenBucket};
use crate::stats::DropReason;
use crate::wire::{Frame, HandshakeBody, Head, Kind, HANDSHAKE_FIXED};
use crate::Time;
use moss_crypto::noise::MAX_MESSAGE;
use moss_crypto::{
    Handshake, HandshakeError, HandshakeOutcome, Identity, LocalStatic, MeshKeys, Pattern, PeerId,
    Role, Scrambler, TransportCipher,
};
use rand_core::RngCore;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Shortest gap between two answers to repeated copies of one message 1.
pub const ECHO_INTERVAL: Duration = Duration::from_millis(250);
/// How long a session that lost a duplicate still takes the peer's
/// datagrams (below [`crate::liveness::IDLE_TIMEOUT`]).
pub const RETIRE_GRACE: Duration = Duration::from_secs(5);
/// CLOSE reason 1: the session lost to a duplicate with the same peer, or
/// another peer's session took its path.
pub const CLOSE_DUPLICATE: u8 = 1;
/// An IK dial with no answer for this long falls back to XX (a hint that
/// the responder refused it falls back at once).
pub const IK_FALLBACK: Duration = Duration::from_millis(1200);

/// What the handshake side of a node owns: the static key (with its
/// binding signature), the budget of answered initiations, the mask of
/// handshake datagrams, the static keys of peers by path (for IK), and the
/// rate limits of hints and re-handshakes.
pub(crate) struct Handshaker {
    pub local_static: LocalStatic,
    pub budget: TokenBucket,
    pub scrambler: Scrambler,
    /// The X25519 static key of the peer last established on each path,
    /// at most [`RATE_MAP_CAP`] of them.
    known: BTreeMap<Path, [u8; 32]>,
    /// Hints sent, per path, one map per [`HintReason`] (a refused IK
    /// dial is answered even right after an unknown-session hint).
    hints: [RateMap; 2],
    /// All hints sent, any path.
    hint_budget: TokenBucket,
    /// Re-handshakes started because of hints or silence, per path.
    probes: RateMap,
    /// The rotating cookie secret.
    pub cookies: CookieJar,
    /// All cookie replies sent.
    cookie_replies: TokenBucket,
    /// Cookie replies sent, per origin ([`crate::cookie::origin`]).
    cookie_paths: RateMap,
    /// Cookied message 1s answered, all paths.
    cookied: TokenBucket,
    /// Cookied message 1s answered, per origin.
    cookied_paths: RateMap,
}

impl Handshaker {
    /// The handshaker of a node with this identity in the mesh of `keys`.
    pub fn new(identity: &Identity, keys: &MeshKeys, cookie_seed: [u8; 32], now: Time) -> Self {
        Self {
            local_static: LocalStatic::new(identity, &keys.prologue),
            budget: TokenBucket::new(HANDSHAKE_BURST, HANDSHAKE_RATE, now),
            scrambler: Scrambler::new(keys.scramble_key),
            known: BTreeMap::new(),
            hints: Default::default(),
            hint_budget: TokenBucket::new(HINT_BURST, HINT_RATE, now),
            probes: RateMap::default(),
            cookies: CookieJar::new(cookie_seed, now),
            cookie_replies: TokenBucket::new(COOKIE_REPLY_BURST, COOKIE_REPLY_RATE, now),
            cookied: TokenBucket::new(COOKIED_BURST, COOKIED_RATE, now),
            cookied_paths: RateMap::default(),
            cookie_paths: RateMap::default(),
        }
    }

    /// Remembers the static key of the peer just established on `path`.
    fn learn(&mut self, path: Path, key: [u8; 32]) {
        if self.known.len() >= RATE_MAP_CAP && !self.known.contains_key(&path) {
            // Bounded: forget one (it costs one XX dial), the same one in
            // every replay of a seed (not hash order): the smallest path,
            // the ordered map's first entry, in O(log n) and not a scan of
            // all of them on every new session once full.
            self.known.pop_first();
        }
        self.known.insert(path, key);
    }

    /// Forgets old rate-limit entries (on the housekeeping tick).
    pub fn expire(&mut self, now: Time) {
        for m in &mut self.hints {
            m.expire(now, HINT_INTERVAL);
        }
        self.probes.expire(now, crate::liveness::SILENCE);
        self.cookied_paths.expire(now, COOKIED_INTERVAL);
        self.cookie_paths.expire(now, COOKIE_REPLY_INTERVAL);
    }

    /// Builds a scrambled datagram around one Noise message, padded with
    /// up to `max_pad` random bytes, into `d` (empty).
    pub fn datagram(
        &self,
        rng: &mut impl RngCore,
        max_pad: u32,
        kind: Kind,
        (sender, receiver): (u32, u32),
        noise: &[u8],
        mut d: Vec<u8>,
    ) -> Vec<u8> {
        let room = crate::wire::MAX_DATAGRAM
            .saturating_sub(moss_crypto::scramble::HEAD_LEN + HANDSHAKE_FIXED + noise.len())
            as u32;
        let pad_len = if max_pad == 0 {
            0
        } else {
            rng.next_u32() % (max_pad.min(room) + 1)
        } as u16;
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut nonce);
        let head = Head::Handshake {
            kind,
            pad_len,
            nonce,
        }
        .encode();
        d.extend_from_slice(&head);
        HandshakeBody {
            sender,
            receiver,
            noise,
        }
        .encode(&mut d);
        let start = d.len();
        d.resize(start + pad_len as usize, 0);
        rng.fill_bytes(&mut d[start..]);
        // Message 1 with no padding is 42 body bytes, above the 16-byte sample.
        self.scrambler
            .toggle_body(&nonce, &mut d[moss_crypto::scramble::HEAD_LEN..]);
        self.scrambler.toggle_head(&mut d);
        d
    }
}

/// The handshake's extra payload: the address we saw the peer's datagram
/// come from, when the path has one (nothing for relays and channels).
fn encode_observed(p: Path) -> Vec<u8> {
    let mut v = Vec::new();
    if let Some(a) = p.udp() {
        crate::nat::encode_addr(a, &mut v);
    }
    v
}

impl Node {
    /// Dials `addr` unless a session (or a dial) to it already exists.
    pub fn connect(&mut self, addr: SocketAddr) {
        self.connect_path(Path::Udp(addr));
    }

    /// Dials the peer at the end of `path` (a UDP address, or a channel the
    /// host carries) unless a session (or a dial) on it already exists, or
    /// the peer there is dialling us (we answered its message 1 and wait
    /// for message 3): that handshake gives the session, and a dial of
    /// ours now would cross it, after the peer's came up at its end.
    pub fn connect_path(&mut self, path: Path) {
        if self.table.by_path(&path).is_some() || self.table.answering(path) {
            return;
        }
        self.dial(path, false, true);
    }

    /// Starts a handshake to `path`: IK when we hold the static key of the
    /// peer last established there (and `allow_ik`), XX otherwise. A
    /// `probe` (re-handshake to a peer we hold a session with) leaves the
    /// path bound to that session and reports no failure.
    fn dial(&mut self, path: Path, probe: bool, allow_ik: bool) {
        if self.table.pending_handshakes() >= MAX_PENDING_HANDSHAKES {
            if !probe {
                self.events.push_back(Event::ConnectFailed {
                    addr: path,
                    reason: "too many handshakes in flight".into(),
                });
            }
            return;
        }
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let local = &self.handshaker.local_static;
        let known = allow_ik.then(|| self.handshaker.known.get(&path)).flatten();
        let (kind, built) = match known {
            Some(rs) => (Kind::IkInit, Handshake::ik_initiator(local, rs, seed)),
            None => (
                Kind::Init,
                Handshake::with_static(Role::Initiator, local, seed),
            ),
        };
        // XX message 1 is empty; IK's carries the address we dial (what
        // we observe of the responder), as message 2 does the other way.
        let extra = match kind {
            Kind::IkInit => encode_observed(path),
            _ => Vec::new(),
        };
        let msg1 = built.and_then(|mut hs| {
            let mut msg = [0u8; MAX_MESSAGE];
            let n = hs.write(&extra, &mut msg)?;
            Ok((hs, msg, n))
        });
        let (hs, msg, n) = match msg1 {
            Ok(x) => x,
            Err(e) => {
                if !probe {
                    self.events.push_back(Event::ConnectFailed {
                        addr: path,
                        reason: e.to_string(),
                    });
                }
                return;
            }
        };
        self.transport.pick_dial_owner();
        let idx = self.random_index();
        let datagram = self.handshake_datagram(kind, idx, 0, &msg[..n]);
        let now = self.now;
        self.table.insert(
            idx,
            Session {
                remote_index: 0,
                path,
                last_recv: Stamp::at(now),
                last_send: Stamp::at(now),
                state: State::Initiating(Box::new(Pending {
                    hs,
                    last_datagram: datagram.clone(),
                    created: now,
                    attempts: 0,
                    next_retry: now + HANDSHAKE_RETRY,
                    last_echo: now,
                    probe,
                })),
            },
        );
        if !probe {
            self.table.bind(path, idx);
        }
        self.stats.handshakes_initiated += 1;
        self.emit(path, datagram);
    }

    /// An IK dial in slot `idx` got no answer, or a hint that it was
    /// refused: the key we held for its path is stale. The slot goes
    /// quietly and an XX dial takes its place.
    pub(crate) fn fall_back_to_xx(&mut self, idx: u32) {
        let Some(s) = self.table.remove(idx) else {
            return;
        };
        let State::Initiating(p) = &s.state else {
            return;
        };
        self.handshaker.known.remove(&s.path);
        self.dial(s.path, p.probe, false);
    }

    /// IK dials due to fall back to XX at `now`, in index order (each
    /// fallback draws from the seeded RNG).
    pub(crate) fn ik_overdue(&self, now: Time) -> Vec<u32> {
        let mut due: Vec<u32> = self
            .table
            .sessions
            .iter()
            .filter_map(|(&idx, s)| match &s.state {
                State::Initiating(p)
                    if p.hs.pattern() == Pattern::Ik
                        && now.saturating_sub(p.created) >= IK_FALLBACK =>
                {
                    Some(idx)
                }
                _ => None,
            })
            .collect();
        due.sort_unstable();
        due
    }

    /// Starts a re-handshake to the peer of established session `idx` on
    /// its path (at most one per `interval` per path): the peer restarted
    /// (a hint said so: [`PROBE_INTERVAL`]) or fell silent (once per
    /// silence, [`crate::liveness::SILENCE`]). The old session lives on
    /// until the new one replaces it.
    pub(crate) fn probe(&mut self, idx: u32, interval: Duration) {
        let Some(path) = self.table.get(idx).map(|s| s.path) else {
            return;
        };
        if self.handshaker.probes.allow(path, self.now, interval) {
            self.dial(path, true, true);
        }
    }

    /// A handshake-kind datagram of `kind` around the concatenated `body`
    /// parts (padding included, `pad_len` bytes of it): a fresh nonce, the
    /// body scrambled, the head masked.
    pub(crate) fn sealed_handshake_kind(
        &mut self,
        kind: Kind,
        pad_len: u16,
        body: &[&[u8]],
    ) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        self.rng.fill_bytes(&mut nonce);
        let mut d = self.outbox.buffer();
        d.extend_from_slice(
            &Head::Handshake {
                kind,
                pad_len,
                nonce,
            }
            .encode(),
        );
        for part in body {
            d.extend_from_slice(part);
        }
        let scrambler = &self.handshaker.scrambler;
        scrambler.toggle_body(&nonce, &mut d[moss_crypto::scramble::HEAD_LEN..]);
        scrambler.toggle_head(&mut d);
        d
    }

    /// Sends `hint` to `from` unless one went there within
    /// [`HINT_INTERVAL`] or the overall hint budget is spent. Only for a
    /// prompt of at least a hint's size (never an amplifier).
    pub(crate) fn send_hint(&mut self, from: Path, hint: Hint, prompt_len: usize) {
        if prompt_len < moss_crypto::scramble::MIN_DATAGRAM
            || !self.handshaker.hints[hint.reason as usize].allow(from, self.now, HINT_INTERVAL)
            || !self.handshaker.hint_budget.take(1, self.now)
        {
            return;
        }
        let mut fill = [0u8; 11];
        self.rng.fill_bytes(&mut fill);
        let d = self.sealed_handshake_kind(Kind::Hint, 0, &[&hint.encode(fill)]);
        self.stats.hints_sent += 1;
        self.emit(from, d);
    }

    /// A hint arrived from `from`.
    fn on_hint(&mut self, from: Path, pad_len: u16, body: &[u8]) {
        let Ok(h) = Hint::decode(body, pad_len) else {
            return self.drop_input(DropReason::BadHint);
        };
        match h.reason {
            HintReason::UnknownSession => {
                // Only the session on that path whose peer index it names.
                let idx = self.table.by_path(&from).filter(|&i| {
                    self.table.get(i).is_some_and(|s| {
                        s.path == from
                            && s.remote_index == h.index
                            && s.established().is_some_and(|e| e.retired.is_none())
                    })
                });
                match idx {
                    Some(idx) => self.probe(idx, PROBE_INTERVAL),
                    None => self.drop_input(DropReason::BadHint),
                }
            }
            HintReason::IkRefused => {
                let ours = self.table.get(h.index).is_some_and(|s| {
                    s.path == from
                        && matches!(&s.state, State::Initiating(p) if p.hs.pattern() == Pattern::Ik)
                });
                if ours {
                    self.fall_back_to_xx(h.index);
                } else {
                    self.drop_input(DropReason::BadHint);
                }
            }
        }
    }

    /// Builds a scrambled, padded handshake datagram.
    fn handshake_datagram(
        &mut self,
        kind: Kind,
        sender: u32,
        receiver: u32,
        noise: &[u8],
    ) -> Vec<u8> {
        let buf = self.outbox.buffer();
        let max_pad = u32::from(self.cfg.obfs_pad_max);
        self.handshaker
            .datagram(&mut self.rng, max_pad, kind, (sender, receiver), noise, buf)
    }

    pub(crate) fn handle_handshake(&mut self, from: Path, kind: Kind, pad_len: u16, body: &[u8]) {
        match kind {
            Kind::Hint => return self.on_hint(from, pad_len, body),
            Kind::CookieReply => return self.on_cookie_reply(from, pad_len, body),
            Kind::CookieInit => return self.on_cookied_init(from, pad_len, body),
            Kind::NatToken => return self.nat_token(from, pad_len, body),
            _ => {}
        }
        let Ok(b) = HandshakeBody::decode(body, pad_len) else {
            return self.drop_input(DropReason::BadHandshake);
        };
        match kind {
            Kind::Init => self.on_init(from, b, Pattern::Xx, false),
            Kind::IkInit => self.on_init(from, b, Pattern::Ik, false),
            Kind::Response | Kind::IkResponse => self.on_response(from, kind, b),
            Kind::Final => self.on_final(b),
            Kind::Data | Kind::Hint | Kind::CookieReply | Kind::CookieInit | Kind::NatToken => {
                self.drop_input(DropReason::BadHandshake)
            }
        }
    }

    fn fail_reason(e: &HandshakeError) -> DropReason {
        match e {
            HandshakeError::Decrypt => DropReason::HandshakeDecrypt,
            HandshakeError::BadSignature | HandshakeError::MissingBinding => {
                DropReason::HandshakeAuth
            }
            _ => DropReason::BadHandshake,
        }
    }

    /// A message 1 echoing a cookie: admitted ahead of a flood when the
    /// cookie is this path's.
    fn on_cookied_init(&mut self, from: Path, pad_len: u16, body: &[u8]) {
        let Ok(c) = CookiedInit::decode(body, pad_len) else {
            return self.drop_input(DropReason::BadHandshake);
        };
        if !self.handshaker.cookies.valid(&from, &c.cookie) {
            return self.drop_input(DropReason::BadCookie);
        }
        let pattern = match c.inner {
            Kind::IkInit => Pattern::Ik,
            _ => Pattern::Xx,
        };
        self.on_init(from, c.body, pattern, true);
    }

    /// A cookie reply from `from`: our message 1 to it goes again at once,
    /// carrying the cookie (and so do its retransmissions).
    fn on_cookie_reply(&mut self, from: Path, pad_len: u16, body: &[u8]) {
        let Ok(r) = CookieReply::decode(body, pad_len) else {
            return self.drop_input(DropReason::BadCookie);
        };
        let scrambler = &self.handshaker.scrambler;
        let Some(State::Initiating(p)) = self
            .table
            .sessions
            .get(&r.index)
            .filter(|s| s.path == from)
            .map(|s| &s.state)
        else {
            return self.drop_input(DropReason::BadCookie);
        };
        // Our message 1 as it was: unmask, unscramble, drop an older cookie.
        let mut d = p.last_datagram.clone();
        scrambler.toggle_head(&mut d);
        let mut raw = [0u8; moss_crypto::scramble::HEAD_LEN];
        raw.copy_from_slice(&d[..moss_crypto::scramble::HEAD_LEN]);
        let Ok(Head::Handshake {
            kind,
            pad_len,
            nonce,
        }) = Head::decode(&raw)
        else {
            return self.drop_input(DropReason::BadCookie);
        };
        scrambler.toggle_body(&nonce, &mut d[moss_crypto::scramble::HEAD_LEN..]);
        let (inner, skip) = match kind {
            Kind::CookieInit => match d.get(moss_crypto::scramble::HEAD_LEN + 16) {
                Some(5) => (Kind::IkInit, 17),
                _ => (Kind::Init, 17),
            },
            k => (k, 0),
        };
        let old_body = &d[moss_crypto::scramble::HEAD_LEN + skip..];
        // Room for the 17 cookie bytes: padding gives way if it must.
        let over = (moss_crypto::scramble::HEAD_LEN + 17 + old_body.len())
            .saturating_sub(crate::wire::MAX_DATAGRAM);
        let pad_len = pad_len.saturating_sub(over as u16);
        let keep = old_body.len() - over.min(old_body.len());
        let mut prefix = Vec::with_capacity(17);
        CookiedInit::encode_prefix(&r.cookie, inner, &mut prefix);
        let old_body = old_body[..keep].to_vec();
        let out = self.sealed_handshake_kind(Kind::CookieInit, pad_len, &[&prefix, &old_body]);
        if let Some(State::Initiating(p)) =
            self.table.sessions.get_mut(&r.index).map(|s| &mut s.state)
        {
            p.last_datagram = out.clone();
        }
        self.emit(from, out);
    }

    /// Answers message 1 with sender index `index` from `from` with a
    /// cookie reply (no state kept beyond the rate limits), at most one per
    /// origin (IP) per [`COOKIE_REPLY_INTERVAL`] and within the overall budget.
    fn send_cookie(&mut self, from: Path, index: u32) {
        let h = &mut self.handshaker;
        let origin = crate::cookie::origin(&from);
        if !h
            .cookie_paths
            .allow(origin, self.now, COOKIE_REPLY_INTERVAL)
            || !h.cookie_replies.take(1, self.now)
        {
            return;
        }
        let reply = CookieReply {
            index,
            cookie: self.handshaker.cookies.cookie(&from),
        };
        let body = reply.encode();
        let d = self.sealed_handshake_kind(Kind::CookieReply, 0, &[&body[..COOKIE_REPLY_BODY]]);
        self.stats.cookies_sent += 1;
        self.emit(from, d);
    }

    /// Message 1 of XX or IK; `cookied` if it echoed a valid cookie.
    fn on_init(&mut self, from: Path, b: HandshakeBody<'_>, pattern: Pattern, cookied: bool) {
        if b.receiver != 0 {
            return self.drop_input(DropReason::BadHandshake);
        }
        // A retransmitted message 1: answer with the same message 2, but at
        // most once per echo interval, so replayed message 1s cannot turn
        // the node into a reflector.
        let now = self.now;
        if let Some(s) = self
            .table
            .by_dial(from, b.sender)
            .and_then(|idx| self.table.sessions.get_mut(&idx))
        {
            match &mut s.state {
                State::Responding(p) => {
                    if now.saturating_sub(p.last_echo) < ECHO_INTERVAL {
                        return self.drop_input(DropReason::HandshakeRateLimited);
                    }
                    p.last_echo = now;
                    let d = p.last_datagram.clone();
                    return self.emit(from, d);
                }
                State::Established(e) => {
                    // An IK responder's message 2 was lost: repeat it.
                    let Some(d) = e.final_datagram.as_deref().map(|d| d.to_vec()) else {
                        return;
                    };
                    if s.last_send.since(now) < ECHO_INTERVAL {
                        return self.drop_input(DropReason::HandshakeRateLimited);
                    }
                    s.last_send = Stamp::at(now);
                    return self.emit(from, d);
                }
                State::Initiating(_) => {}
            }
        }
        if self.table.by_peer.len() >= self.cfg.max_peers as usize {
            return self.drop_input(DropReason::Capacity);
        }
        let pending = self.table.pending_handshakes();
        if cookied {
            // Proved it receives at `from`: ahead of the flood, on budgets
            // of its own (overall, per origin) and up to twice the cap.
            if pending >= 2 * MAX_PENDING_HANDSHAKES {
                return self.drop_input(DropReason::Capacity);
            }
            let h = &mut self.handshaker;
            let origin = crate::cookie::origin(&from);
            if !h.cookied_paths.allow(origin, now, COOKIED_INTERVAL) || !h.cookied.take(1, now) {
                return self.drop_input(DropReason::HandshakeRateLimited);
            }
        } else if pending >= MAX_PENDING_HANDSHAKES {
            // Under load: a cookie instead of the Diffie-Hellman work.
            self.send_cookie(from, b.sender);
            return self.drop_input(DropReason::Capacity);
        } else if !self.handshaker.budget.take(1, now) {
            // Answering costs three or four X25519 operations: a flood of
            // bogus message 1s is cut off here, before any of them, so
            // established sessions keep their CPU.
            self.send_cookie(from, b.sender);
            return self.drop_input(DropReason::HandshakeRateLimited);
        }
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let local = &self.handshaker.local_static;
        let built = match pattern {
            Pattern::Xx => Handshake::with_static(Role::Responder, local, seed),
            Pattern::Ik => Handshake::ik_responder(local, seed),
        };
        let Ok(mut hs) = built else {
            return self.drop_input(DropReason::BadHandshake);
        };
        let extra = match hs.read(b.noise) {
            Ok(extra) => extra,
            Err(e) => return self.refuse(from, pattern, &e, &b),
        };
        let mut msg = [0u8; MAX_MESSAGE];
        let n = match hs.write(&encode_observed(from), &mut msg) {
            Ok(n) => n,
            Err(e) => return self.drop_input(Self::fail_reason(&e)),
        };
        let idx = self.random_index();
        let kind = match pattern {
            Pattern::Xx => Kind::Response,
            Pattern::Ik => Kind::IkResponse,
        };
        let datagram = self.handshake_datagram(kind, idx, b.sender, &msg[..n]);
        self.table.note_dial(from, b.sender, idx);
        self.table.insert(
            idx,
            Session {
                remote_index: b.sender,
                path: from,
                last_recv: Stamp::at(now),
                last_send: Stamp::at(now),
                state: State::Responding(Box::new(Pending {
                    hs,
                    last_datagram: datagram.clone(),
                    created: now,
                    attempts: 0,
                    next_retry: now + HANDSHAKE_RETRY * 2,
                    last_echo: now,
                    probe: false,
                })),
            },
        );
        self.reach.on_init(from, idx, now);
        self.emit(from, datagram.clone());
        if pattern == Pattern::Ik {
            // IK is done on our side; the session waits for the initiator's
            // first data (its proof that it read message 2) to be confirmed.
            let observed = crate::nat::decode_observed(&mut self.stats.nat, &extra);
            self.establish(idx, observed, Some(datagram.into_boxed_slice()));
        }
    }

    /// Message 1 from `from` failed to read: counted; an IK one that does
    /// not decrypt (not our key: we are not who the initiator thinks, or
    /// we changed identity) is answered with a hint to use XX now.
    fn refuse(&mut self, from: Path, pattern: Pattern, e: &HandshakeError, b: &HandshakeBody<'_>) {
        if pattern == Pattern::Ik && *e == HandshakeError::Decrypt {
            let hint = Hint {
                reason: HintReason::IkRefused,
                index: b.sender,
            };
            self.send_hint(from, hint, b.noise.len() + HANDSHAKE_FIXED);
        }
        self.drop_input(Self::fail_reason(e));
    }

    /// Message 2 of XX (answered with message 3) or IK (the last).
    fn on_response(&mut self, from: Path, kind: Kind, b: HandshakeBody<'_>) {
        let idx = b.receiver;
        let Some(s) = self.table.sessions.get_mut(&idx) else {
            return self.drop_input(DropReason::UnknownSession);
        };
        let ik = kind == Kind::IkResponse;
        if let State::Established(e) = &s.state {
            if ik && s.remote_index == b.sender {
                // A repeated IK message 2: nothing to answer.
                return;
            }
            // Our message 3 was lost: the responder repeated message 2.
            if s.remote_index == b.sender {
                if let Some(d) = e.final_datagram.as_deref().map(|d| d.to_vec()) {
                    let to = s.path;
                    return self.emit(to, d);
                }
            }
            return self.drop_input(DropReason::BadHandshake);
        }
        let State::Initiating(p) = &mut s.state else {
            return self.drop_input(DropReason::BadHandshake);
        };
        if ik != (p.hs.pattern() == Pattern::Ik) {
            return self.drop_input(DropReason::BadHandshake);
        }
        let read = p.hs.read(b.noise).and_then(|extra| {
            let mut msg = [0u8; MAX_MESSAGE];
            let n = if ik {
                0
            } else {
                p.hs.write(&encode_observed(from), &mut msg)?
            };
            Ok((extra, msg, n))
        });
        let (extra, msg, n) = match read {
            Ok(x) => x,
            Err(e) => {
                self.fail_handshake(idx, &e.to_string());
                return self.drop_input(Self::fail_reason(&e));
            }
        };
        let observed = crate::nat::decode_observed(&mut self.stats.nat, &extra);
        s.remote_index = b.sender;
        // The reply may come from elsewhere than we dialled (a NAT): the
        // session follows it; the dialled path stays an alias of it, so a
        // static peer dialled there counts as connected (until the session
        // goes).
        let dialled = std::mem::replace(&mut s.path, from);
        if dialled != from {
            self.table.alias(dialled, idx);
        }
        if ik {
            return self.establish(idx, observed, None);
        }
        let datagram = self.handshake_datagram(Kind::Final, idx, b.sender, &msg[..n]);
        self.emit(from, datagram.clone());
        self.establish(idx, observed, Some(datagram.into_boxed_slice()));
    }

    fn on_final(&mut self, b: HandshakeBody<'_>) {
        let idx = b.receiver;
        let Some(s) = self.table.sessions.get_mut(&idx) else {
            return self.drop_input(DropReason::UnknownSession);
        };
        if s.remote_index != b.sender {
            return self.drop_input(DropReason::BadHandshake);
        }
        let State::Responding(p) = &mut s.state else {
            // A duplicate message 3 for an established session.
            return;
        };
        match p.hs.read(b.noise) {
            Ok(extra) => {
                let observed = crate::nat::decode_observed(&mut self.stats.nat, &extra);
                self.establish(idx, observed, None);
            }
            Err(e) => {
                self.fail_handshake(idx, &e.to_string());
                self.drop_input(Self::fail_reason(&e));
            }
        }
    }

    /// The peer closed session `idx` with a CLOSE of `reason`. A
    /// duplicate's CLOSE on the peer's current session while a newer
    /// handshake on the same path is completing here (an XX responder
    /// waiting for message 3, an IK responder for the initiator's first
    /// data) means the peer already holds the session that replaces this
    /// one: it sends that CLOSE before the new session's first datagram
    /// (a re-handshake probe), and either may be lost. This session is
    /// then retired like a duplicate's loser (it takes the peer's
    /// datagrams for [`RETIRE_GRACE`] and sends nothing), so the new one
    /// replaces it without the peer going down here in between (its
    /// gossip meshes, the relay sessions it is an end of); if none comes
    /// up, it ends after the grace. Any other CLOSE ends it at once.
    pub(crate) fn on_close(&mut self, idx: u32, reason: u8) {
        if reason == CLOSE_DUPLICATE && self.replacement_pending(idx) {
            let until = Stamp::at(self.now + RETIRE_GRACE);
            if let Some(e) = self.table.established_mut(idx) {
                e.retired = Some(until);
                e.pending.clear();
            }
            return;
        }
        self.remove_session(idx, Some(DisconnectReason::Closed));
    }

    /// True when `idx` is its peer's current session and another handshake
    /// on its path has not completed here yet.
    fn replacement_pending(&self, idx: u32) -> bool {
        let Some(s) = self.table.get(idx) else {
            return false;
        };
        let current = s
            .established()
            .is_some_and(|e| e.retired.is_none() && self.table.by_peer(&e.peer) == Some(idx));
        if !current {
            return false;
        }
        let path = s.path;
        self.table.answering(path)
            || self.table.sessions.iter().any(|(&i, o)| {
                i != idx && o.path == path && o.established().is_some_and(|e| e.unconfirmed)
            })
    }

    /// The rank of established session `idx` among duplicates with
    /// `remote` (lowest is kept), computed alike at both ends: first the
    /// session the smaller peer id initiated, then (both initiated by the
    /// same side) the one with the smaller initiator's index. Neither
    /// depends on the order in which the two ends saw the sessions come up.
    fn duplicate_key(&self, idx: u32, me: PeerId, remote: PeerId) -> (bool, u32) {
        let Some(s) = self.table.get(idx) else {
            return (true, u32::MAX);
        };
        let initiator = s.established().is_some_and(|e| e.initiator);
        let (by, index) = if initiator {
            (me, idx)
        } else {
            (remote, s.remote_index)
        };
        (by != me.min(remote), index)
    }

    /// Turns a finished handshake into an established session. An IK
    /// responder's waits for the initiator's first data
    /// ([`Node::confirm`]); every other is the peer's session at once
    /// ([`Node::admit`]).
    fn establish(
        &mut self,
        idx: u32,
        observed: Option<SocketAddr>,
        final_datagram: Option<Box<[u8]>>,
    ) {
        let now = self.now;
        let Some(mut s) = self.table.take(idx) else {
            return;
        };
        let (pending, initiator) = match s.state {
            State::Initiating(p) => (p, true),
            State::Responding(p) => (p, false),
            State::Established(_) => {
                self.table.insert(idx, s);
                return;
            }
        };
        let report = initiator && !pending.probe;
        let ik = pending.hs.pattern() == Pattern::Ik;
        let began = Stamp::at(pending.created);
        let out: HandshakeOutcome = match pending.hs.finish() {
            Ok(o) => o,
            Err(e) => {
                self.table.unbind(idx, s.path);
                self.stats.handshakes_failed += 1;
                if report {
                    self.events.push_back(Event::ConnectFailed {
                        addr: s.path,
                        reason: e.to_string(),
                    });
                }
                return self.drop_input(DropReason::HandshakeAuth);
            }
        };
        let me = self.identity.public_key();
        if out.remote == me {
            // We dialled ourselves (our own address, or a mirror of it).
            self.table.unbind(idx, s.path);
            self.stats.handshakes_failed += 1;
            if report {
                self.events.push_back(Event::ConnectFailed {
                    addr: s.path,
                    reason: "connected to self".into(),
                });
            }
            return self.drop_input(DropReason::SelfConnect);
        }
        s.last_recv = Stamp::at(now);
        let path = s.path;
        let keys = self.transport.install(
            idx,
            s.remote_index,
            self.relay_wire_path(path),
            TransportCipher::new(&out.send_key, &out.recv_key),
            matches!(path, Path::Relay { .. }),
        );
        let unconfirmed = ik && !initiator;
        s.state = State::Established(Box::new(Established {
            keys,
            peer: out.remote,
            initiator,
            topics: Default::default(),
            pending: Vec::new(),
            final_datagram: final_datagram.map(Box::new),
            reassembly: Reassembly::default(),
            next_transfer: 0,
            observed,
            retired: None,
            began,
            up: Stamp::at(now),
            unconfirmed,
        }));
        self.table.insert(idx, s);
        self.stats.handshakes_completed += 1;
        if ik {
            self.stats.ik_completed += 1;
        }
        if !initiator && !unconfirmed {
            // A stranger's unsolicited dial that completed: an inbound
            // probe (an IK responder counts once the initiator confirms).
            self.reach.on_settled(idx, path.udp(), now);
        }
        self.nat_established(observed, path, out.remote);
        self.handshaker.learn(path, out.remote_static);
        if unconfirmed {
            // Our subscriptions ride right behind message 2, so the
            // initiator can publish to us one round trip after it dialled.
            let topics: Vec<String> = self.pubsub.subscriptions.iter().cloned().collect();
            for t in topics {
                self.queue_frame(idx, &Frame::Subscribe(&t));
            }
        } else {
            self.admit(idx);
        }
    }

    /// The first authenticated data of an unconfirmed IK responder session:
    /// the initiator has the keys, the session becomes the peer's.
    pub(crate) fn confirm(&mut self, idx: u32) {
        let now = self.now;
        let Some(e) = self.table.established_mut(idx) else {
            return;
        };
        if !e.unconfirmed {
            return;
        }
        e.unconfirmed = false;
        e.final_datagram = None;
        e.up = Stamp::at(now);
        let path = self.table.get(idx).map(|s| s.path);
        if let Some(p) = path {
            self.reach.on_settled(idx, p.udp(), now);
        }
        self.admit(idx);
    }

    /// Makes established session `idx` its peer's one session. Against an
    /// older session with the same peer: one that was already up when this
    /// handshake began is replaced at once (the peer restarted or dialled
    /// again on purpose); two that came up together are resolved the same
    /// way on both ends. A session of another peer on the same path is
    /// ended (that address now belongs to someone else: a restart under a
    /// new identity).
    fn admit(&mut self, idx: u32) {
        let now = self.now;
        let Some(s) = self.table.get(idx) else {
            return;
        };
        let path = s.path;
        let remote_index = s.remote_index;
        let Some((peer, began)) = s.established().map(|e| (e.peer, e.began)) else {
            return;
        };
        self.table.forget_dial(idx, path, remote_index);
        if let Some((other, other_peer)) = self.table.other_on(path, idx) {
            if other_peer != peer {
                self.queue_frame(other, &Frame::Close(CLOSE_DUPLICATE));
                self.seal_and_send(other, false);
                self.remove_session(other, Some(DisconnectReason::Closed));
            }
        }
        // Our own dial still pending on this path is now redundant: left
        // running, its next retransmission of message 1 reaches the peer
        // after this session is up there and makes a second session that
        // the two ends rank differently (the peer sees a fresh dial, we an
        // old one), and each closes the other's winner (a punched pair
        // then lost its session and punched again; BENCHMARKS.md, session 6).
        let ours = self.table.by_path(&path).filter(|&i| {
            i != idx
                && self.table.get(i).is_some_and(|s| {
                    s.path == path && matches!(&s.state, State::Initiating(p) if !p.probe)
                })
        });
        if let Some(dial) = ours {
            self.table.remove(dial);
        }
        self.table.bind(path, idx);
        let me = self.identity.public_key();
        if let Some(old) = self.table.by_peer(&peer) {
            if old != idx {
                let old_up = self.table.established(old).map(|e| e.up);
                // The old one was up before this began: not a simultaneous
                // dial but a restart or a deliberate redial, so the new wins.
                // Strictly before: stamps are milliseconds, and two dials
                // that cross on a fast link begin and come up in the same
                // one (both ends must then rank the pair by its key).
                let replaces = old_up.is_some_and(|up| up < began);
                let (loser, winner) = if replaces
                    || self.duplicate_key(idx, me, peer) < self.duplicate_key(old, me, peer)
                {
                    (old, idx)
                } else {
                    (idx, old)
                };
                // Both ends rank the pair alike, so each drops the same
                // session. The loser is retired, not removed: what the peer
                // sent on it before it saw the winner is still taken, and so
                // is the peer's CLOSE for it, which is then harmless. The
                // CLOSE matters when the peer never completed the winner:
                // the loser was its only session, and the CLOSE makes it
                // dial again. The loser's paths stay mapped to the winner,
                // so the same peer is not dialled there again.
                self.queue_frame(loser, &Frame::Close(CLOSE_DUPLICATE));
                self.seal_and_send(loser, false);
                self.table.by_peer.insert(peer, winner);
                self.table.merge_paths(loser, winner);
                if let Some(e) = self.table.established_mut(loser) {
                    e.retired = Some(Stamp::at(now + RETIRE_GRACE));
                    e.pending.clear();
                }
                let loser_path = self.table.get(loser).map(|l| l.path);
                if let Some(w) = self.table.get(winner).map(|w| w.path) {
                    self.table.bind(w, winner);
                    // A direct session took over a relayed one (a punch or
                    // a dial that got through while relayed): event 7.
                    if let Some(from @ Path::Relay { .. }) = loser_path {
                        if !matches!(w, Path::Relay { .. }) {
                            self.events
                                .push_back(Event::RelayMigrated { peer, from, to: w });
                        }
                    }
                }
                if winner == idx {
                    self.send_subscriptions(idx);
                }
                return;
            }
        }
        self.table.by_peer.insert(peer, idx);
        self.events
            .push_back(Event::PeerConnected { peer, addr: path });
        self.send_subscriptions(idx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moss_crypto::{Identity, MeshKeys};
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn path(n: u32) -> Path {
        Path::Udp(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(n), 4000)))
    }

    /// Once full, learning a new path forgets the smallest one, and a path
    /// learnt again only updates its key.
    #[test]
    fn learn_stays_bounded_and_forgets_the_smallest_path() {
        let keys = MeshKeys::derive("learn-unit", None);
        let mut h = Handshaker::new(&Identity::from_seed([7; 32]), &keys, [1; 32], Time::ZERO);
        for n in 0..RATE_MAP_CAP as u32 {
            h.learn(path(n + 10), [1; 32]);
        }
        h.learn(path(10), [2; 32]);
        assert_eq!(h.known.len(), RATE_MAP_CAP);
        assert_eq!(h.known.get(&path(10)), Some(&[2; 32]));
        h.learn(path(5), [3; 32]);
        assert_eq!(h.known.len(), RATE_MAP_CAP);
        assert!(!h.known.contains_key(&path(10)));
        assert_eq!(h.known.get(&path(5)), Some(&[3; 32]));
    }
}
