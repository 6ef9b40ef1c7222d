//! Moss in WebAssembly: today the explorer's telemetry verifier, which is
//! `moss-telemetry`'s own audit code exported to JavaScript (the browser
//! peer of issue 13 will join it here as a sibling module).
//!
//! Every export takes raw response bytes and answers a JSON string
//! `{"ok":true,…}` or `{"ok":false,"error":{"kind","message",…}}`, so bad
//! input never throws into the page.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

pub mod reply;
pub mod synthetic;
pub mod verifier;

pub use verifier::Verifier;
