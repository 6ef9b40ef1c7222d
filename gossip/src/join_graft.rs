//! Graft on subscribe: a peer that announces a topic we subscribe to joins
//! our mesh for it at once while the mesh is below D, instead of at the
//! next heartbeat. A newly joined or restarted peer then gets forwarded
//! messages within one round trip of its SUBSCRIBE, not up to a heartbeat
//! later.

use crate::router::Router;
use crate::Time;
use moss_crypto::PeerId;

impl Router {
    /// `peer` subscribed to `topic` at `now`: records the subscription
    /// ([`Router::peer_subscribed`]) and, when we subscribe to `topic` and
    /// our mesh for it holds fewer than D peers, grafts `peer` (unless it is
    /// in backoff or scores below zero, the heartbeat's own rules).
    pub fn peer_subscribed_at(&mut self, peer: &PeerId, topic: &str, now: Time) {
        self.peer_subscribed(peer, topic);
        let t = self.topic(topic);
        let Some(mesh) = self.mesh.get(&t) else {
            return;
        };
        let known = self.peers.get(peer).is_some_and(|s| s.has_topic(&t));
        if !known
            || mesh.contains(peer)
            || mesh.len() >= self.cfg.d
            || self.in_backoff(&t, peer, now)
            || self.score_of(peer, now) < 0.0
        {
            return;
        }
        self.graft(&t, *peer, now);
    }
}
