//! The explorer verifier's checks on what gateways serve: every break
//! located exactly, bad input refused with a clear error, and the
//! agreement of several gateways.

use moss_telemetry::audit::{MAX_CHAIN_JSON, MAX_STATS_JSON};
use moss_telemetry::{
    agreement, audit, check_snapshot, parse_chain, parse_stats, verify, Break, BreakKind, Chain,
    ChainLink, Digest, EpochReport, InputError, SnapshotIssue, Verdict,
};
use proptest::prelude::*;

fn d(b: u8) -> Digest {
    Digest([b; 32])
}

fn chain_of(epochs: std::ops::Range<u64>, salt: u8) -> Vec<ChainLink> {
    let mut c = Chain::new(1 << 16);
    for e in epochs {
        c.append(e, d(e as u8 ^ salt)).unwrap();
    }
    c.recent(0)
}

#[test]
fn a_good_chain_verifies_to_its_head() {
    let links = chain_of(10..20, 0);
    let a = audit(&links);
    assert!(a.ok());
    assert_eq!(a.links, 10);
    assert_eq!((a.first_epoch, a.head_epoch), (Some(10), Some(19)));
    assert_eq!(a.verified_through, Some(19));
    assert!(a.gaps.is_empty());
    assert_eq!(a.unrecomputed, 0);
    let empty = audit(&[]);
    assert!(empty.ok());
    assert_eq!(empty.verified_through, None);
}

#[test]
fn an_altered_epoch_digest_breaks_exactly_that_epoch() {
    let mut links = chain_of(1..9, 0);
    let original = links[4].epoch_digest;
    links[4].epoch_digest = d(0xee);
    let a = audit(&links);
    assert_eq!(
        a.breaks,
        vec![Break {
            index: 4,
            epoch: 5,
            kind: BreakKind::DigestMismatch {
                expected: original,
                got: d(0xee)
            }
        }]
    );
    assert_eq!(a.verified_through, Some(4));
    assert!(verify(&links).is_err());
}

#[test]
fn an_altered_state_or_prev_breaks_exactly_that_epoch() {
    let good = chain_of(1..9, 0);
    let mut state = good.clone();
    state[3].state_digest = Some(d(0x77));
    let a = audit(&state);
    assert_eq!(a.break_count, 1);
    assert_eq!((a.breaks[0].epoch, a.breaks[0].index), (4, 3));
    assert!(matches!(
        a.breaks[0].kind,
        BreakKind::DigestMismatch { got, .. } if got == good[3].epoch_digest
    ));

    let mut prev = good.clone();
    prev[3].prev_digest = d(0x55);
    let a = audit(&prev);
    assert!(a.breaks.iter().all(|b| b.epoch == 4), "{:?}", a.breaks);
    assert_eq!(
        a.breaks[0].kind,
        BreakKind::BrokenLink {
            expected: good[2].epoch_digest,
            got: d(0x55)
        }
    );
    assert_eq!(
        a.break_count, 2,
        "broken link and its digest, both at epoch 4"
    );
}

#[test]
fn a_rewritten_link_breaks_at_its_successor() {
    // State changed and digest recomputed: the link is self-consistent, so
    // the break shows where the next link no longer points to it.
    let mut links = chain_of(1..6, 0);
    links[2] = ChainLink::new(3, d(0x99), links[2].prev_digest);
    let a = audit(&links);
    assert_eq!(a.break_count, 1);
    assert_eq!(a.breaks[0].epoch, 4);
    assert_eq!(
        a.breaks[0].kind,
        BreakKind::BrokenLink {
            expected: links[2].epoch_digest,
            got: links[3].prev_digest
        }
    );
}

#[test]
fn a_looping_chain_is_reported() {
    let mut links = chain_of(1..4, 0);
    links.extend(chain_of(1..4, 0));
    let a = audit(&links);
    assert_eq!(
        a.breaks[0],
        Break {
            index: 3,
            epoch: 1,
            kind: BreakKind::EpochNotIncreasing { previous: 3 }
        }
    );
    assert_eq!(a.verified_through, Some(3));
}

