//! The terminal chat on the async API, under tokio: one task, no thread per
//! subscription. `moss` itself needs no runtime; tokio is this example's choice.
//!
//! ```sh
//! cargo run -p moss --example async_chat -- demo 41001
//! cargo run -p moss --example async_chat -- demo 0 127.0.0.1:41001
//! ```

mod common;

use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some((node, peer)) = common::start("async_chat")? else {
        return Ok(());
    };
    if let Some(peer) = peer {
        let id = node.connect_async(&peer, Duration::from_secs(10)).await?;
        println!("connected to {}", moss::short_id(&id));
    }
    let mut chat = node.subscribe("chat")?.into_stream();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            msg = chat.next() => match msg {
                Some(m) => common::show(&m),
                None => break,
            },
            line = lines.next_line() => match line? {
                Some(text) => match node.publish_async("chat", text.as_bytes()).await {
                    Ok(()) => {}
                    Err(moss::NodeError::NoPeers) => eprintln!("(nobody connected yet)"),
                    Err(e) => return Err(e.into()),
                },
                None => break,
            },
        }
    }
    Ok(())
}
