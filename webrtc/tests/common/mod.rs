//! What the endpoint tests share: two endpoints on a virtual clock, their
//! outputs carried across by the test until nothing moves.

use moss_webrtc::{Endpoint, Output};
use std::time::Instant;

/// The envelope `text` as the signal server forwards it: `from` stamped.
pub fn stamp(text: &str, from: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).expect("an envelope");
    v["from"] = serde_json::Value::String(from.into());
    v.to_string()
}

/// Two endpoints and how one's outputs reach the other.
pub trait Wire {
    /// The endpoints and the virtual clock.
    fn parts(&mut self) -> (&mut [Endpoint; 2], &mut Instant);
    /// Carries output `o` of endpoint `i`.
    fn carry(&mut self, i: usize, o: Output);

    /// Hands signal `text` of endpoint `i` to the other, stamped.
    fn relay_signal(&mut self, i: usize, text: &str) {
        let (eps, now) = self.parts();
        let id = eps[i].id().to_string();
        eps[1 - i].handle_signal(*now, 0, &stamp(text, &id));
    }
}

/// Carries every output across until nothing moves, then advances the
/// clock to the next deadline; `steps` rounds at most, or until `until`.
pub fn drive<W: Wire>(w: &mut W, steps: usize, until: impl Fn(&W) -> bool) {
    for _ in 0..steps {
        if until(&*w) {
            return;
        }
        let mut moved = true;
        while moved {
            moved = false;
            for i in 0..2 {
                while let Some(o) = w.parts().0[i].poll_output() {
                    moved = true;
                    w.carry(i, o);
                }
            }
        }
        let (eps, clock) = w.parts();
        let Some(next) = eps.iter().filter_map(|e| e.poll_timeout()).min() else {
            return;
        };
        *clock = (*clock).max(next);
        for e in eps {
            e.handle_timeout(*clock);
        }
    }
}
