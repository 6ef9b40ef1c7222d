//! What a run reports.

use crate::nat::NatStats;
use std::fmt;

/// Figures of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Honest nodes at the start.
    pub nodes: usize,
    /// Messages published.
    pub messages: usize,
    /// (message, subscriber) pairs that must be delivered: subscribers that
    /// stayed in the network the whole run.
    pub expected: usize,
    /// Of those, delivered.
    pub delivered: usize,
    /// Up to 10 missing (node, message index) pairs, for debugging.
    pub missing: Vec<(usize, usize)>,
    /// Hops of deliveries: p50, p99, max.
    pub hops: (u8, u8, u8),
    /// Latency of deliveries in ms: p50, p99, max.
    pub latency_ms: (f64, f64, f64),
    /// Duplicate copies received per delivered message (all honest nodes).
    pub duplicates_per_delivery: f64,
    /// Bytes sent by honest nodes during the message phase per payload byte
    /// delivered (everything: headers, control, gossip, keepalives).
    pub bytes_per_delivered_byte: f64,
    /// Duplicate payload bytes received per delivered payload byte.
    pub duplicate_bytes_ratio: f64,
    /// Datagrams sent and lost in flight.
    pub datagrams: (u64, u64),
    /// Eclipse target: delivered / expected for that node.
    pub target: Option<(usize, usize)>,
    /// Invalid-message spam: ((honest nodes that graylisted a spammer,
    /// honest nodes that received at least 32 forged messages), (honest nodes
    /// scoring a spammer below the publish threshold at the end, honest
    /// nodes that received any forged message)).
    pub graylisted: Option<((usize, usize), (usize, usize))>,
    /// Nodes that left and joined during the run.
    pub churn: (usize, usize),
    /// Hash of every datagram of the run.
    pub fingerprint: u64,
    /// With NATs: (class, delivered, expected) per class of subscriber
    /// ("public" or the NAT kind), sorted by class.
    pub classes: Vec<(String, usize, usize)>,
    /// With NATs: the NATs' counters summed.
    pub nat: Option<NatStats>,
    /// Handshakes completed and failed (every node, both sides).
    pub handshakes: (u64, u64),
    /// With NATs: per pair of classes, the node pairs where either end
    /// asked for or ran a hole punch toward the other, and how they ended.
    pub punches: Vec<PunchRow>,
}

/// Hole-punch outcomes of one pair of classes (see [`Report::punches`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PunchRow {
    /// The two classes ("public" or a NAT kind), in name order.
    pub classes: (String, String),
    /// Whether plain UDP can punch this pair through real NATs of these
    /// kinds (natlab measured: all but symmetric facing symmetric or
    /// port-restricted).
    pub plain_udp: bool,
    /// Node pairs with a punch asked for or tried by either end.
    pub pairs: usize,
    /// Of those, with a direct UDP session at the end.
    pub direct: usize,
    /// Of those, reported unpunchable by the forwarder.
    pub unpunchable: usize,
    /// Of those, with a punch that ran out of rounds and no session.
    pub failed: usize,
}

