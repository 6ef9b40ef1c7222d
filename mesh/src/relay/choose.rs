//! Which supernode an end asks: a pure choice over what the end measured.
//!
//! - Supernodes we score below zero are never asked (their standing is
//!   bad in our eyes), nor ones that already refused or timed out for this
//!   request (the caller leaves them out).
//! - The lowest measured round trip wins (binding requests measure it;
//!   [`Candidate::rtt`]); supernodes without a measurement come after
//!   every measured one, best score first.
//! - Load is spread: among the supernodes whose round trip is within
//!   [`RTT_SLACK`] of the best (a near tie), the pair's own salt picks one,
//!   so many pairs of one neighbourhood do not all land on one supernode,
//!   while a far supernode is never preferred to a near one.
//!
//! - A supernode's signed load report (sessions in use over its
//!   `relay_max_sessions`, [`Candidate::load`]) counts too: a full one
//!   comes after every one with room, and among the near ties the least
//!   loaded are preferred ([`LOAD_SLACK`]) before the salt picks.
//!
//! Failing over is the caller's: a refusal (`full`, not a supernode,
//! target unreachable) or [`super::client::REQUEST_TIMEOUT`] of silence
//! asks the next supernode, and a supernode that leaves, revokes or goes
//! silent long enough for its session to end moves its relayed pairs on.

use moss_crypto::PeerId;
use std::time::Duration;

/// Round trips this close to the best count as a tie (load is spread
/// among them): 20 ms or a quarter of the best, whichever is more.
pub const RTT_SLACK: Duration = Duration::from_millis(20);

/// Loads this close to the least loaded of the near ties count as equal.
pub const LOAD_SLACK: f64 = 0.125;

/// A supernode an end could ask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The supernode.
    pub id: PeerId,
    /// Our measured round trip to it, if any.
    pub rtt: Option<Duration>,
    /// Our GossipSub score of it.
    pub score: f64,
    /// Its last load report (sessions in use over its limit), if any.
    pub load: Option<f64>,
}

fn full(c: &Candidate) -> bool {
    c.load.is_some_and(|l| l >= 1.0)
}

/// The candidates in preference order: usable ones only (score ≥ 0), the
/// full ones after the others, then lowest round trip first, unmeasured
/// last by score; ties by id so runs replay exactly.
pub fn rank(mut c: Vec<Candidate>) -> Vec<Candidate> {
    c.retain(|x| x.score >= 0.0);
    c.sort_by(|a, b| {
        let key = |x: &Candidate| (full(x), x.rtt.unwrap_or(Duration::MAX));
        key(a)
            .cmp(&key(b))
            .then(b.score.total_cmp(&a.score))
            .then(a.id.cmp(&b.id))
    });
    c
}

/// The supernode to ask among `ranked` (from [`rank`]): of those tied
/// with the best round trip (and as full as it), the least loaded (an
/// unreported load counts as none), one picked by `salt` (the pair's own
/// number).
pub fn pick(ranked: &[Candidate], salt: u64) -> Option<PeerId> {
    let best = ranked.first()?;
    let tied = match best.rtt {
        Some(b) => {
            let slack = RTT_SLACK.max(b / 4);
            ranked
                .iter()
                .take_while(|x| full(x) == full(best) && x.rtt.is_some_and(|r| r <= b + slack))
                .count()
        }
        // Nothing measured: spread over the best three by score.
        None => ranked.len().min(3),
    };
    let tied = &ranked[..tied.max(1)];
    let load = |x: &Candidate| x.load.unwrap_or(0.0);
    let least = tied.iter().map(load).fold(f64::INFINITY, f64::min);
    let light: Vec<&Candidate> = tied
        .iter()
        .filter(|x| load(x) <= least + LOAD_SLACK)
        .collect();
    let i = (salt % light.len().max(1) as u64) as usize;
    light.get(i).map(|x| x.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_loaded_near_tie_is_picked_and_a_full_one_comes_last() {
        let l = |i: u8, rtt: u64, load: f64| Candidate {
            load: Some(load),
            ..c(i, Some(rtt), 0.0)
        };
        // 1 and 3 are tied with 2 on round trip, 2 is busier: every salt
        // picks 1 or 3, and both are picked by some salt.
        let r = rank(vec![l(1, 10, 0.1), l(2, 11, 0.8), l(3, 12, 0.15)]);
        let picked: std::collections::HashSet<PeerId> =
            (0..8).filter_map(|s| pick(&r, s)).collect();
        assert_eq!(picked, [PeerId([1; 32]), PeerId([3; 32])].into());
        // A full supernode, however near, comes after a far one with room.
        let r = rank(vec![l(1, 5, 1.0), l(2, 200, 0.5)]);
        assert_eq!(r[0].id, PeerId([2; 32]));
        assert_eq!(pick(&r, 0), Some(PeerId([2; 32])));
        // All full: still one to ask (the report may be stale).
        let r = rank(vec![l(1, 5, 1.0)]);
        assert_eq!(pick(&r, 3), Some(PeerId([1; 32])));
    }

    fn c(i: u8, rtt_ms: Option<u64>, score: f64) -> Candidate {
        Candidate {
            load: None,
            id: PeerId([i; 32]),
            rtt: rtt_ms.map(Duration::from_millis),
            score,
        }
    }

    #[test]
    fn the_nearest_supernode_wins_whatever_the_salt() {
        let r = rank(vec![
            c(1, Some(120), 5.0),
            c(2, Some(15), 0.0),
            c(3, None, 9.0),
        ]);
        assert_eq!(r.iter().map(|x| x.id.0[0]).collect::<Vec<_>>(), [2, 1, 3]);
        for salt in 0..64 {
            assert_eq!(pick(&r, salt), Some(PeerId([2; 32])));
        }
    }

    #[test]
    fn a_supernode_scored_below_zero_is_never_chosen() {
        let r = rank(vec![c(1, Some(1), -0.5), c(2, Some(300), 0.0)]);
        assert_eq!(r.len(), 1);
        assert_eq!(pick(&r, 0), Some(PeerId([2; 32])));
        assert_eq!(pick(&rank(vec![c(1, Some(1), -1.0)]), 0), None);
    }

    #[test]
    fn near_ties_share_the_load_and_far_ones_get_none() {
        // Best 30 ms, slack max(20 ms, 30/4 ms): up to 50 ms ties; 55 and
        // 200 ms do not.
        let r = rank(vec![
            c(1, Some(30), 0.0),
            c(2, Some(40), 0.0),
            c(3, Some(55), 0.0),
            c(4, Some(200), 0.0),
        ]);
        let mut hits = [0usize; 5];
        for salt in 0..1000u64 {
            hits[usize::from(pick(&r, salt).unwrap().0[0])] += 1;
        }
        assert_eq!(hits[3] + hits[4], 0);
        assert_eq!(hits[1], 500);
        assert_eq!(hits[2], 500);
    }

    #[test]
    fn without_measurements_the_best_scores_share_the_load() {
        let r = rank(vec![
            c(1, None, 1.0),
            c(2, None, 3.0),
            c(3, None, 2.0),
            c(4, None, 0.5),
        ]);
        assert_eq!(
            r.iter().map(|x| x.id.0[0]).collect::<Vec<_>>(),
            [2, 3, 1, 4]
        );
        let picked: std::collections::BTreeSet<u8> = (0..30)
            .filter_map(|s| pick(&r, s))
            .map(|p| p.0[0])
            .collect();
        assert_eq!(picked.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(pick(&[], 7), None);
    }
}
