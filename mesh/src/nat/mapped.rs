//! A port mapping gained mid-run, told to relayed peers (MAPPED, 0x5B): a
//! node whose gateway maps it a port sends the mapped address on each of
//! its relayed NAT-capable sessions ([`MAPPED_SENDS`] times,
//! [`MAPPED_EVERY`] apart, while the session stays relayed); the peer
//! probes that address with the session's own probe datagram
//! ([`MAPPED_PROBES`] times, [`MAPPED_EVERY`] apart), and the relayed
//! session migrates to the direct path when a probe arrives (event 7 at
//! both ends, `crate::relay`).

use super::NatFrame;
use crate::node::Node;
use crate::path::Path;
use crate::wire::Frame;
use crate::Time;
use moss_crypto::PeerId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Interval of MAPPED sends and of probes to a peer's mapped address.
pub const MAPPED_EVERY: Duration = Duration::from_secs(1);
/// MAPPED frames sent per relayed peer and mapped address (frames can be lost).
pub const MAPPED_SENDS: u8 = 5;
/// Probes sent to a peer's announced mapped address.
pub const MAPPED_PROBES: u8 = 10;
/// Peers whose mapped address is probed at once.
const MAX_MAPPED_PEERS: usize = 256;

/// Who was told our mapped address, and whose we probe.
#[derive(Debug, Default)]
pub(crate) struct MappedState {
    /// The mapped address the peers in `told` were told.
    told_for: Option<SocketAddr>,
    /// Relayed peers told our mapped address, with the sends so far.
    told: HashMap<PeerId, u8>,
    /// Relayed peers' announced mapped addresses, with the probes left.
    probe: HashMap<PeerId, (SocketAddr, u8)>,
    next: Time,
}

impl Node {
    /// The mapped address of `peer` we are probing, if any.
    #[cfg(test)]
    pub(crate) fn mapped_probing(&self, peer: &PeerId) -> Option<SocketAddr> {
        self.nat.mapped_peers.probe.get(peer).map(|&(a, _)| a)
    }

    /// Whether session `idx` is established, NAT-capable and relayed.
    fn relayed_nat_session(&self, idx: u32) -> bool {
        self.nat_capable(idx)
            && matches!(
                self.table.get(idx).map(|s| s.path),
                Some(Path::Relay { .. })
            )
    }

    /// Every [`MAPPED_EVERY`]: tells relayed peers our mapped address, and
    /// probes theirs.
    pub(crate) fn nat_mapped_tick(&mut self, now: Time) {
        if now < self.nat.mapped_peers.next {
            return;
        }
        self.nat.mapped_peers.next = now + MAPPED_EVERY;
        self.tell_mapped();
        self.probe_mapped();
    }

    fn tell_mapped(&mut self) {
        let mapped = self.nat.mapped;
        let m = &mut self.nat.mapped_peers;
        if m.told_for != mapped {
            m.told.clear();
            m.told_for = mapped;
        }
        let Some(addr) = mapped else {
            return;
        };
        let mut relayed: Vec<(PeerId, u32)> = self
            .table
            .by_peer
            .iter()
            .filter(|&(_, &idx)| self.relayed_nat_session(idx))
            .map(|(p, &idx)| (*p, idx))
            .collect();
        relayed.sort_unstable_by_key(|&(p, _)| p);
        // A peer that migrated (or left) is told again if it is relayed again.
        self.nat
            .mapped_peers
            .told
            .retain(|p, _| relayed.iter().any(|(r, _)| r == p));
        for (peer, idx) in relayed {
            let sent = self.nat.mapped_peers.told.entry(peer).or_insert(0);
            if *sent >= MAPPED_SENDS {
                continue;
            }
            *sent += 1;
            self.stats.nat.mapped_sent += 1;
            self.queue_frame(idx, &Frame::Nat(NatFrame::Mapped(addr)));
        }
    }

    fn probe_mapped(&mut self) {
        let mut peers: Vec<PeerId> = self.nat.mapped_peers.probe.keys().copied().collect();
        peers.sort_unstable();
        for peer in peers {
            let idx = self
                .table
                .by_peer(&peer)
                .filter(|&i| self.relayed_nat_session(i));
            let entry = self.nat.mapped_peers.probe.get_mut(&peer);
            match (idx, entry) {
                (Some(idx), Some((addr, left))) if *left > 0 => {
                    *left -= 1;
                    let addr = *addr;
                    self.stats.nat.mapped_probes += 1;
                    self.transport
                        .probe(&mut self.outbox, &mut self.stats, idx, addr);
                    self.reach.note_sent(Path::Udp(addr));
                }
                // Migrated, gone, or out of probes.
                _ => {
                    self.nat.mapped_peers.probe.remove(&peer);
                }
            }
        }
    }

    /// MAPPED from `peer` on session `idx`: probed while the session is
    /// relayed; the same address again does not restart the probes, and
    /// another address is ignored until the current one's probes are spent
    /// (so a peer makes us probe at most one address per
    /// [`MAPPED_PROBES`] × [`MAPPED_EVERY`], whatever it sends).
    pub(crate) fn nat_peer_mapped(&mut self, idx: u32, peer: PeerId, addr: SocketAddr) {
        let probe = &self.nat.mapped_peers.probe;
        let full = probe.len() >= MAX_MAPPED_PEERS && !probe.contains_key(&peer);
        if !self.relayed_nat_session(idx) || full {
            self.stats.nat.mapped_ignored += 1;
            return;
        }
        match probe.get(&peer) {
            Some(&(a, _)) if a == addr => return,
            Some(&(_, left)) if left > 0 => {
                self.stats.nat.mapped_ignored += 1;
                return;
            }
            _ => {}
        }
        self.stats.nat.mapped_received += 1;
        self.nat
            .mapped_peers
            .probe
            .insert(peer, (addr, MAPPED_PROBES));
    }
}