#[test]
fn skipped_epochs_break_unless_the_links_chain() {
    let mut dropped = chain_of(1..8, 0);
    let removed = dropped.remove(3);
    let a = audit(&dropped);
    assert_eq!(a.break_count, 1);
    assert_eq!(
        a.breaks[0],
        Break {
            index: 3,
            epoch: 5,
            kind: BreakKind::BrokenLink {
                expected: dropped[2].epoch_digest,
                got: removed.epoch_digest
            }
        }
    );
    // A node offline for epochs 4..=6 chains straight from 3 to 7: a gap.
    let mut c = Chain::new(16);
    for e in [1, 2, 3, 7, 8] {
        c.append(e, d(e as u8)).unwrap();
    }
    let a = audit(&c.recent(0));
    assert!(a.ok());
    assert_eq!(a.gaps.len(), 1);
    assert_eq!((a.gaps[0].after, a.gaps[0].before), (3, 7));
}

#[test]
fn links_without_state_are_checked_for_continuity_only() {
    let mut links = chain_of(1..5, 0);
    links.iter_mut().for_each(|l| l.state_digest = None);
    let a = audit(&links);
    assert!(a.ok());
    assert_eq!(a.unrecomputed, 4);
    links[2].epoch_digest = d(1);
    let a = audit(&links);
    assert_eq!(a.breaks.len(), 1);
    assert_eq!(a.breaks[0].epoch, 4);
}

