//! The node's one input path: everything from the outside world is an
//! [`Input`] handed to [`Node::handle`]. The older entry points
//! (`handle_datagram`, `handle_timeout`, `handle_shard_datagram`,
//! `handle_plaintext*`) are thin wrappers over it.
//!
//! A datagram's way, top-down: [`Input::Datagram`] → the transport opens it
//! (size checks, unmask, AEAD + replay window for a session it holds) →
//! authenticated plaintext: [`Node::on_plaintext`] notes the session alive
//! (and rebinds its path if the peer roamed), then pub/sub reads its frames
//! → a handshake datagram: the handshaker unmasks its body and the
//! handshake state machine runs.

use crate::hint::{Hint, HintReason};
use crate::path::Path;
use crate::shard::Inbound;
use crate::stats::DropReason;
use crate::wire::Head;
use crate::{Node, Time};
use moss_crypto::scramble::HEAD_LEN;
use std::net::SocketAddr;

/// One input to the node.
#[derive(Debug)]
pub enum Input<'a> {
    /// A datagram received on `from` (counted here). The node opens it in
    /// place; malformed input is dropped and counted.
    Datagram {
        /// The path it came on.
        from: Path,
        /// Its bytes, modified in place (unmasked and decrypted).
        bytes: &'a mut [u8],
    },
    /// A datagram engine shard `shard` received and did not open (a
    /// handshake, counted by the shard): sessions it creates as responder
    /// are owned by that shard.
    ShardDatagram {
        /// The path it came on.
        from: Path,
        /// The receiving shard.
        shard: usize,
        /// Its bytes, modified in place.
        bytes: &'a mut [u8],
    },
    /// The plaintext frames a shard opened for session `index`.
    Plaintext {
        /// Our local session index.
        index: u32,
        /// The path the datagram came on.
        from: Path,
        /// The frames.
        plain: &'a [u8],
        /// The shard verified every signed message in `plain`
        /// ([`crate::preverify()`] on exactly these bytes): the node skips
        /// their Ed25519 checks.
        verified: bool,
    },
    /// Time passed: run what is due (retransmissions, keepalives, expiry,
    /// re-dials, the heartbeat, telemetry).
    Timeout,
}

impl Node {
    /// Feeds one input at time `now`.
    pub fn handle(&mut self, now: Time, input: Input<'_>) {
        self.now = now;
        match input {
            Input::Datagram { from, bytes } => {
                self.stats.datagrams_in += 1;
                self.stats.bytes_in += bytes.len() as u64;
                self.on_datagram(from, bytes);
            }
            Input::ShardDatagram { from, shard, bytes } => {
                self.transport.set_owner(shard);
                self.on_datagram(from, bytes);
            }
            Input::Plaintext {
                index,
                from,
                plain,
                verified,
            } => self.on_plaintext(index, from, plain, verified),
            Input::Timeout => self.on_timeout(now),
        }
    }

    /// Feeds one received UDP datagram ([`Input::Datagram`]).
    pub fn handle_datagram(&mut self, now: Time, from: SocketAddr, datagram: &mut [u8]) {
        self.handle(
            now,
            Input::Datagram {
                from: Path::Udp(from),
                bytes: datagram,
            },
        );
    }

    /// Advances timers ([`Input::Timeout`]).
    pub fn handle_timeout(&mut self, now: Time) {
        self.handle(now, Input::Timeout);
    }

    /// Feeds a handshake datagram shard `shard` received
    /// ([`Input::ShardDatagram`]).
    pub fn handle_shard_datagram(
        &mut self,
        now: Time,
        from: SocketAddr,
        shard: usize,
        datagram: &mut [u8],
    ) {
        self.handle(
            now,
            Input::ShardDatagram {
                from: Path::Udp(from),
                shard,
                bytes: datagram,
            },
        );
    }

    /// Feeds the plaintext frames a shard opened for session `index`
    /// ([`Input::Plaintext`], not verified).
    pub fn handle_plaintext(&mut self, now: Time, index: u32, from: SocketAddr, plain: &[u8]) {
        self.handle_plaintext_verified(now, index, from, plain, false);
    }

    /// [`Node::handle_plaintext`] for plaintext whose signed messages the
    /// shard already verified ([`Input::Plaintext`] with `verified`).
    pub fn handle_plaintext_verified(
        &mut self,
        now: Time,
        index: u32,
        from: SocketAddr,
        plain: &[u8],
        verified: bool,
    ) {
        self.handle(
            now,
            Input::Plaintext {
                index,
                from: Path::Udp(from),
                plain,
                verified,
            },
        );
    }

    /// Opens (or classifies) one datagram through the transport and routes
    /// what it holds.
    pub(crate) fn on_datagram(&mut self, from: Path, datagram: &mut [u8]) {
        self.transport.set_clock(self.now);
        let r = self.transport.open(from, datagram, &mut self.table);
        self.on_inbound(from, datagram, r);
    }

