//! The NAT frames as they arrive: binding requests and responses, probe
//! requests (we are the helper), probe orders (we are the third party),
//! probe acknowledgements (we are the node being classified) and class
//! announcements.

use super::{not_offered, note_offered};
use super::{NatFrame, ProbeMode, ThirdParty, MAX_DIALS, MAX_ORDER_DELAY, MAX_PEER_NOTES};
use super::{ORDER_BURST, OTHER_PORT_DELAY_MS, PROBE_REQUEST_INTERVAL, PROBE_WAIT};
use crate::node::Node;
use crate::path::Path;
use crate::wire::Frame;
use crate::Time;
use moss_crypto::PeerId;
use rand_core::RngCore;
use std::net::SocketAddr;
use std::time::Duration;

/// Bytes of the datagram an other-port probe sends to the third party's
/// IP (random, so it looks like nothing).
const OPENER_LEN: usize = 48;
/// Opener datagrams sent (one lost opener made an address-dependent
/// filter look port-dependent).
const OPENERS: usize = 3;
/// Copies of a probe order a helper sends the third party.
const ORDER_COPIES: usize = 2;

impl Node {
    /// One NAT frame from established session `idx` of `peer`.
    pub(crate) fn nat_frame(&mut self, idx: u32, peer: PeerId, f: NatFrame) {
        let from = self.table.get(idx).and_then(|s| s.path.udp());
        match f {
            NatFrame::BindingRequest { txid } => {
                if let Some(observed) = from {
                    self.stats.nat.binding_answers += 1;
                    let r = NatFrame::BindingResponse { txid, observed };
                    self.queue_frame(idx, &Frame::Nat(r));
                }
            }
            NatFrame::BindingResponse { txid, observed } => {
                let pos = self
                    .nat
                    .bindings
                    .iter()
                    .position(|&(t, p, _)| (t, p) == (txid, peer));
                match (pos, from) {
                    (Some(i), Some(observer)) => {
                        if let Some((_, _, sent)) = self.nat.bindings.remove(i) {
                            let rtt = self.now.saturating_sub(sent);
                            self.nat.note_rtt(peer, rtt);
                        }
                        self.nat_observe(observer, observed);
                    }
                    _ => self.stats.nat.unsolicited_replies += 1,
                }
            }
            NatFrame::ProbeRequest { txid, mode } => self.nat_help(idx, peer, from, txid, mode),
            NatFrame::ProbeOrder { delay_ms, target } => self.nat_order(delay_ms, target),
            NatFrame::ProbeAck { txid, third } => self.nat_ack(peer, txid, third),
            NatFrame::NatClass(c) => self.nat.note_class(peer, c),
            NatFrame::PunchRequest { target, .. } => self.nat_introduce(idx, peer, target),
            NatFrame::PunchOffer { peer: other, offer } => self.nat_offer(peer, other, offer),
            NatFrame::FreshRequest { txid, seen, probe } => {
                self.nat_fresh_help(idx, peer, from, (txid, seen, probe))
            }
            NatFrame::FreshOrder { token, target } => self.nat_fresh_order(token, target),
            NatFrame::FreshSeen { txid, observed } => self.nat_fresh_seen(peer, txid, observed),
            NatFrame::Mapped(addr) => self.nat_peer_mapped(idx, peer, addr),
        }
    }

    /// Helper side: pick a third party among our NAT-capable peers, other
    /// than the requester and at another IP, and have it dial the address *we* see the
    /// requester at (never one the requester names, so nobody can aim a
    /// third party at a victim through us).
    fn nat_help(
        &mut self,
        idx: u32,
        peer: PeerId,
        from: Option<SocketAddr>,
        txid: u32,
        mode: ProbeMode,
    ) {
        let now = self.now;
        let last = self.nat.last_request.get(&peer);
        let recent = last.is_some_and(|(t, _)| now.saturating_sub(*t) < PROBE_REQUEST_INTERVAL);
        let Some(target) = from.filter(|_| !recent) else {
            self.stats.nat.probe_requests_refused += 1;
            return;
        };
        let mut offered = self.nat.take_offered(&peer);
        if self.nat.last_request.len() >= MAX_PEER_NOTES {
            self.nat.last_request.clear();
        }

        // Any peer can dial out to the requester, whatever its own NAT:
        // pick at random among them (the requester rules out ones it has
        // contacted, and keeps reachable ones as observers to dial later).
        let pool: Vec<_> = self
            .nat_peers()
            .into_iter()
            .filter(|&(_, p, a)| p != peer && a.ip() != target.ip())
            .collect();
        let pool = not_offered(pool, &mut offered);
        let third = if pool.is_empty() {
            None
        } else {
            let (tidx, tpeer, taddr) = pool[self.rng.next_u32() as usize % pool.len()];
            let delay_ms = match mode {
                ProbeMode::OtherIp => 0,
                ProbeMode::OtherPort => OTHER_PORT_DELAY_MS,
            };
            // Each copy in a datagram of its own: one lost order was a
            // miss, and two misses a false negative (the third party
            // carries out the first copy and ignores the other).
            for _ in 0..ORDER_COPIES {
                let order = NatFrame::ProbeOrder { delay_ms, target };
                self.queue_frame(tidx, &Frame::Nat(order));
                self.seal_and_send(tidx, false);
            }
            note_offered(&mut offered, tpeer);
            Some(ThirdParty {
                peer: tpeer.0,
                addr: taddr,
                class: self.nat.class_of(&tpeer),
            })
        };
        if third.is_some() {
            self.stats.nat.probes_helped += 1;
        } else {
            self.stats.nat.probe_requests_refused += 1;
        }
        self.nat.last_request.insert(peer, (now, offered));
        self.queue_frame(idx, &Frame::Nat(NatFrame::ProbeAck { txid, third }));
    }

