//! Result codes of the C ABI and the internal error type that maps to them.

use moss_engine::NodeError;

/// Success.
pub const MOSS_OK: i32 = 0;
/// The handle is unknown: never issued, or already released by `Moss_Stop`.
pub const MOSS_ERR_INVALID_HANDLE: i32 = -1;
/// `Moss_Start` on a handle that is already running.
pub const MOSS_ERR_ALREADY_STARTED: i32 = -2;
/// The call needs a started node (`Moss_Publish`, `Moss_Connect`), or
/// `Moss_Stop` released a handle that was never started.
pub const MOSS_ERR_NOT_STARTED: i32 = -3;
/// The channel is NULL, not UTF-8, empty or longer than 255 bytes.
pub const MOSS_ERR_INVALID_CHANNEL: i32 = -4;
/// The payload is larger than `security.max_message_size_bytes`.
pub const MOSS_ERR_MESSAGE_TOO_LARGE: i32 = -5;
/// No peer is connected, so a publish cannot leave this node.
pub const MOSS_ERR_NO_PEERS: i32 = -6;
/// Tracker bootstrap failed (reserved: the engine reports tracker results
/// as events 5 and 6, no call returns this yet).
pub const MOSS_ERR_TRACKER_FAIL: i32 = -7;
/// `mesh_id` is NULL, empty or not UTF-8, or the config JSON is invalid;
/// `Moss_LastError` names the field.
pub const MOSS_ERR_CONFIG_INVALID: i32 = -8;
/// Out of memory, or the engine's bounded command queue is full
/// (back-pressure: retry later).
pub const MOSS_ERR_OUT_OF_MEMORY: i32 = -9;
/// The address is NULL, not UTF-8 or does not resolve, or the handshake
/// failed or timed out (`security.handshake_timeout_sec`).
pub const MOSS_ERR_CONNECT_FAILED: i32 = -10;
/// The subsystem behind this call does not exist yet in this version
/// (a Moss-in-Rust addition; see each function).
pub const MOSS_ERR_NOT_AVAILABLE: i32 = -11;
/// An unexpected internal failure (a caught panic, no OS randomness, a
/// thread that could not be spawned); `Moss_LastError` says which.
pub const MOSS_ERR_INTERNAL: i32 = -12;
/// `Moss_Start` could not bind the UDP socket (port in use, no
/// permission); `Moss_LastError` has the OS error.
pub const MOSS_ERR_LISTEN_FAILED: i32 = -13;
/// A pointer argument is NULL where data is required (`data` with
/// `len > 0`).
pub const MOSS_ERR_INVALID_ARGUMENT: i32 = -14;

/// Why a C ABI call failed: a code plus the message `Moss_LastError` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FfiError {
    /// Unknown or released handle.
    InvalidHandle(i64),
    /// `Moss_Start` twice.
    AlreadyStarted,
    /// Needs a running node.
    NotStarted,
    /// Bad channel argument.
    InvalidChannel(String),
    /// Payload over the configured limit.
    TooLarge {
        /// Payload size.
        size: u64,
        /// Configured limit.
        max: u64,
    },
    /// No connected peer.
    NoPeers,
    /// Bad mesh id or config.
    Config(String),
    /// Engine queue full.
    Busy,
    /// Bad address or failed handshake.
    Connect(String),
    /// Subsystem not built yet.
    NotAvailable(&'static str),
    /// Unexpected internal failure.
    Internal(String),
    /// Socket bind failed.
    Listen(String),
    /// NULL where data is required.
    InvalidArgument(&'static str),
}

impl FfiError {
    /// The C ABI code.
    pub fn code(&self) -> i32 {
        match self {
            Self::InvalidHandle(_) => MOSS_ERR_INVALID_HANDLE,
            Self::AlreadyStarted => MOSS_ERR_ALREADY_STARTED,
            Self::NotStarted => MOSS_ERR_NOT_STARTED,
            Self::InvalidChannel(_) => MOSS_ERR_INVALID_CHANNEL,
            Self::TooLarge { .. } => MOSS_ERR_MESSAGE_TOO_LARGE,
            Self::NoPeers => MOSS_ERR_NO_PEERS,
            Self::Config(_) => MOSS_ERR_CONFIG_INVALID,
            Self::Busy => MOSS_ERR_OUT_OF_MEMORY,
            Self::Connect(_) => MOSS_ERR_CONNECT_FAILED,
            Self::NotAvailable(_) => MOSS_ERR_NOT_AVAILABLE,
            Self::Internal(_) => MOSS_ERR_INTERNAL,
            Self::Listen(_) => MOSS_ERR_LISTEN_FAILED,
            Self::InvalidArgument(_) => MOSS_ERR_INVALID_ARGUMENT,
        }
    }

    /// The human-readable message for `Moss_LastError`.
    pub fn message(&self) -> String {
        match self {
            Self::InvalidHandle(h) => {
                format!("invalid handle {h} (never issued or already stopped)")
            }
            Self::AlreadyStarted => "node already started".into(),
            Self::NotStarted => "node not started".into(),
            Self::InvalidChannel(why) => format!("invalid channel: {why}"),
            Self::TooLarge { size, max } => {
                format!("message of {size} bytes exceeds max_message_size_bytes ({max})")
            }
            Self::NoPeers => "no peers connected".into(),
            Self::Config(why) => why.clone(),
            Self::Busy => "engine command queue full; retry later".into(),
            Self::Connect(why) => format!("connect failed: {why}"),
            Self::NotAvailable(what) => format!("not available: {what}"),
            Self::Internal(why) => format!("internal error: {why}"),
            Self::Listen(why) => format!("listen failed: {why}"),
            Self::InvalidArgument(why) => format!("invalid argument: {why}"),
        }
    }

    /// Maps an engine error of a running node.
    pub fn from_node(e: NodeError) -> Self {
        match e {
            NodeError::Stopped => Self::NotStarted,
            NodeError::InvalidTopic => {
                Self::InvalidChannel("empty or longer than 255 bytes".into())
            }
            NodeError::TooLarge { size, max } => Self::TooLarge {
                size: size as u64,
                max: max as u64,
            },
            NodeError::NoPeers => Self::NoPeers,
            NodeError::Busy => Self::Busy,
            NodeError::BadAddress(a) => Self::Connect(format!("bad address `{a}`")),
            NodeError::ConnectFailed(why) => Self::Connect(why),
            NodeError::Timeout => Self::Connect("timed out".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_negative() {
        let all = [
            FfiError::InvalidHandle(1),
            FfiError::AlreadyStarted,
            FfiError::NotStarted,
            FfiError::InvalidChannel(String::new()),
            FfiError::TooLarge { size: 2, max: 1 },
            FfiError::NoPeers,
            FfiError::Config(String::new()),
            FfiError::Busy,
            FfiError::Connect(String::new()),
            FfiError::NotAvailable(""),
            FfiError::Internal(String::new()),
            FfiError::Listen(String::new()),
            FfiError::InvalidArgument(""),
        ];
        let mut codes: Vec<i32> = all.iter().map(FfiError::code).collect();
        assert!(codes.iter().all(|c| *c < 0));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
