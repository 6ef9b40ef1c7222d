//! Overflow-free deadline arithmetic (configured durations may be absurd).

use std::time::{Duration, Instant};

/// Longest delay ever scheduled; longer configured durations are clamped.
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// `now + d`, with `d` clamped to [`MAX_DELAY`] so it cannot overflow.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(MAX_DELAY)).unwrap_or(now)
}
