//! The heartbeat: score refresh, topic mesh maintenance (GRAFT/PRUNE,
//! D_out, opportunistic grafting), fanout upkeep, IHAVE gossip, broken
//! IWANT promises and cache shifting.

use crate::control::Control;
use crate::router::{shuffle, Router};
use crate::types::{MessageId, Topic};
use crate::Time;
use moss_crypto::PeerId;
use rand_core::RngCore;
use std::collections::BTreeSet;

/// Most message ids offered to a peer when it joins one of our topic meshes.
pub const GRAFT_CATCH_UP: usize = 256;

impl Router {
    /// Runs one heartbeat. Call when [`Router::next_heartbeat`] is due.
    pub fn heartbeat(&mut self, now: Time, rng: &mut impl RngCore) {
        self.next_heartbeat = now + self.cfg.heartbeat;
        self.heartbeats += 1;
        self.score.refresh(now);
        self.refresh_app_scores(now);
        self.backoff.retain(|_, b| now < b.until);
        self.broken_promises(now);
        let topics: Vec<Topic> = self.mesh.keys().cloned().collect();
        for t in &topics {
            self.maintain_mesh(t, now, rng);
            self.refresh_grafts(t);
        }
        self.maintain_fanout(now, rng);
        let gossip_topics: Vec<Topic> = self
            .mesh
            .keys()
            .chain(self.fanout.keys())
            .cloned()
            .collect();
        for t in &gossip_topics {
            self.emit_gossip(t, now, rng);
        }
        self.mcache.shift();
        let keep = self.cfg.own_gossip_windows as u64;
        let beat = self.heartbeats;
        while self
            .own
            .front()
            .is_some_and(|(_, _, b)| beat.saturating_sub(*b) > keep)
        {
            self.own.pop_front();
        }
        self.late.retain(|(_, _, until)| *until > beat);
        self.seen.expire(now);
        self.expire_dont_want(now);
    }

    fn refresh_app_scores(&mut self, now: Time) {
        let Some(f) = self.app_score.as_mut() else {
            return;
        };
        for (p, s) in &self.peers {
            let base = self.score.base_score(p, Some(s.addr.ip()), now);
            let v = f(p, base);
            self.score.set_app_score(p, true, v);
        }
    }

    fn broken_promises(&mut self, now: Time) {
        let followup = self.cfg.iwant_followup;
        let mut broken: Vec<(MessageId, PeerId)> = Vec::new();
        for (id, asks) in self.promises.iter_mut() {
            asks.retain(|(p, asked)| {
                let late = now >= *asked + followup;
                if late {
                    broken.push((*id, *p));
                }
                !late
            });
        }
        self.promises.retain(|_, asks| !asks.is_empty());
        broken.sort_unstable();
        for (id, p) in broken {
            // Our own rate limiter may have dropped the answer: no blame.
            let limited = self
                .peers
                .get(&p)
                .and_then(|s| s.rate_limited())
                .is_some_and(|t| now.saturating_sub(t) <= followup);
            if !self.seen.contains(&id) && !limited {
                let connected = self.connected(&p);
                self.score.add_penalty(&p, connected, 1.0);
            }
        }
    }

    pub(crate) fn graft(&mut self, t: &Topic, p: PeerId, now: Time) {
        if let Some(m) = self.mesh.get_mut(t) {
            m.insert(p);
        }
        let connected = self.connected(&p);
        self.score.graft(&p, connected, t, now);
        self.send(p, Control::Graft { topic: t.clone() });
        self.catch_up(t, p);
    }

    /// Tells a peer that just joined our mesh for `t` which cached messages
    /// of `t` it is not known to have (newest first, at most
    /// [`GRAFT_CATCH_UP`]). Ordinary gossip advertises only the last few
    /// heartbeats to mesh peers, so without this a node whose every topic
    /// neighbour left and was replaced after a publish could miss it for
    /// good although its new neighbours still cache it.
    pub(crate) fn catch_up(&mut self, t: &Topic, p: PeerId) {
        let max = GRAFT_CATCH_UP.min(self.cfg.max_ihave_length);
        let ids: Vec<MessageId> = self
            .mcache
            .recent_ids(t, max)
            .into_iter()
            .filter(|id| !self.mcache.peer_has(id, &p))
            .collect();
        if !ids.is_empty() {
            self.offer(p, t, ids);
        }
    }

    /// Sends `p` an IHAVE of `ids` in topic `t`. Each id may then be asked
    /// for once more ([`crate::mcache::MessageCache::offered`]): the
    /// answers to `p`'s earlier IWANTs may have been lost, and we offer a
    /// message again only while `p` is not known to have it.
    fn offer(&mut self, p: PeerId, t: &Topic, ids: Vec<MessageId>) {
        for id in &ids {
            self.mcache.offered(id, &p);
        }
        self.send(
            p,
            Control::IHave {
                topic: t.clone(),
                ids,
            },
        );
    }

