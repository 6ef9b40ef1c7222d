//! Helpers shared by the router test files: peers, a router with peers on
//! topic "t", the `joined` fixture, and filters over the router's actions.

#![allow(dead_code)]

use moss_crypto::PeerId;
use moss_gossip::{Action, Config, Control, MessageId, PxPeer, Router};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub fn p(i: u8) -> PeerId {
    PeerId([i; 32])
}

pub fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 4000))
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

pub fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7; 32])
}

pub fn drain(r: &mut Router) -> Vec<Action> {
    std::iter::from_fn(|| r.poll_action()).collect()
}

/// A router with `n` peers (ids 1..=n, outbound when odd) on topic "t".
pub fn router(n: u8, cfg: Config) -> Router {
    let mut r = Router::new(cfg, secs(1));
    for i in 1..=n {
        r.add_peer(p(i), addr(i), i % 2 == 1);
        r.peer_subscribed(&p(i), "t");
    }
    r
}

/// The peers of the control actions in `a` that `which` selects.
pub fn controls_to(a: &[Action], which: impl Fn(&Control) -> bool) -> Vec<PeerId> {
    a.iter()
        .filter_map(|a| match a {
            Action::Control { to, control } if which(control) => Some(*to),
            _ => None,
        })
        .collect()
}

pub fn grafts(a: &[Action]) -> Vec<PeerId> {
    controls_to(a, |c| matches!(c, Control::Graft { .. }))
}

/// A PRUNE of topic "t".
pub fn prune_t(backoff_secs: u32, px: Vec<PxPeer>) -> Control {
    Control::Prune {
        topic: "t".into(),
        backoff_secs,
        px,
    }
}

/// The first of peers 1..=n that is not in the mesh of "t".
pub fn outside_mesh(r: &Router, n: u8) -> PeerId {
    (1..=n)
        .map(p)
        .find(|q| !r.mesh_peers("t").contains(q))
        .unwrap()
}

pub fn prunes(a: &[Action]) -> Vec<(PeerId, usize)> {
    a.iter()
        .filter_map(|a| match a {
            Action::Control {
                to,
                control: Control::Prune { px, .. },
            } => Some((*to, px.len())),
            _ => None,
        })
        .collect()
}

pub fn sends(a: &[Action]) -> Vec<PeerId> {
    a.iter()
        .filter_map(|a| match a {
            Action::Send { to, .. } => Some(*to),
            _ => None,
        })
        .collect()
}

pub fn body(n: usize) -> Arc<[u8]> {
    vec![1u8; n].into()
}

/// [`router`] with `n` peers that has joined "t" at time 0, and its RNG.
pub fn joined(n: u8, cfg: Config) -> (Router, ChaCha20Rng) {
    let mut r = router(n, cfg);
    let mut g = rng();
    r.join("t", secs(0), &mut g);
    (r, g)
}

/// IHAVE id lists sent to `to` in `a`.
pub fn ihaves_to(a: &[Action], to: &PeerId) -> Vec<Vec<MessageId>> {
    a.iter()
        .filter_map(|x| match x {
            Action::Control {
                to: t,
                control: Control::IHave { ids, .. },
            } if t == to => Some(ids.clone()),
            _ => None,
        })
        .collect()
}
