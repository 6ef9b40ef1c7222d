//! Errors of the public API.

use crate::backend::BackendError;
use moss_mesh::ConfigError;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid; the error names the field.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The I/O backend could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The OS random source failed.
    #[error("no OS randomness: {0}")]
    Random(String),
    /// The engine thread could not be spawned.
    #[error("cannot spawn the engine thread: {0}")]
    Thread(std::io::Error),
    /// The WebRTC side (config block `webrtc`) could not start.
    #[error(transparent)]
    Webrtc(#[from] crate::webrtc::WebrtcError),
}

/// Why a call on a running node failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The node was stopped.
    #[error("node is stopped")]
    Stopped,
    /// The topic name is empty or longer than 255 bytes.
    #[error("invalid topic")]
    InvalidTopic,
    /// The payload is larger than `max_message_size_bytes`.
    #[error("message of {size} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// Configured limit.
        max: usize,
    },
    /// No peer is connected.
    #[error("no peers")]
    NoPeers,
    /// The engine's command queue is full (the engine is overloaded).
    #[error("engine queue full")]
    Busy,
    /// An address did not parse or resolve.
    #[error("bad address `{0}`")]
    BadAddress(String),
    /// A dial did not produce a session.
    #[error("connect failed: {0}")]
    ConnectFailed(String),
    /// No answer within the deadline.
    #[error("timed out")]
    Timeout,
}
