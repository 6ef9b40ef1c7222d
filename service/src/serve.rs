//! The HTTP accept loop with bounds:
//! - at most `max_connections` connections at once;
//! - at the cap, a new client evicts the oldest connection that has not yet
//!   sent one complete request head (a slow-loris or idle-from-connect
//!   client); when every connection has been served a request, new clients
//!   wait in the kernel's backlog, costing this process no descriptor;
//! - a header-read timeout that runs whenever the server waits for a request
//!   head, on a new connection and between keep-alive requests alike, so it
//!   is also the idle timeout. A long response (server-sent events) is not
//!   waiting for a head and is not cut.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;

/// Bounds of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Longest wait for a complete request head (also the keep-alive idle timeout).
    pub header_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Open connections, oldest first: whether each has had a request, and how
/// to stop it.
#[derive(Default)]
struct Open {
    next: u64,
    conns: BTreeMap<u64, (Arc<AtomicBool>, AbortHandle)>,
}

type Registry = Arc<Mutex<Open>>;

fn lock(r: &Registry) -> std::sync::MutexGuard<'_, Open> {
    r.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stops the oldest connection that has not had a request; false if none.
/// The victim leaves the registry at once, so that the next eviction never
/// picks it again while its task is still being torn down.
fn evict_one(r: &Registry) -> bool {
    let mut open = lock(r);
    let victim = open
        .conns
        .iter()
        .find(|(_, (served, _))| !served.load(Ordering::Relaxed))
        .map(|(id, _)| *id);
    match victim.and_then(|id| open.conns.remove(&id)) {
        Some((_, abort)) => {
            abort.abort();
            true
        }
        None => false,
    }
}

/// Removes a connection from the registry when its task ends or is aborted.
struct Deregister(Registry, u64);

impl Drop for Deregister {
    fn drop(&mut self) {
        lock(&self.0).conns.remove(&self.1);
    }
}

/// Serves `app` on `listener` until `shutdown` resolves. Connections still
/// open then are dropped with the runtime.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let open: Registry = Arc::default();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => r,
            _ = &mut shutdown => return,
        };
        let stream = match stream {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => Ok(s),
            Err(_) => {
                // At the cap: make room by evicting a connection that never
                // sent a request, else wait for one to finish.
                evict_one(&open);
                tokio::select! {
                    s = slots.clone().acquire_owned() => s,
                    _ = &mut shutdown => return,
                }
            }
        };
        let Ok(slot) = slot else { return };
        let served = Arc::new(AtomicBool::new(false));
        let flag = served.clone();
        let svc = TowerToHyperService::new(app.clone());
        let svc = hyper::service::service_fn(move |req| {
            flag.store(true, Ordering::Relaxed);
            hyper::service::Service::call(&svc, req)
        });
        // Registered before the task can run, so its guard always finds it.
        let mut reg = lock(&open);
        let id = reg.next;
        reg.next += 1;
        let guard = Deregister(open.clone(), id);
        let task = tokio::spawn(async move {
            let _slot = slot;
            let _guard = guard;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!("http connection: {e}");
            }
        });
        reg.conns.insert(id, (served, task.abort_handle()));
        drop(reg);
    }
}

/// Resolves on SIGINT, or SIGTERM on Unix.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}
