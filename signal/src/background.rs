//! A `moss-signal` server on its own thread and runtime: for tests,
//! benchmarks and hosts that embed one beside their nodes. It stops when
//! dropped.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use crate::limits::Limits;

/// A running background signal server; dropping it stops the server and
/// joins its thread.
pub struct Background {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Binds `bind` (port 0 for an ephemeral one) and serves with `limits`
    /// on a new thread; returns once the listener is bound.
    pub fn start(bind: SocketAddr, limits: Limits) -> std::io::Result<Self> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("moss-signal".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind(bind).await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = addr_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = addr_tx.send(listener.local_addr());
                    let app = crate::server::router(crate::server::Signal::new(limits));
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    crate::serve::serve(listener, app, Default::default(), shutdown).await;
                });
            })?;
        let addr = addr_rx
            .recv()
            .map_err(|_| std::io::Error::other("the signal server thread ended"))??;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
