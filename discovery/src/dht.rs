//! Mainline DHT (BEP 5) through the `mainline` crate: periodic `get_peers` and
//! `announce_peer` on the infohash, on the DHT's own UDP socket.

use std::net::{SocketAddr, UdpSocket};
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use futures_lite::StreamExt;
use mainline::{Dht, Id};

use crate::clock::later;
use crate::runner::{DhtConfig, Source};
use crate::sink::Shared;
use crate::stats::DhtState;

fn set_error(shared: &Shared, state: Option<DhtState>, error: String) {
    if let Some(dht) = shared.stats().dht.as_mut() {
        if let Some(state) = state {
            dht.state = state;
        }
        dht.last_error = Some(error);
    }
}

/// Runs until the runner stops: lookup, announce, sleep one interval.
pub(crate) fn run(shared: &Shared, cfg: &DhtConfig, infohash: [u8; 20], interval: Duration) {
    let id = match Id::from_bytes(infohash) {
        Ok(id) => id,
        Err(e) => return set_error(shared, Some(DhtState::Failed), e.to_string()),
    };
    let mut builder = Dht::builder();
    if !cfg.bootstrap.is_empty() {
        builder.bootstrap(&cfg.bootstrap);
    }
    if cfg.port != 0 {
        builder.port(cfg.port);
    }
    builder.bind_address(cfg.bind);
    builder.request_timeout(cfg.request_timeout);
    // mainline 8.0.1 panics inside `Dht::new` (instead of returning the error)
    // when its socket cannot be bound, so probe the address first for a clear
    // error, and contain a panic from a lost race as a failure too.
    if cfg.port != 0 {
        if let Err(e) = UdpSocket::bind((cfg.bind, cfg.port)) {
            return set_error(
                shared,
                Some(DhtState::Failed),
                format!("dht bind {}:{}: {e}", cfg.bind, cfg.port),
            );
        }
    }
    let built = std::panic::catch_unwind(AssertUnwindSafe(|| builder.build()));
    let dht = match built {
        Ok(Ok(dht)) => dht.as_async(),
        Ok(Err(e)) => {
            return set_error(shared, Some(DhtState::Failed), format!("dht start: {e}"));
        }
        Err(_) => {
            return set_error(
                shared,
                Some(DhtState::Failed),
                "dht start: the mainline actor failed to start".into(),
            );
        }
    };
    let info = block_on(dht.info());
    if let Some(stats) = shared.stats().dht.as_mut() {
        stats.local_port = Some(info.local_addr().port());
        stats.state = DhtState::Running;
    }
    let mut next = Instant::now();
    loop {
        if !shared.sleep_until(next) {
            return;
        }
        next = later(Instant::now(), interval);
        if let Some(stats) = shared.stats().dht.as_mut() {
            stats.lookups += 1;
        }
        let mut found: Vec<SocketAddr> = Vec::new();
        block_on(async {
            let mut stream = dht.get_peers(id);
            while let Some(batch) = stream.next().await {
                found.extend(batch.into_iter().map(SocketAddr::V4));
                if shared.stopping() || found.len() >= 1024 {
                    break;
                }
            }
        });
        if let Some(stats) = shared.stats().dht.as_mut() {
            stats.peers_found += found.len() as u64;
        }
        for addr in found {
            shared.offer(addr, Source::Dht);
        }
        if shared.stopping() {
            return;
        }
        match block_on(dht.announce_peer(id, Some(shared.port()))) {
            Ok(_) => {
                if let Some(stats) = shared.stats().dht.as_mut() {
                    stats.announces_ok += 1;
                }
            }
            Err(e) => {
                if let Some(stats) = shared.stats().dht.as_mut() {
                    stats.announce_failures += 1;
                    stats.last_error = Some(format!("announce_peer: {e}"));
                }
            }
        }
    }
}