#[test]
fn bad_chain_bodies_give_clear_errors() {
    let good = serde_json::to_string(&chain_of(1..4, 0)).unwrap();
    assert_eq!(parse_chain(good.as_bytes()).unwrap().len(), 3);

    let truncated = &good.as_bytes()[..good.len() / 2];
    assert!(matches!(
        parse_chain(truncated),
        Err(InputError::Truncated { line: 1, .. })
    ));
    assert!(matches!(
        parse_chain(b"[{]"),
        Err(InputError::Syntax { .. })
    ));
    let wrong_epoch = good.replacen("\"epoch\":1", "\"epoch\":\"one\"", 1);
    let e = parse_chain(wrong_epoch.as_bytes()).unwrap_err();
    assert!(matches!(e, InputError::WrongType { .. }), "{e:?}");
    assert!(e.to_string().contains("expected u64"), "{e}");
    let short = good.replacen(&"0".repeat(64), "00", 1);
    assert!(matches!(
        parse_chain(short.as_bytes()),
        Err(InputError::WrongType { .. })
    ));
    assert!(matches!(
        parse_chain(br#"{"epoch":1}"#),
        Err(InputError::WrongType { .. })
    ));
    let huge = vec![b' '; MAX_CHAIN_JSON + 1];
    assert_eq!(
        parse_chain(&huge),
        Err(InputError::TooLarge {
            len: MAX_CHAIN_JSON + 1,
            max: MAX_CHAIN_JSON
        })
    );
    assert!(parse_chain(b"").is_err());
}

#[test]
fn stats_bodies_parse_with_clear_errors() {
    let report = EpochReport {
        epoch: 9,
        node_count_estimate: 3,
        contributors: 3,
        k_anon_ok: true,
        bandwidth_in_total: Some(1),
        bandwidth_out_total: Some(2),
        nat_histogram: Some([("public".to_string(), 3)].into()),
        degree_histogram: Some([("1-2".to_string(), 2), ("0".to_string(), 1)].into()),
        epoch_digest: d(1),
        prev_digest: d(2),
        chain_head: 8,
    };
    let mut v = serde_json::to_value(&report).unwrap();
    v["node"] = serde_json::json!({"mesh_id": "local", "peer_count": 2});
    let doc = parse_stats(v.to_string().as_bytes()).unwrap();
    assert_eq!(doc.report.as_ref(), Some(&report));
    assert_eq!(doc.mesh_id.as_deref(), Some("local"));

    let off = parse_stats(br#"{"node":{"mesh_id":"m"}}"#).unwrap();
    assert_eq!((off.report, off.mesh_id.as_deref()), (None, Some("m")));
    assert!(matches!(
        parse_stats(b"[1,2]"),
        Err(InputError::WrongType { .. })
    ));
    assert!(matches!(
        parse_stats(br#"{"epoch":"x"}"#),
        Err(InputError::WrongType { .. })
    ));
    assert!(matches!(
        parse_stats(br#"{"epoch":1"#),
        Err(InputError::Truncated { .. })
    ));
    assert!(matches!(
        parse_stats(&vec![b' '; MAX_STATS_JSON + 1]),
        Err(InputError::TooLarge { .. })
    ));

    let chain = vec![ChainLink::new(8, d(5), Digest::ZERO)];
    let mut r = report.clone();
    r.prev_digest = chain[0].epoch_digest;
    assert!(check_snapshot(&r, &chain).is_empty());
    let issues = check_snapshot(&report, &chain);
    assert!(matches!(
        issues[..],
        [SnapshotIssue::PrevMismatch { epoch: 8, .. }]
    ));
    r.contributors = 4;
    r.k_anon_ok = false;
    let issues = check_snapshot(&r, &chain);
    assert_eq!(issues.len(), 3, "{issues:?}");
    // A chain_head not (yet) in the fetched chain is not a contradiction.
    assert!(check_snapshot(&report, &[]).is_empty());
}

#[test]
fn agreement_marks_the_tampered_gateway_at_that_epoch() {
    let a = chain_of(1..9, 0);
    let b = a.clone();
    let mut fake = a.clone();
    fake[5].epoch_digest = d(0xee);
    let r = agreement(&[&a, &b, &fake]);
    assert_eq!(r.dissent, vec![vec![], vec![], vec![6]]);
    for e in &r.epochs {
        let want = if e.epoch == 6 {
            Verdict::Diverged
        } else {
            Verdict::Agreed
        };
        assert_eq!(e.verdict, want, "epoch {}", e.epoch);
    }
    let e6 = &r.epochs[5];
    assert_eq!(
        (e6.groups.clone(), e6.invalid.clone()),
        (vec![vec![0, 1]], vec![2])
    );

    // A gateway lying about a state (and recomputing its digest) is outvoted.
    let mut liar = a.clone();
    liar[2] = ChainLink::new(3, d(0x42), liar[2].prev_digest);
    let r = agreement(&[&a, &liar, &b]);
    assert_eq!(r.dissent[1], vec![3]);
    assert!(r.dissent[0].is_empty() && r.dissent[2].is_empty());

    // Two gateways, two stories: a tie, both listed.
    let r = agreement(&[&a, &liar]);
    assert_eq!(r.dissent, vec![vec![3], vec![3]]);
}

#[test]
fn gateways_started_apart_agree_on_states() {
    let early = chain_of(1..9, 0);
    let late = chain_of(4..11, 0);
    let r = agreement(&[&early, &late]);
    assert!(r.dissent.iter().all(Vec::is_empty));
    let shared: Vec<_> = r
        .epochs
        .iter()
        .filter(|e| (4..9).contains(&e.epoch))
        .collect();
    assert_eq!(shared.len(), 5);
    assert!(shared
        .iter()
        .all(|e| e.verdict == Verdict::Agreed && !e.same_history));
    assert_eq!(r.epochs[0].verdict, Verdict::Single);
    let same = agreement(&[&early, &early]);
    assert!(same.epochs.iter().all(|e| e.same_history));
}

fn arb_link() -> impl Strategy<Value = ChainLink> {
    (
        0u64..12,
        any::<u8>(),
        any::<u8>(),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(epoch, dig, prev, state)| ChainLink {
            epoch,
            epoch_digest: d(dig),
            prev_digest: d(prev),
            state_digest: state.map(d),
        })
}

proptest! {
    #[test]
    fn audit_agrees_with_verify_on_arbitrary_chains(links in proptest::collection::vec(arb_link(), 0..20)) {
        let a = audit(&links);
        prop_assert_eq!(a.ok(), verify(&links).is_ok());
        prop_assert!(a.breaks.len() <= a.break_count);
        let r = agreement(&[&links, &links]);
        prop_assert!(r.epochs.len() <= links.len());
    }

    #[test]
    fn parse_chain_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_chain(&body);
        let _ = parse_stats(&body);
    }

    #[test]
    fn tampering_any_one_digest_breaks_exactly_that_epoch(n in 2u64..40, pick in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut links = chain_of(100..100 + n, 3);
        let i = pick.index(links.len());
        links[i].epoch_digest.0[0] ^= flip;
        let a = audit(&links);
        prop_assert_eq!(a.break_count, 1);
        prop_assert_eq!(a.breaks[0].epoch, 100 + i as u64);
    }
}