    fn prune(&mut self, t: &Topic, p: PeerId, now: Time, px: bool) {
        if let Some(m) = self.mesh.get_mut(t) {
            m.remove(&p);
        }
        let msg = self.prune_msg(t, &p, now, px);
        self.score.prune(&p, t, now);
        self.set_backoff(t, p, now + self.cfg.prune_backoff);
        self.send(p, msg);
    }

    fn candidates(&self, t: &Topic, now: Time, min_score: f64) -> Vec<PeerId> {
        let mesh = self.mesh.get(t);
        self.topic_peers(t)
            .into_iter()
            .filter(|p| !mesh.is_some_and(|m| m.contains(p)))
            .filter(|p| !self.in_backoff(t, p, now))
            .filter(|p| self.score_of(p, now) >= min_score)
            .collect()
    }

    fn maintain_mesh(&mut self, t: &Topic, now: Time, rng: &mut impl RngCore) {
        let cfg = self.cfg.clone();
        // Negative scores leave the mesh (no peer exchange for them).
        let bad: Vec<PeerId> = self
            .mesh
            .get(t)
            .map(|m| {
                m.iter()
                    .filter(|p| self.score_of(p, now) < 0.0)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        for p in bad {
            self.prune(t, p, now, false);
        }
        let size = self.mesh.get(t).map_or(0, |m| m.len());
        if size < cfg.d_lo {
            let mut c = self.candidates(t, now, 0.0);
            shuffle(&mut c, rng);
            for p in c.into_iter().take(cfg.d - size) {
                self.graft(t, p, now);
            }
        } else if size > cfg.d_high {
            self.shrink_mesh(t, now, rng);
        }
        // Keep D_out outbound peers.
        let (size, outbound) = self.mesh_counts(t);
        if size >= cfg.d_lo && outbound < cfg.d_out {
            let mut c: Vec<PeerId> = self
                .candidates(t, now, 0.0)
                .into_iter()
                .filter(|p| self.peers.get(p).is_some_and(|s| s.outbound))
                .collect();
            shuffle(&mut c, rng);
            for p in c.into_iter().take(cfg.d_out - outbound) {
                self.graft(t, p, now);
            }
        }
        // Opportunistic grafting when the mesh scores poorly.
        if cfg.opportunistic_graft_ticks > 0
            && self
                .heartbeats
                .is_multiple_of(cfg.opportunistic_graft_ticks)
            && size > 1
        {
            let mut scores: Vec<f64> = self
                .mesh
                .get(t)
                .map(|m| m.iter().map(|p| self.score_of(p, now)).collect())
                .unwrap_or_default();
            scores.sort_by(f64::total_cmp);
            let median = scores.get(scores.len() / 2).copied().unwrap_or(0.0);
            if median < cfg.thresholds.opportunistic_graft {
                let mut c: Vec<PeerId> = self
                    .candidates(t, now, 0.0)
                    .into_iter()
                    .filter(|p| self.score_of(p, now) > median)
                    .collect();
                shuffle(&mut c, rng);
                for p in c.into_iter().take(cfg.opportunistic_graft_peers) {
                    self.graft(t, p, now);
                }
            }
        }
    }

    /// Re-sends GRAFT to the mesh peers whose turn it is.
    fn refresh_grafts(&mut self, t: &Topic) {
        let every = self.cfg.graft_refresh_ticks;
        if every == 0 {
            return;
        }
        let beat = self.heartbeats % every;
        let due: Vec<PeerId> = self
            .mesh
            .get(t)
            .map(|m| {
                m.iter()
                    .filter(|p| u64::from(p.0[0]) % every == beat)
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        for p in due {
            self.send(p, Control::Graft { topic: t.clone() });
        }
    }

    fn mesh_counts(&self, t: &Topic) -> (usize, usize) {
        self.mesh.get(t).map_or((0, 0), |m| {
            let out = m
                .iter()
                .filter(|p| self.peers.get(p).is_some_and(|s| s.outbound))
                .count();
            (m.len(), out)
        })
    }

    /// Prunes an oversubscribed mesh down to D: the best D_score by score,
    /// the rest at random, with at least D_out outbound peers kept.
    fn shrink_mesh(&mut self, t: &Topic, now: Time, rng: &mut impl RngCore) {
        let cfg = self.cfg.clone();
        let mut peers: Vec<PeerId> = self
            .mesh
            .get(t)
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default();
        shuffle(&mut peers, rng);
        peers.sort_by(|a, b| self.score_of(b, now).total_cmp(&self.score_of(a, now)));
        let (best, rest) = peers.split_at(cfg.d_score.min(peers.len()));
        let mut rest = rest.to_vec();
        shuffle(&mut rest, rng);
        let mut keep: Vec<PeerId> = best.to_vec();
        keep.extend(rest.iter().take(cfg.d.saturating_sub(keep.len())));
        let is_out = |p: &PeerId| self.peers.get(p).is_some_and(|s| s.outbound);
        let outbound = keep.iter().filter(|p| is_out(p)).count();
        if outbound < cfg.d_out {
            let extra: Vec<PeerId> = peers
                .iter()
                .filter(|p| !keep.contains(p) && is_out(p))
                .take(cfg.d_out - outbound)
                .copied()
                .collect();
            for e in extra {
                // Replace the last kept inbound peer.
                if let Some(pos) = keep.iter().rposition(|p| !is_out(p)) {
                    keep[pos] = e;
                }
            }
        }
        let keep: BTreeSet<PeerId> = keep.into_iter().collect();
        for p in peers {
            if !keep.contains(&p) {
                self.prune(t, p, now, true);
            }
        }
    }

    fn maintain_fanout(&mut self, now: Time, rng: &mut impl RngCore) {
        let ttl = self.cfg.fanout_ttl;
        self.fanout
            .retain(|_, f| now.saturating_sub(f.last_pub) < ttl);
        let publish_min = self.cfg.thresholds.publish;
        let topics: Vec<Topic> = self.fanout.keys().cloned().collect();
        for t in topics {
            let current: Vec<PeerId> = self
                .fanout
                .get(&t)
                .map(|f| f.peers.iter().copied().collect())
                .unwrap_or_default();
            let keep: BTreeSet<PeerId> = current
                .into_iter()
                .filter(|p| {
                    self.peers.get(p).is_some_and(|s| s.has_topic(&t))
                        && self.score_of(p, now) >= publish_min
                })
                .collect();
            let mut more: Vec<PeerId> = self
                .topic_peers(&t)
                .into_iter()
                .filter(|p| !keep.contains(p) && self.score_of(p, now) >= publish_min)
                .collect();
            shuffle(&mut more, rng);
            let need = self.cfg.d.saturating_sub(keep.len());
            if let Some(f) = self.fanout.get_mut(&t) {
                f.peers = keep;
                f.peers.extend(more.into_iter().take(need));
            }
        }
    }

    /// IHAVE for the topic's recent messages to D_lazy (or gossip_factor of)
    /// eligible peers outside the mesh/fanout.
    fn emit_gossip(&mut self, t: &Topic, now: Time, rng: &mut impl RngCore) {
        let mut ids = self.mcache.gossip_ids(t);
        let recent: std::collections::HashSet<&MessageId> = ids.iter().collect();
        let own: Vec<MessageId> = self
            .own
            .iter()
            .filter(|(id, topic, _)| {
                topic == t && !recent.contains(id) && self.mcache.get(id).is_some()
            })
            .map(|(id, _, _)| *id)
            .collect();
        if ids.is_empty() && own.is_empty() {
            return;
        }
        let exclude: BTreeSet<PeerId> = self
            .mesh
            .get(t)
            .or_else(|| self.fanout.get(t).map(|f| &f.peers))
            .cloned()
            .unwrap_or_default();
        let gossip_min = self.cfg.thresholds.gossip;
        let mut c: Vec<PeerId> = self
            .topic_peers(t)
            .into_iter()
            .filter(|p| !exclude.contains(p) && self.score_of(p, now) >= gossip_min)
            .collect();
        let n = self
            .cfg
            .d_lazy
            .max((self.cfg.gossip_factor * c.len() as f64) as usize);
        shuffle(&mut c, rng);
        c.truncate(n);
        if ids.len() > self.cfg.max_ihave_length {
            shuffle(&mut ids, rng);
            ids.truncate(self.cfg.max_ihave_length);
        }
        // Mesh peers normally have every message by push; under loss one
        // may not. Those not known to have a message hear of it too.
        // So do late joiners (not in the mesh): our flood went before they
        // subscribed. And while our mesh is thinner than D_lo (a topic of
        // few peers, or peers in PRUNE backoff), our flood to the topic
        // peers outside it is their only copy: they hear of our messages
        // as mesh peers do (our own for the own-gossip windows).
        let thin = exclude.len() < self.cfg.d_lo;
        let mut late: Vec<PeerId> = self
            .late
            .iter()
            .filter(|(p, lt, _)| lt == t && !exclude.contains(p))
            .map(|(p, _, _)| *p)
            .collect();
        if thin {
            late.extend(
                self.topic_peers(t)
                    .into_iter()
                    .filter(|p| !exclude.contains(p)),
            );
        }
        late.sort_unstable();
        late.dedup();
        late.retain(|p| self.score_of(p, now) >= gossip_min);
        let mesh: Vec<PeerId> = exclude.iter().copied().collect();
        for p in mesh.into_iter().chain(late) {
            let mut missing: Vec<MessageId> = ids
                .iter()
                .chain(own.iter())
                .filter(|id| !self.mcache.peer_has(id, &p))
                .copied()
                .collect();
            if !missing.is_empty() {
                shuffle(&mut missing, rng);
                self.offer(p, t, missing);
            }
        }
        if ids.is_empty() {
            return;
        }
        for p in c {
            let mut mine = ids.clone();
            shuffle(&mut mine, rng);
            self.offer(p, t, mine);
        }
    }
}
