//! The async API on real loopback nodes: streams, publish under
//! back-pressure, connect, dropping a stream, a node stopping under a
//! waiting stream; on a bare executor and on tokio.

mod common;

use futures_core::Stream;
use moss::{Message, Node, NodeError, SubscriptionStream};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// A bare executor: polls on the calling thread, parks between wakes, and
/// counts how often the future was pending.
fn block_on<F: Future>(f: F) -> (F::Output, usize) {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    let mut pending = 0;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return (v, pending);
        }
        pending += 1;
        std::thread::park();
    }
}

async fn next(s: &mut SubscriptionStream) -> Option<Message> {
    std::future::poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

fn addr_of(n: &Node) -> String {
    format!("127.0.0.1:{}", n.local_addr().port())
}

/// Two connected offline nodes; `bob` knows `alice` is subscribed to `topic`.
fn pair(topic: &str) -> (Node, Node, SubscriptionStream) {
    let alice = common::node("async", "portable", Some(1));
    let bob = common::node("async", "portable", Some(1));
    let stream = alice.subscribe(topic).unwrap().into_stream();
    let (peer, _) = block_on(bob.connect_async(&addr_of(&alice), WAIT));
    assert_eq!(peer.unwrap(), alice.public_key());
    let (sub, _) = block_on(bob.wait_for_subscriber_async(topic, WAIT));
    assert_eq!(sub.unwrap(), alice.public_key());
    (alice, bob, stream)
}

#[test]
fn a_stream_yields_what_async_publish_sends() {
    let (_alice, bob, mut stream) = pair("chat");
    let (got, _) = block_on(async {
        for i in 0..20u8 {
            bob.publish_async("chat", &[i]).await.unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 20 {
            match next(&mut stream).await {
                Some(m) => got.push(m.data()[0]),
                None => break,
            }
        }
        got
    });
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..20).collect::<Vec<u8>>());
}

#[test]
fn async_publish_waits_on_back_pressure_instead_of_failing() {
    // More publishes than the engine's command queue holds, as fast as the
    // host can go: the blocking call would report `Busy` when the queue is
    // full; the future waits for room, so every one succeeds.
    const N: u64 = 80_000;
    let (_alice, bob, _stream) = pair("load");
    let (result, pending) = block_on(async {
        for i in 0..N {
            bob.publish_async("load", &i.to_le_bytes()).await?;
        }
        Ok::<(), NodeError>(())
    });
    result.unwrap();
    println!("{N} publishes, {pending} waits for queue room");
    // Every accepted publish is run by the engine (bounded wait, generous
    // for a loaded machine: the engine works off a full queue first).
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut published = 0;
    while published < N && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        published = bob.stats().map_or(0, |s| s.counters.messages_published);
    }
    assert_eq!(published, N);
}

#[test]
fn async_publish_returns_other_errors_at_once() {
    let lonely = common::node("async", "portable", Some(1));
    let (r, _) = block_on(lonely.publish_async("chat", b"x"));
    assert_eq!(r, Err(NodeError::NoPeers));
    let (r, _) = block_on(lonely.publish_async("", b"x"));
    assert_eq!(r, Err(NodeError::InvalidTopic));
}

#[test]
fn dropping_a_waiting_stream_unsubscribes() {
    let (alice, bob, mut stream) = pair("gone");
    // Poll once so the waker thread is watching the stream's channel.
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
    assert!(alice.stats().unwrap().topics.contains(&"gone".to_string()));
    drop(stream);
    // The engine unsubscribes when it next routes a message of the topic and
    // finds no receiver left.
    assert!(common::wait_for(|| {
        let _ = bob.publish("gone", b"anyone?");
        !alice.stats().unwrap().topics.contains(&"gone".to_string())
    }));
}

