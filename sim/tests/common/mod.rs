//! Nodes of the NAT classification tests (`nat_classify*.rs`).

use moss_mesh::{Config, Identity};
use moss_sim::{NatKind, Sim};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Public address number `i`: 203.0.113.`i`:4000.
fn public(i: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(203, 0, 113, i), 4000))
}

/// Adds public node number `i` (identity and address from `i`), which
/// knows its interface address.
pub fn add_public(sim: &mut Sim, cfg: &Config, i: u8) -> usize {
    let a = public(i);
    let n = sim.add_node(cfg.clone(), Identity::from_seed([i; 32]), a);
    sim.with_node(n, |node, _| node.set_local_addrs(&[a]));
    n
}

/// Adds node number `k` at 192.168.`k`.2:4000 behind a new NAT of `kind`
/// at 198.51.100.`k` (30 s mapping timeout); it knows its interface address.
pub fn add_behind_nat(sim: &mut Sim, cfg: &Config, k: u8, kind: NatKind) -> usize {
    let private = SocketAddr::from((Ipv4Addr::new(192, 168, k, 2), 4000));
    let nat_ip = IpAddr::V4(Ipv4Addr::new(198, 51, 100, k));
    let n = sim.add_node_behind_nat(
        cfg.clone(),
        Identity::from_seed([k; 32]),
        private,
        kind,
        nat_ip,
        Duration::from_secs(30),
    );
    sim.with_node(n, |node, _| node.set_local_addrs(&[private]));
    n
}
