//! Errors thrown into JavaScript: a message plus the C ABI's result code
//! (`MOSS_ERR_*`), so pages and C hosts share one table.

use moss_mesh::{ConfigError, PublishError};
use wasm_bindgen::prelude::*;

/// The C ABI's `MOSS_ERR_INVALID_CHANNEL`: a bad topic.
pub const ERR_INVALID_CHANNEL: i32 = -4;
/// `MOSS_ERR_MESSAGE_TOO_LARGE`.
pub const ERR_MESSAGE_TOO_LARGE: i32 = -5;
/// `MOSS_ERR_NO_PEERS`.
pub const ERR_NO_PEERS: i32 = -6;
/// `MOSS_ERR_CONFIG_INVALID`.
pub const ERR_CONFIG_INVALID: i32 = -8;
/// `MOSS_ERR_INTERNAL`: no randomness from the browser.
pub const ERR_INTERNAL: i32 = -12;
/// `MOSS_ERR_INVALID_ARGUMENT`: a PSK or identity seed of the wrong size.
pub const ERR_INVALID_ARGUMENT: i32 = -14;

/// Why a [`crate::MossNode`] call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The mesh id is empty, or the config JSON is invalid (names the field).
    #[error("{0}")]
    Config(String),
    /// A PSK or identity seed that is not 32 bytes.
    #[error("{what} must be 32 bytes, got {got}")]
    BadLength {
        /// Which argument.
        what: &'static str,
        /// Its length.
        got: usize,
    },
    /// A topic or publish the node refused (bad topic, too large, no peers).
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// `crypto.getRandomValues` failed.
    #[error("no randomness: {0}")]
    Random(String),
}

impl PeerError {
    /// The C ABI's code for this error.
    pub fn code(&self) -> i32 {
        match self {
            Self::Config(_) => ERR_CONFIG_INVALID,
            Self::BadLength { .. } => ERR_INVALID_ARGUMENT,
            Self::Publish(PublishError::InvalidTopic) => ERR_INVALID_CHANNEL,
            Self::Publish(PublishError::TooLarge { .. }) => ERR_MESSAGE_TOO_LARGE,
            Self::Publish(PublishError::NoPeers) => ERR_NO_PEERS,
            Self::Random(_) => ERR_INTERNAL,
        }
    }
}

impl From<ConfigError> for PeerError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e.to_string())
    }
}

/// The error object JavaScript receives: `message` and `code`.
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct MossError {
    code: i32,
    message: String,
}

#[wasm_bindgen]
impl MossError {
    /// The C ABI's result code (`MOSS_ERR_*`, negative).
    #[wasm_bindgen(getter)]
    pub fn code(&self) -> i32 {
        self.code
    }

    /// What went wrong.
    #[wasm_bindgen(getter)]
    pub fn message(&self) -> String {
        self.message.clone()
    }
}

impl From<PeerError> for MossError {
    fn from(e: PeerError) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}