struct NoWake;
impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn a_waiting_stream_ends_when_the_node_stops() {
    let mut alice = common::node("async", "portable", Some(1));
    let mut stream = alice.subscribe("chat").unwrap().into_stream();
    let woken = Arc::new(AtomicUsize::new(0));
    let w = woken.clone();
    let waiter = std::thread::spawn(move || {
        let (m, pending) = block_on(next(&mut stream));
        w.store(pending, Ordering::SeqCst);
        m.is_none()
    });
    // Stop while the stream waits (or before it first polls: it ends either way).
    std::thread::sleep(Duration::from_millis(50));
    alice.stop();
    assert!(waiter.join().unwrap(), "the stream ended with None");
}

#[test]
fn async_connect_to_nobody_fails_or_times_out() {
    let a = common::node("async", "portable", Some(1));
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let (r, _) = block_on(a.connect_async(&addr, Duration::from_millis(500)));
    assert!(matches!(
        r,
        Err(NodeError::Timeout | NodeError::ConnectFailed(_))
    ));
    let (r, _) = block_on(a.connect_async("not an address", WAIT));
    assert!(matches!(r, Err(NodeError::BadAddress(_))));
    let (r, _) = block_on(a.wait_for_subscriber_async("chat", Duration::from_millis(100)));
    assert_eq!(r, Err(NodeError::Timeout));
}

#[test]
fn the_async_api_runs_on_tokio() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let (_alice, bob, mut stream) = pair("tokio");
    let got = rt.block_on(async {
        bob.publish_async("tokio", b"hello").await.unwrap();
        tokio::time::timeout(WAIT, next(&mut stream)).await
    });
    assert_eq!(got.unwrap().unwrap().data(), b"hello");
}

#[test]
fn a_stream_nobody_reads_keeps_the_oldest_and_counts_the_rest() {
    // More messages than a subscription queue holds (16,384), to a stream
    // that is never polled: the queue keeps the first ones, every later one
    // is counted in `messages_dropped`, nothing blocks the engine, and the
    // stream then yields exactly what it kept.
    const QUEUE: u64 = 16_384;
    const N: u64 = QUEUE + 2_000;
    let mut c = common::cfg("portable", Some(1));
    // Inbound gossip must not be throttled for this test.
    c.security.rate_limit_burst = u32::MAX;
    c.security.rate_limit_sustained = u32::MAX;
    let start = |c: &moss::Config| {
        Node::builder("overflow")
            .config(c.clone())
            .bind("127.0.0.1:0".parse().unwrap())
            .start()
            .unwrap()
    };
    let (alice, bob) = (start(&c), start(&c));
    let mut stream = alice.subscribe("flood").unwrap().into_stream();
    let (peer, _) = block_on(bob.connect_async(&addr_of(&alice), WAIT));
    assert_eq!(peer.unwrap(), alice.public_key());
    let (sub, _) = block_on(bob.wait_for_subscriber_async("flood", WAIT));
    sub.unwrap();
    let (r, _) = block_on(async {
        for i in 0..N {
            bob.publish_async("flood", &i.to_le_bytes()).await?;
        }
        Ok::<(), NodeError>(())
    });
    r.unwrap();
    // Wait (bounded) until alice's node has handed over everything it got:
    // delivered = kept in the queue + dropped.
    let settled = || {
        let s = alice.stats().unwrap();
        (s.counters.messages_delivered, s.messages_dropped)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut last = settled();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = settled();
        if (now == last && now.0 > QUEUE) || std::time::Instant::now() > deadline {
            last = now;
            break;
        }
        last = now;
    }
    let (delivered, dropped) = last;
    assert!(
        delivered > QUEUE,
        "only {delivered} of {N} arrived: no overflow to test"
    );
    assert_eq!(
        dropped,
        delivered - QUEUE,
        "every message past the queue is counted"
    );
    // The stream yields exactly the kept messages, then waits.
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    let mut kept = 0u64;
    while let Poll::Ready(Some(m)) = Pin::new(&mut stream).poll_next(&mut cx) {
        assert_eq!(m.topic(), "flood");
        kept += 1;
    }
    assert_eq!(kept, QUEUE);
    // The node is unharmed: a new message still arrives.
    let _ = bob.publish("flood", b"after");
    let (m, _) = block_on(next(&mut stream));
    assert_eq!(&*m.unwrap().data, b"after");
}
