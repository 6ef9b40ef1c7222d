//! What a node costs on a [`moss::SharedEngine`] against one with its own
//! engine thread, counted in `/proc/self`: threads and file descriptors.
//! (VmRSS is not compared: memory freed by one kind stays resident and
//! serves the next.) Alone in its file, so no other test of the
//! process starts threads or opens files meanwhile.
#![cfg(target_os = "linux")]

mod common;

use moss::{Node, SharedEngine};

/// Nodes started per kind.
const NODES: usize = 10;

/// (threads, fds) of this process.
fn usage() -> (usize, usize) {
    let count = |d| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    (count("/proc/self/task"), count("/proc/self/fd"))
}

fn start(mesh: &str, engine: Option<&SharedEngine>) -> Node {
    let mut c = common::cfg("", None);
    // Only the engine's own cost: no TCP carrier beside the own-thread nodes.
    c.transport.tcp_enabled = false;
    // The gateway's on-demand queues.
    let mut b = Node::builder(mesh)
        .config(c)
        .bind("127.0.0.1:0".parse().unwrap())
        .queue_capacity(1024, 1024);
    if let Some(e) = engine {
        b = b.shared_engine(e);
    }
    b.start().unwrap()
}

#[test]
fn a_node_on_a_shared_engine_adds_no_thread_and_one_fd() {
    let base = usage();
    let own: Vec<Node> = (0..NODES)
        .map(|i| start(&format!("own-{i}"), None))
        .collect();
    let with_own = usage();
    drop(own);
    // A joined thread can linger in /proc for a moment (as can io_uring's
    // workers): wait, bounded.
    assert!(
        common::wait_for(|| usage().0 == base.0),
        "own engine threads all exited"
    );
    let after_own = usage();
    assert_eq!(after_own.1, base.1, "own engine fds all closed");

    let engine = SharedEngine::start().unwrap();
    let empty = usage();
    assert_eq!(empty.0, base.0 + 1, "the shared engine is one thread");
    assert_eq!(empty.1, base.1 + 2, "its poll set and waker");
    let shared: Vec<Node> = (0..NODES)
        .map(|i| start(&format!("shared-{i}"), Some(&engine)))
        .collect();
    let with_shared = usage();
    eprintln!(
        "{NODES} nodes: own engines +{} threads +{} fds; shared engine +{} threads +{} fds (engine included)",
        with_own.0 - base.0,
        with_own.1 - base.1,
        with_shared.0 - base.0,
        with_shared.1 - base.1,
    );
    // At least: io_uring may add workers of its own.
    assert!(
        with_own.0 - base.0 >= NODES,
        "an engine thread per own node"
    );
    assert_eq!(with_shared.0, empty.0, "nodes on the engine add no thread");
    assert_eq!(with_shared.1, empty.1 + NODES, "one socket per node");
    drop(shared);
    assert_eq!(engine.node_count(), 0);
    assert_eq!(usage().1, empty.1, "stopped nodes closed their sockets");
    drop(engine);
    assert!(
        common::wait_for(|| usage().0 == base.0),
        "the engine thread exited"
    );
    assert_eq!(usage().1, base.1, "the engine's fds closed");
}
