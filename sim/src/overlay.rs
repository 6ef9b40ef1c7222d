//! A ready-made telemetry network for tests and profiling probes: `n`
//! nodes with distinct identities and addresses on one link model, each
//! dialling up to four earlier ones so the overlay is connected.

use crate::net::{LinkModel, Sim};
use moss_mesh::{Config, Identity};
use std::net::{Ipv4Addr, SocketAddr};

/// Builds `n` nodes of `cfg` (seeded identities, addresses 10.9.x.y) whose
/// wall clocks read `unix_origin` at virtual time zero, and dials the
/// overlay; nothing runs yet.
pub fn telemetry_network(
    seed: u64,
    n: usize,
    link: LinkModel,
    cfg: &Config,
    unix_origin: u64,
) -> Sim {
    let mut sim = Sim::new(seed, link);
    for i in 0..n {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        s[31] = 0x7e;
        let addr = SocketAddr::from((Ipv4Addr::new(10, 9, (i >> 8) as u8, i as u8), 4000));
        let id = sim.add_node(cfg.clone(), Identity::from_seed(s), addr);
        sim.with_node(id, |node, _| node.set_unix_origin(unix_origin));
    }
    let mut x: u64 = seed;
    for i in 1..n {
        for _ in 0..4 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let j = (x >> 33) as usize % i;
            sim.dial(i, j);
        }
    }
    sim
}
