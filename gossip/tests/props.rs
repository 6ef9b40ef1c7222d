//! Random inputs never panic the router and never break its invariants.

use moss_crypto::PeerId;
use moss_gossip::{Action, Config, Control, PxPeer, Router};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Add(u8, bool),
    Remove(u8),
    Sub(u8, u8),
    Unsub(u8, u8),
    Ctl(u8, u8, u8, Vec<u8>),
    Msg(u8, u8, u8, u16),
    Invalid(u8, u8),
    Publish(u8, u8),
    Join(u8),
    Leave(u8),
    Tick(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u8>(), any::<bool>()).prop_map(|(p, o)| Op::Add(p % 24, o)),
        any::<u8>().prop_map(|p| Op::Remove(p % 24)),
        (any::<u8>(), any::<u8>()).prop_map(|(p, t)| Op::Sub(p % 24, t % 3)),
        (any::<u8>(), any::<u8>()).prop_map(|(p, t)| Op::Unsub(p % 24, t % 3)),
        (
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..6)
        )
            .prop_map(|(p, k, t, ids)| Op::Ctl(p % 24, k % 5, t % 3, ids)),
        (any::<u8>(), any::<u8>(), any::<u8>(), any::<u16>()).prop_map(|(p, id, t, n)| Op::Msg(
            p % 24,
            id,
            t % 3,
            n
        )),
        (any::<u8>(), any::<u8>()).prop_map(|(p, t)| Op::Invalid(p % 24, t % 3)),
        (any::<u8>(), any::<u8>()).prop_map(|(id, t)| Op::Publish(id, t % 3)),
        any::<u8>().prop_map(|t| Op::Join(t % 3)),
        any::<u8>().prop_map(|t| Op::Leave(t % 3)),
        any::<u16>().prop_map(Op::Tick),
    ]
}

fn peer(i: u8) -> PeerId {
    PeerId([i; 32])
}

fn topic(t: u8) -> String {
    format!("t{t}")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_operations_keep_invariants(ops in proptest::collection::vec(op(), 1..120)) {
        let mut r = Router::new(Config::default(), Duration::from_secs(1));
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        let mut now = Duration::ZERO;
        let mut connected = std::collections::BTreeSet::new();
        for o in ops {
            match o {
                Op::Add(p, out) => {
                    let a = SocketAddr::from(([10, 0, p % 4, 1], 4000 + u16::from(p)));
                    r.add_peer(peer(p), a, out);
                    connected.insert(p);
                }
                Op::Remove(p) => {
                    r.remove_peer(&peer(p), now);
                    connected.remove(&p);
                }
                Op::Sub(p, t) => r.peer_subscribed(&peer(p), &topic(t)),
                Op::Unsub(p, t) => r.peer_unsubscribed(&peer(p), &topic(t), now),
                Op::Ctl(p, k, t, ids) => {
                    let ids: Vec<[u8; 32]> = ids.iter().map(|b| [*b; 32]).collect();
                    let c = match k {
                        0 => Control::Graft { topic: topic(t).into() },
                        1 => Control::Prune {
                            topic: topic(t).into(),
                            backoff_secs: u32::from(ids.len() as u8) * 1000,
                            px: ids.iter().map(|i| PxPeer {
                                peer: PeerId(*i),
                                addr: SocketAddr::from(([10, 9, 9, i[0]], 1)),
                            }).collect(),
                        },
                        2 => Control::IHave { topic: topic(t).into(), ids },
                        3 => Control::IWant { ids },
                        _ => Control::IDontWant { ids },
                    };
                    r.on_control(now, &peer(p), c, &mut rng);
                }
                Op::Msg(p, id, t, n) => {
                    let body: std::sync::Arc<[u8]> = vec![0u8; usize::from(n % 4096)].into();
                    r.on_message(now, &peer(p), &peer(200), [id; 32], &topic(t), usize::from(n), Some(body));
                }
                Op::Invalid(p, t) => r.on_invalid(&peer(p), &topic(t)),
                Op::Publish(id, t) => {
                    let _ = r.publish(now, [id ^ 0x80; 32], &topic(t), vec![1u8; 10], &mut rng);
                }
                Op::Join(t) => r.join(&topic(t), now, &mut rng),
                Op::Leave(t) => r.leave(&topic(t), now),
                Op::Tick(ms) => {
                    now += Duration::from_millis(u64::from(ms % 5000));
                    if now >= r.next_heartbeat() {
                        r.heartbeat(now, &mut rng);
                    }
                }
            }
            while let Some(a) = r.poll_action() {
                if let Action::Send { to, .. } | Action::Control { to, .. } = a {
                    prop_assert!(connected.contains(&to.0[0]), "action for an unknown peer");
                }
            }
            for t in 0..3 {
                for m in r.mesh_peers(&topic(t)) {
                    prop_assert!(connected.contains(&m.0[0]), "mesh holds a gone peer");
                }
                prop_assert!(r.mesh_peers(&topic(t)).len() <= 24);
            }
            let (msgs, bytes, seen) = r.cache_usage();
            prop_assert!(bytes <= r.config().mcache_max_bytes && msgs <= seen + 256);
        }
    }
}
