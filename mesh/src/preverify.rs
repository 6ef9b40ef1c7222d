//! Signature checks off the core thread: an engine shard verifies the
//! signed messages of the plaintext it opened, so the Ed25519 work of
//! received messages spreads over the shards instead of queueing on the
//! thread that runs the router.
//!
//! A lock-free [`VerifiedFilter`] shared by the shards remembers which
//! message ids were verified already, so the copies of one message that
//! arrive from several peers are verified once, not once per copy. A copy
//! whose id is in the filter is not verified again, and its plaintext is
//! not marked verified: the node sees it as a duplicate (it already has
//! the first copy) or verifies it itself, so a forged signature on a
//! copied message can never ride on another copy's check.

use crate::wire::{signing_bytes, Frame, FrameReader, SIGNATURE_LEN};
use moss_crypto::msgid::message_id;
use moss_crypto::BatchVerifier;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Fingerprints of recently verified message ids, one per slot of a
/// fixed table (a newer id overwrites an older one in its slot). Shared
/// by all shards without locks.
pub struct VerifiedFilter {
    slots: Box<[AtomicU64]>,
}

impl VerifiedFilter {
    /// A filter of `slots` slots (rounded up to a power of two, at least 1).
    pub fn new(slots: usize) -> Self {
        let n = slots.max(1).next_power_of_two();
        Self {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot_and_print(&self, id: &[u8; 32]) -> (usize, u64) {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&id[..8]);
        b.copy_from_slice(&id[8..16]);
        let slot = (u64::from_le_bytes(a) as usize) & (self.slots.len() - 1);
        // Zero marks an empty slot, so a zero fingerprint becomes one.
        (slot, u64::from_le_bytes(b).max(1))
    }

    /// True if `id` was verified recently.
    pub fn contains(&self, id: &[u8; 32]) -> bool {
        let (slot, print) = self.slot_and_print(id);
        self.slots[slot].load(Ordering::Relaxed) == print
    }

    /// Remembers that `id` was verified.
    pub fn insert(&self, id: &[u8; 32]) {
        let (slot, print) = self.slot_and_print(id);
        self.slots[slot].store(print, Ordering::Relaxed);
    }
}

/// One signed message of a datagram, as the batch check needs it: its
/// origin, what it signed, the signature and its id.
type Item = ([u8; 32], [u8; 43], [u8; SIGNATURE_LEN], [u8; 32]);

thread_local! {
    /// Each shard thread's batch verifier and item scratch (kept, so the
    /// per-datagram check allocates nothing once grown).
    static BATCH: RefCell<(BatchVerifier, Vec<Item>)> =
        RefCell::new((BatchVerifier::new(process_secret()), Vec::new()));
}

/// 256 bits from the standard library's per-process random hash keys, to
/// key the batch weights (the node's seed does not reach the shards).
fn process_secret() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// Verifies every signed message in the plaintext `plain` of one
/// datagram, all in one batch equation (the network's rule, as one by
/// one). True only if it holds at least one and every one of them is new
/// to the filter and valid; then the node may skip their checks
/// ([`crate::Node::handle_plaintext_verified`]). Malformed frames, a
/// repeated id or any invalid signature give false (the node checks,
/// rejects and scores them itself).
pub fn preverify(plain: &[u8], filter: &VerifiedFilter) -> bool {
    BATCH.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => {
            let (bv, items) = &mut *b;
            check(plain, filter, bv, items)
        }
        Err(_) => check(
            plain,
            filter,
            &mut BatchVerifier::new(process_secret()),
            &mut Vec::new(),
        ),
    })
}

/// [`preverify`] with the verifier and scratch given.
fn check(
    plain: &[u8],
    filter: &VerifiedFilter,
    bv: &mut BatchVerifier,
    items: &mut Vec<Item>,
) -> bool {
    items.clear();
    for f in FrameReader::new(plain) {
        match f {
            Ok(Frame::SignedPublish(sp)) => {
                let p = &sp.publish;
                let id = message_id(&p.origin, p.seq, p.topic, p.payload);
                if filter.contains(&id) || items.iter().any(|i| i.3 == id) {
                    return false;
                }
                items.push((p.origin, signing_bytes(&id), sp.signature, id));
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    if items.is_empty() || !bv.verify_all(items.iter().map(|(k, m, s, _)| (k, &m[..], s))) {
        return false;
    }
    for i in items.iter() {
        filter.insert(&i.3);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Publish, SignedPublish};
    use moss_crypto::Identity;

    fn frame(seq: u64, forge: bool) -> Vec<u8> {
        let id = Identity::from_seed([9; 32]);
        let origin = id.public_key().0;
        let mid = message_id(&origin, seq, "t", b"payload");
        let mut signature = id.sign(&signing_bytes(&mid));
        if forge {
            signature[0] ^= 1;
        }
        let f = Frame::SignedPublish(SignedPublish {
            signature,
            publish: Publish {
                hops: 0,
                origin,
                seq,
                topic: "t",
                payload: b"payload",
            },
        });
        let mut out = Vec::new();
        f.encode(&mut out);
        out
    }

    #[test]
    fn valid_messages_are_verified_once_and_forgeries_never() {
        let filter = VerifiedFilter::new(64);
        let mut two = frame(1, false);
        two.extend_from_slice(&frame(2, false));
        assert!(preverify(&two, &filter));
        // Another copy of an id verified before is left to the node.
        assert!(!preverify(&frame(1, false), &filter));
        // A forged signature is never vouched for, alone or beside a
        // valid message.
        assert!(!preverify(&frame(3, true), &filter));
        let mut mixed = frame(4, false);
        mixed.extend_from_slice(&frame(5, true));
        assert!(!preverify(&mixed, &filter));
        // The same id twice in one datagram: left to the node.
        let mut twice = frame(7, false);
        twice.extend_from_slice(&frame(7, false));
        assert!(!preverify(&twice, &filter));
        // No signed message, or a malformed tail: nothing to vouch for.
        assert!(!preverify(&[], &filter));
        let mut bad = frame(6, false);
        bad.push(0xFF);
        assert!(!preverify(&bad, &filter));
    }

    #[test]
    fn the_filter_remembers_ids_in_fixed_slots() {
        let f = VerifiedFilter::new(3);
        assert_eq!(f.slots.len(), 4);
        assert!(!f.contains(&[0; 32]));
        f.insert(&[0; 32]);
        assert!(f.contains(&[0; 32]));
        let mut other = [0; 32];
        other[9] = 1;
        assert!(!f.contains(&other), "same slot, other fingerprint");
        f.insert(&other);
        assert!(!f.contains(&[0; 32]), "overwritten");
    }
}
