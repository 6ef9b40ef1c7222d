//! The node's clock: `performance.now()` in the browser, made monotonic.

use std::time::Duration;

#[cfg(target_arch = "wasm32")]
mod js {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        /// `performance.now()`: milliseconds since the page's time origin.
        #[wasm_bindgen(js_namespace = performance, js_name = now)]
        pub fn performance_now() -> f64;
    }
}

/// Milliseconds since the page's time origin (`performance.now()`); on a
/// native build (docs, `cargo check`), time since the first call.
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js::performance_now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
    }
}

/// A monotonic node time from a millisecond clock: never goes back, even
/// if the reading does (a clamped or coarsened timer).
#[derive(Debug, Default, Clone, Copy)]
pub struct Monotonic {
    last: Duration,
}

impl Monotonic {
    /// The node time for a reading of `ms` milliseconds.
    pub fn at(&mut self, ms: f64) -> Duration {
        let t = if ms.is_finite() && ms > 0.0 {
            Duration::from_secs_f64(ms / 1e3)
        } else {
            Duration::ZERO
        };
        self.last = self.last.max(t);
        self.last
    }

    /// The node time now.
    pub fn now(&mut self) -> Duration {
        self.at(now_ms())
    }
}
