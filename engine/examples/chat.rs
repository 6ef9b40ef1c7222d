//! A terminal chat on the blocking API: every stdin line goes to topic
//! `chat`, every message of it is printed.
//!
//! ```sh
//! # terminal 1 (offline: no trackers, DHT or LAN beacons)
//! cargo run -p moss --example chat -- demo 41001
//! # terminal 2: dial the first
//! cargo run -p moss --example chat -- demo 0 127.0.0.1:41001
//! ```

mod common;

use std::io::BufRead;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some((node, peer)) = common::start("chat")? else {
        return Ok(());
    };
    if let Some(peer) = peer {
        let id = node.connect_wait(&peer, Duration::from_secs(10))?;
        println!("connected to {}", moss::short_id(&id));
    }
    let chat = node.subscribe("chat")?;
    std::thread::spawn(move || {
        for m in chat {
            common::show(&m);
        }
    });
    for line in std::io::stdin().lock().lines() {
        match node.publish("chat", line?.as_bytes()) {
            Ok(()) => {}
            Err(moss::NodeError::NoPeers) => eprintln!("(nobody connected yet)"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