    /// Like [`Node::handle_datagram`], except that a datagram the relay
    /// data plane forwards is not copied into a transmit: its destination
    /// is returned, and the caller sends the bytes on unchanged (the
    /// engine's zero-copy forwarding from its receive buffer). Counted as
    /// received, relayed and sent, as the copying path counts it.
    pub fn handle_datagram_forwarding(
        &mut self,
        now: Time,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Option<SocketAddr> {
        let head = self.transport.peek_head(datagram);
        self.handle_datagram_forwarding_peeked(now, from, datagram, head)
    }

    /// The unmasked heads of a receive chunk in one lane-wise pass
    /// (`heads[i]` for `datagrams[i]`, `None` for one too short), for
    /// [`Node::handle_datagram_forwarding_peeked`].
    pub fn peek_heads(&self, datagrams: &[&[u8]], heads: &mut [Option<[u8; HEAD_LEN]>]) {
        self.transport.peek_heads(datagrams, heads);
    }

    /// [`Node::handle_datagram_forwarding`] of a datagram whose head
    /// [`Node::peek_heads`] unmasked already: `head` must be that peek of
    /// these very bytes.
    pub fn handle_datagram_forwarding_peeked(
        &mut self,
        now: Time,
        from: SocketAddr,
        datagram: &mut [u8],
        head: Option<[u8; HEAD_LEN]>,
    ) -> Option<SocketAddr> {
        self.now = now;
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        self.transport.set_clock(self.now);
        let from = Path::Udp(from);
        match self
            .transport
            .open_peeked(from, datagram, head, &mut self.table)
        {
            Inbound::Relay { to } => {
                let len = datagram.len() as u64;
                self.stats.relayed_datagrams += 1;
                self.stats.relayed_bytes += len;
                self.stats.datagrams_out += 1;
                self.stats.bytes_out += len;
                Some(to)
            }
            r => {
                self.on_inbound(from, datagram, r);
                None
            }
        }
    }

    /// Routes what the transport made of one datagram.
    fn on_inbound(&mut self, from: Path, datagram: &mut [u8], r: Inbound) {
        match r {
            Inbound::Frames { index, plain } => {
                let plain = datagram.get(plain).unwrap_or(&[]);
                self.on_plaintext(index, from, plain, false);
            }
            Inbound::Handshake => self.on_handshake_datagram(from, datagram),
            // The transport holds no keys for the index: a half-open
            // session's, a shard's (a sharded node is fed handshakes only),
            // or nobody's.
            Inbound::Unknown { index } if self.table.get(index).is_some() => {
                // (A sharded node's shard counts its own copy.)
                if self.transport.shards().is_none() {
                    self.drop_input(DropReason::NotEstablished)
                }
            }
            Inbound::Unknown { index } => {
                // We restarted or forgot the session: a rate-limited hint
                // (no larger than this datagram) makes the sender, if it
                // holds a session with that index here, handshake again.
                let hint = Hint {
                    reason: HintReason::UnknownSession,
                    index,
                };
                self.send_hint(from, hint, datagram.len());
                // A sharded node sees a copy of what its shard could not
                // open; the shard counts the drop when its own copy expires.
                if self.transport.shards().is_none() {
                    self.drop_input(DropReason::UnknownSession)
                }
            }
            Inbound::Foreign { .. } => self.drop_input(DropReason::UnknownSession),
            Inbound::Dropped(r) => self.drop_input(r),
            Inbound::Relay { to } => self.relay_forward(to, datagram),
        }
    }

    /// Authenticated plaintext of session `index`, arrived on `from`.
    fn on_plaintext(&mut self, index: u32, from: Path, plain: &[u8], verified: bool) {
        let from = self.relay_inbound(index, from);
        if !self.table.heard(index, from, self.now) {
            let r = match self.table.get(index) {
                None => DropReason::UnknownSession,
                Some(_) => DropReason::NotEstablished,
            };
            return self.drop_input(r);
        }
        self.confirm(index);
        self.handle_frames(index, plain, verified);
    }

    /// A handshake datagram: the handshaker unmasks it, the state machine
    /// runs.
    fn on_handshake_datagram(&mut self, from: Path, datagram: &mut [u8]) {
        let scrambler = &self.handshaker.scrambler;
        scrambler.toggle_head(datagram);
        let mut raw = [0u8; HEAD_LEN];
        raw.copy_from_slice(&datagram[..HEAD_LEN]);
        match Head::decode(&raw) {
            Ok(Head::Handshake {
                kind,
                pad_len,
                nonce,
            }) => {
                let body = &mut datagram[HEAD_LEN..];
                scrambler.toggle_body(&nonce, body);
                self.handle_handshake(from, kind, pad_len, body)
            }
            // The transport classified it as a handshake.
            Ok(Head::Data { .. }) | Err(_) => self.drop_input(DropReason::Unrecognized),
        }
    }
}