impl Report {
    /// Delivered / expected.
    pub fn delivery_ratio(&self) -> f64 {
        if self.expected == 0 {
            1.0
        } else {
            self.delivered as f64 / self.expected as f64
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed                      {}", self.seed)?;
        writeln!(f, "nodes                     {}", self.nodes)?;
        writeln!(f, "churn (left, joined)      {:?}", self.churn)?;
        writeln!(f, "messages                  {}", self.messages)?;
        writeln!(
            f,
            "delivery ratio            {:.6} ({}/{})",
            self.delivery_ratio(),
            self.delivered,
            self.expected
        )?;
        writeln!(
            f,
            "hops p50/p99/max          {}/{}/{}",
            self.hops.0, self.hops.1, self.hops.2
        )?;
        writeln!(
            f,
            "latency ms p50/p99/max    {:.1}/{:.1}/{:.1}",
            self.latency_ms.0, self.latency_ms.1, self.latency_ms.2
        )?;
        writeln!(
            f,
            "duplicates per delivery   {:.3}",
            self.duplicates_per_delivery
        )?;
        writeln!(
            f,
            "duplicate bytes ratio     {:.3}",
            self.duplicate_bytes_ratio
        )?;
        writeln!(
            f,
            "bytes per delivered byte  {:.3}",
            self.bytes_per_delivered_byte
        )?;
        writeln!(f, "datagrams (sent, lost)    {:?}", self.datagrams)?;
        if let Some((d, e)) = self.target {
            writeln!(f, "eclipse target            {d}/{e}")?;
        }
        if let Some(((g, n), (e, h))) = self.graylisted {
            writeln!(
                f,
                "spam graylisted by        {g} honest nodes ({n} got >= 32 forged)"
            )?;
            writeln!(
                f,
                "spam below publish thr.   {e}/{h} honest nodes that got any"
            )?;
        }
        for (c, d, e) in &self.classes {
            writeln!(
                f,
                "  {c:<23} {:.6} ({d}/{e})",
                if *e == 0 { 1.0 } else { *d as f64 / *e as f64 }
            )?;
        }
        if let Some(n) = &self.nat {
            writeln!(
                f,
                "NAT mappings / dropped   {} mappings; inbound {} passed, {} dropped unmapped, {} dropped by filtering",
                n.mappings, n.passed, n.dropped_unmapped, n.dropped_filtered
            )?;
        }
        writeln!(f, "handshakes (done, failed) {:?}", self.handshakes)?;
        if !self.punches.is_empty() {
            writeln!(
                f,
                "punch pairs (classes, plain UDP can punch: pairs, direct, unpunchable, failed)"
            )?;
        }
        for r in &self.punches {
            writeln!(
                f,
                "  {:<22} {:<22} {:<5} {:>7} {:>7} ({:5.1} %) {:>6} {:>6}",
                r.classes.0,
                r.classes.1,
                r.plain_udp,
                r.pairs,
                r.direct,
                100.0 * r.direct as f64 / r.pairs.max(1) as f64,
                r.unpunchable,
                r.failed
            )?;
        }
        if !self.missing.is_empty() {
            writeln!(f, "missing (node, msg)       {:?}", self.missing)?;
        }
        write!(f, "fingerprint               {:016x}", self.fingerprint)
    }
}

/// Hole-punch outcomes per pair of classes over every online node pair
/// where either end asked for or ran a punch toward the other.
pub fn punch_rows(sim: &crate::Sim) -> Vec<PunchRow> {
    use moss_mesh::nat::PunchState;
    use std::collections::{BTreeMap, HashMap, HashSet};
    let class = |i: usize| sim.nat_kind(i).map_or("public", |k| k.name());
    let online: Vec<usize> = (0..sim.nodes.len()).filter(|&i| sim.online(i)).collect();
    let index: HashMap<moss_mesh::PeerId, usize> = online
        .iter()
        .filter_map(|&i| Some((sim.node(i)?.public_key(), i)))
        .collect();
    // (i, j) with i < j -> the states each end holds toward the other.
    let mut pairs: BTreeMap<(usize, usize), [Option<PunchState>; 2]> = BTreeMap::new();
    let mut direct: HashSet<(usize, usize)> = HashSet::new();
    for &i in &online {
        let Some(n) = sim.node(i) else { continue };
        for (peer, st) in n.punch_states() {
            if let Some(&j) = index.get(&peer) {
                let key = (i.min(j), i.max(j));
                pairs.entry(key).or_default()[usize::from(i > j)] = Some(st);
            }
        }
        for p in n.peers() {
            if let (moss_mesh::Path::Udp(_), Some(&j)) = (p.addr, index.get(&p.peer)) {
                direct.insert((i.min(j), i.max(j)));
            }
        }
    }
    let mut rows: BTreeMap<(String, String), PunchRow> = BTreeMap::new();
    for ((i, j), st) in pairs {
        let (a, b) = {
            let (a, b) = (class(i), class(j));
            if a <= b {
                (a, b)
            } else {
                (b, a)
            }
        };
        let r = rows
            .entry((a.into(), b.into()))
            .or_insert_with(|| PunchRow {
                classes: (a.into(), b.into()),
                plain_udp: !matches!(
                    (a, b),
                    ("symmetric", "symmetric") | ("port-restricted", "symmetric")
                ),
                ..PunchRow::default()
            });
        r.pairs += 1;
        let is_direct = direct.contains(&(i, j));
        r.direct += usize::from(is_direct);
        r.unpunchable += usize::from(st.contains(&Some(PunchState::Unpunchable)));
        r.failed += usize::from(!is_direct && st.contains(&Some(PunchState::Failed)));
    }
    rows.into_values().collect()
}

/// The `q` quantile (0..=1) of sorted values.
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(quantile(&v, 0.5), 6);
        assert_eq!(quantile(&v, 0.99), 10);
        assert_eq!(quantile::<u8>(&[], 0.5), 0);
    }
}
