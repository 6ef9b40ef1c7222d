//! `moss pub`: send one message, or one per stdin line, once a peer
//! subscribed to the topic is connected.

use crate::error::CliError;
use moss::{Node, NodeError};
use std::io::BufRead;
use std::time::{Duration, Instant};

/// How often the wait loops look again.
const POLL: Duration = Duration::from_millis(50);
/// Longest wait for the engine to take the last publishes before stopping.
const FLUSH_WAIT: Duration = Duration::from_secs(5);

/// Waits up to `wait` for a connected peer subscribed to `topic`; returns
/// its peer id (hex).
pub fn wait_for_subscriber(node: &Node, topic: &str, wait: Duration) -> Result<String, CliError> {
    match node.wait_for_subscriber(topic, wait) {
        Ok(peer) => Ok(peer.to_hex()),
        Err(NodeError::Timeout) => {
            let peers = node.peer_count();
            Err(CliError::NoPeer(if peers == 0 {
                format!("no peer connected within {}s", wait.as_secs_f32())
            } else {
                format!(
                    "{peers} peer(s) connected, none subscribed to `{topic}` within {}s",
                    wait.as_secs_f32()
                )
            }))
        }
        Err(e) => Err(e.into()),
    }
}

/// Publishes `data`, retrying while the engine's queue is full.
fn publish(node: &Node, topic: &str, data: &[u8]) -> Result<(), CliError> {
    loop {
        match node.publish(topic, data) {
            Err(NodeError::Busy) => std::thread::sleep(POLL),
            r => return r.map_err(CliError::from),
        }
    }
}

/// Waits (bounded) until the engine has sent `n` more messages than
/// `before`, so stopping the node does not cut them off.
fn wait_published(node: &Node, before: u64, n: u64) -> Result<(), CliError> {
    let deadline = Instant::now() + FLUSH_WAIT;
    while node.stats()?.counters.messages_published < before + n {
        if Instant::now() >= deadline {
            tracing::warn!("the engine did not confirm every publish before stopping");
            break;
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Sends `message`, or every stdin line when `None`; returns how many.
pub fn run(
    node: &Node,
    topic: &str,
    message: Option<&str>,
    wait: Duration,
) -> Result<u64, CliError> {
    let peer = wait_for_subscriber(node, topic, wait)?;
    tracing::info!(topic, subscriber = %&peer[..8.min(peer.len())], "subscriber connected; publishing");
    let before = node.stats()?.counters.messages_published;
    let mut sent = 0u64;
    match message {
        Some(m) => {
            publish(node, topic, m.as_bytes())?;
            sent += 1;
        }
        None => {
            for line in std::io::stdin().lock().lines() {
                let line = line.map_err(|source| CliError::File {
                    path: "stdin".into(),
                    source,
                })?;
                publish(node, topic, line.as_bytes())?;
                sent += 1;
            }
        }
    }
    wait_published(node, before, sent)?;
    tracing::info!(topic, messages = sent, "published");
    Ok(sent)
}
