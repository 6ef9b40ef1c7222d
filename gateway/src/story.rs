//! The gateway's log of each served mesh: a thread per node turns its
//! events and discovery stats into `info` lines ([`moss::Story`]).

use crate::meshes::Served;
use crossbeam_channel::RecvTimeoutError;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often the discovery stats and NAT class are read.
const POLL_EVERY: Duration = Duration::from_secs(2);

/// Starts logging the story of `served`'s node. The thread holds the node
/// only for the moment of a stats read, so it never keeps a stopped mesh
/// alive; it ends when the node's event channel closes.
pub fn follow(mesh: &str, served: &Arc<Served>) {
    let weak: Weak<Served> = Arc::downgrade(served);
    let events = served.node.events().clone();
    let log = served.events.clone();
    let mut story = moss::Story::new(mesh);
    let spawned = std::thread::Builder::new()
        .name("moss-story".into())
        .spawn(move || {
            let mut next_poll = Instant::now();
            loop {
                match events.recv_deadline(next_poll) {
                    Ok(e) => {
                        log.push(&e);
                        story.event(&e)
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        next_poll = Instant::now() + POLL_EVERY;
                        let Some(s) = weak.upgrade() else { break };
                        if let Some(d) = s.node.discovery_stats() {
                            story.discovery(&d);
                        }
                        if let Ok(info) = s.node.mesh_info() {
                            story.nat(&info.nat_type);
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            story.shutdown();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the log thread");
    }
}
