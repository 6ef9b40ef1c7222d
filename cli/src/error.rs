//! Why a command failed, and the exit code each cause maps to.

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the node failed (could not start, I/O error, engine stopped).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: bad command line, config, PSK or identity file.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: no peer (for `pub`: no peer subscribed to the topic) within `--wait`.
pub const EXIT_NO_PEER: u8 = 3;
/// Exit code: `sub --timeout` ran out before `--count` messages arrived.
pub const EXIT_TIMEOUT: u8 = 4;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Input the user gave is wrong (flag value, config, key file).
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The node could not start.
    #[error("cannot start the node: {0}")]
    Start(#[from] moss::StartError),
    /// A call on the running node failed.
    #[error("{0}")]
    Node(#[from] moss::NodeError),
    /// Nobody to talk to within the wait.
    #[error("{0}")]
    NoPeer(String),
    /// `sub` did not get its messages in time.
    #[error("timed out after {got} of {want} messages")]
    Timeout {
        /// Messages received.
        got: u64,
        /// Messages wanted.
        want: u64,
    },
    /// Writing the output failed (a closed pipe ends `sub` quietly).
    #[error("output: {0}")]
    Output(std::io::Error),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Start(moss::StartError::Config(_)) => EXIT_USAGE,
            CliError::NoPeer(_) => EXIT_NO_PEER,
            CliError::Timeout { .. } => EXIT_TIMEOUT,
            CliError::File { .. }
            | CliError::Start(_)
            | CliError::Node(_)
            | CliError::Output(_) => EXIT_FAILURE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_have_distinct_codes() {
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
        assert_eq!(CliError::NoPeer("x".into()).exit_code(), EXIT_NO_PEER);
        assert_eq!(
            CliError::Timeout { got: 0, want: 1 }.exit_code(),
            EXIT_TIMEOUT
        );
        assert_eq!(
            CliError::Node(moss::NodeError::Stopped).exit_code(),
            EXIT_FAILURE
        );
        let bad = moss::Config::from_json(r#"{"listen_port": "x"}"#).unwrap_err();
        assert_eq!(
            CliError::Start(moss::StartError::Config(bad)).exit_code(),
            EXIT_USAGE
        );
        assert_ne!(EXIT_OK, EXIT_FAILURE);
    }
}