    /// Third-party side: dial `target` later, within a global budget.
    fn nat_order(&mut self, delay_ms: u16, target: SocketAddr) {
        let now = self.now;
        super::prune_window(&mut self.nat.orders, now);
        // A session there already: nothing to probe. A dial of ours still
        // in its handshake keeps retransmitting message 1, which serves.
        let session = self
            .table
            .by_path(&Path::Udp(target))
            .and_then(|i| self.table.get(i));
        let established = session.is_some_and(|s| s.established().is_some());
        let scheduled = self.nat.dials.iter().any(|d| d.1 == target);
        // Dialling the third party of our own probe would open our NAT to
        // it and spoil the probe.
        let our_third = self
            .nat
            .probe
            .and_then(|p| p.third)
            .is_some_and(|t| t.addr == target);
        if session.is_some() && !established {
            self.stats.nat.probe_orders_done += 1;
            return;
        }
        if scheduled {
            // A copy of an order we hold (or another helper's for the
            // same target): the dial is due already.
            return;
        }
        if self.nat.orders.len() >= ORDER_BURST
            || self.nat.dials.len() >= MAX_DIALS
            || established
            || our_third
        {
            self.stats.nat.probe_orders_refused += 1;
            return;
        }
        self.nat.orders.push_back(now);
        let delay = Duration::from_millis(u64::from(delay_ms)).min(MAX_ORDER_DELAY);
        self.nat.dials.push((now + delay, target));
    }

    /// Dials the probe targets that are due.
    pub(crate) fn nat_run_dials(&mut self, now: Time) {
        let third = self.nat.probe.and_then(|p| p.third).map(|t| t.addr);
        let before = self.nat.dials.len();
        self.nat.dials.retain(|&(_, a)| Some(a) != third);
        self.stats.nat.probe_orders_refused += (before - self.nat.dials.len()) as u64;
        for a in super::take_due(&mut self.nat.dials, now) {
            self.stats.nat.probe_orders_done += 1;
            self.connect(a);
        }
    }

    /// Requester side: the helper named the third party (or none).
    fn nat_ack(&mut self, peer: PeerId, txid: u32, third: Option<ThirdParty>) {
        let now = self.now;
        let Some(p) = self.nat.probe_for(txid, peer) else {
            self.stats.nat.unsolicited_replies += 1;
            return;
        };
        if p.fresh.is_some() {
            if p.third.is_some() {
                // A second acknowledgement: the socket is already out.
                self.stats.nat.unsolicited_replies += 1;
                return;
            }
            // From a fresh socket any third party serves (its mapping sent
            // to nobody yet); nat_fresh_ack hands the socket to the host.
            let usable = third.is_some_and(|t| self.nat_fresh_ack(t));
            if !usable {
                self.nat.probe = None;
                self.nat.avoid(peer);
                self.stats.nat.fresh_inconclusive += 1;
                self.nat.next_probe = now + super::PROBE_RETRY;
            }
            return;
        }
        // A third party we have a session with, or whose address we sent
        // to, proves nothing; in test II neither does one whose IP we sent
        // to (test III sends to that IP itself, at another port). A
        // symmetric one serves test III: it dials from a port of its own,
        // which an address-dependent filter lets in (a session from
        // elsewhere: no verdict) and a port-dependent one keeps out (a
        // miss); it never makes a success.
        let usable = third.filter(|t| {
            self.table.by_peer(&PeerId(t.peer)).is_none()
                && !self.reach.contacted_addr(t.addr)
                && (p.mode == ProbeMode::OtherPort || !self.reach.contacted(t.addr.ip()))
        });
        let Some(t) = usable else {
            self.nat.probe = None;
            self.stats.nat.probes_inconclusive += 1;
            // The helper names another of its peers each time (it goes
            // through them in turn): ask it again as soon as it takes a
            // request, so a node that already contacted most of the mesh
            // soon meets the few it has not; once it names one again (or
            // nobody), another helper, a little later.
            match third.map(|t| t.peer) {
                Some(named) if self.nat.note_streak(peer, named) => {
                    self.nat.next_probe = now + PROBE_REQUEST_INTERVAL;
                }
                _ => {
                    self.nat.avoid(peer);
                    self.nat.next_probe = now + super::PROBE_RETRY;
                }
            }
            return;
        };
        p.third = Some(t);
        p.deadline = now + PROBE_WAIT;
        let mode = p.mode;
        self.nat.streak = None;
        if mode == ProbeMode::OtherPort {
            // Open the NAT towards the third party's IP at another port: an
            // address-dependent filter then lets its dial in, a port-dependent
            // one does not.
            let port = if t.addr.port() == u16::MAX {
                1024
            } else {
                t.addr.port() + 1
            };
            for _ in 0..OPENERS {
                let mut junk = vec![0u8; OPENER_LEN];
                self.rng.fill_bytes(&mut junk);
                self.emit(Path::Udp(SocketAddr::new(t.addr.ip(), port)), junk);
            }
        }
    }
}
