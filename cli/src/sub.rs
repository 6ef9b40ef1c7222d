//! `moss sub`: print a topic's messages as they arrive.

use crate::error::CliError;
use moss::{Message, Node};
use serde::Serialize;
use std::io::Write;
use std::time::{Duration, Instant};

/// Longest wait for a message before looking at the interrupt flag.
const ROUND: Duration = Duration::from_millis(200);

/// One `--json` output line.
#[derive(Debug, Serialize)]
pub struct JsonLine<'a> {
    /// The topic.
    pub topic: &'a str,
    /// Publisher's peer id, hex.
    pub from: String,
    /// Message id, hex.
    pub id: String,
    /// The payload as text when it is UTF-8.
    pub text: Option<&'a str>,
    /// The payload, hex.
    pub data_hex: String,
}

/// Writes one message: the raw payload plus a newline (unless it ends in
/// one), or a JSON line.
pub fn write_message(out: &mut impl Write, m: &Message, json: bool) -> std::io::Result<()> {
    if json {
        let line = JsonLine {
            topic: m.topic(),
            from: m.from.to_hex(),
            id: hex::encode(m.id),
            text: std::str::from_utf8(m.data()).ok(),
            data_hex: hex::encode(m.data()),
        };
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(m.data())?;
        if !m.data().ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

/// Subscribes to `topic` and prints messages until `count` have arrived
/// (forever when `None`), `timeout` runs out, or Ctrl-C (a clean stop).
pub fn run(
    node: &Node,
    topic: &str,
    json: bool,
    count: Option<u64>,
    timeout: Option<Duration>,
) -> Result<(), CliError> {
    crate::interrupt::catch();
    let sub = node.subscribe(topic)?;
    tracing::info!(topic, "subscribed; waiting for messages");
    let deadline = timeout.map(|t| Instant::now() + t);
    let stdout = std::io::stdout();
    let mut got = 0u64;
    while count.is_none_or(|c| got < c) {
        if crate::interrupt::interrupted() {
            tracing::info!("interrupted");
            return Ok(());
        }
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(w) => w.min(ROUND),
                None => break,
            },
            None => ROUND,
        };
        if let Some(m) = sub.recv_timeout(wait) {
            got += 1;
            let mut out = stdout.lock();
            if let Err(e) = write_message(&mut out, &m, json) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(CliError::Output(e));
            }
        } else if node.is_stopped() {
            return Err(CliError::Node(moss::NodeError::Stopped));
        }
    }
    match count {
        Some(want) if got < want => Err(CliError::Timeout { got, want }),
        _ => Ok(()),
    }
}
