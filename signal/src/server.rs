//! The thin axum driver around the [`Hub`]: `/signal` upgrades to a
//! WebSocket and feeds the hub, `/healthz` and `/metrics` report. Each peer
//! has a bounded outbound queue; copies that do not fit are dropped and counted.

use crate::close::Reject;
use crate::hub::{ConnId, Hub, Send};
use crate::limits::Limits;
use crate::metrics::{self, Snapshot};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::mpsc;

/// Transport bound on one WebSocket message: larger ones fail in the
/// WebSocket layer (closed with 1009) before they are buffered whole.
fn transport_cap(l: &Limits) -> usize {
    l.max_envelope.saturating_mul(2).max(4096)
}

struct Inner {
    hub: Hub,
    outs: HashMap<ConnId, mpsc::Sender<Utf8Bytes>>,
    connections: usize,
    queue_dropped: u64,
}

impl Inner {
    fn deliver(&mut self, sends: Vec<Send>) {
        for s in sends {
            let text = Utf8Bytes::from(s.text);
            for to in s.to {
                if let Some(out) = self.outs.get(&to) {
                    if out.try_send(text.clone()).is_err() {
                        self.queue_dropped += 1;
                    }
                }
            }
        }
    }
}

/// Shared server state.
pub struct Signal {
    limits: Limits,
    inner: Mutex<Inner>,
}

impl Signal {
    /// A server enforcing `limits`.
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                hub: Hub::new(limits.clone()),
                outs: HashMap::new(),
                connections: 0,
                queue_dropped: 0,
            }),
            limits,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The hub's maps stay consistent across a panic elsewhere.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The figures `/metrics` shows.
    pub fn snapshot(&self) -> Snapshot {
        let st = self.lock();
        Snapshot {
            connections: st.connections,
            rooms: st.hub.rooms(),
            peers: st.hub.peers(),
            counters: st.hub.counters().clone(),
            queue_dropped: st.queue_dropped,
            limits: self.limits.clone(),
        }
    }
}

/// The `/signal` query.
#[derive(Debug, Deserialize)]
pub struct Join {
    /// The room: clients send the mesh's infohash in hex.
    pub room: Option<String>,
    /// The peer's id within the room.
    pub id: Option<String>,
}

/// The router: `/signal`, `/healthz`, `/metrics`.
pub fn router(signal: Arc<Signal>) -> Router {
    router_with_demo(signal, None)
}

/// [`router`], also serving the browser demo's files from `demo`
/// (`-demo DIR`, [`crate::demo`]) on every other path.
pub fn router_with_demo(signal: Arc<Signal>, demo: Option<std::path::PathBuf>) -> Router {
    let r = Router::new()
        .route("/signal", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_page));
    let r = match demo {
        Some(dir) => r.fallback(move |uri: axum::http::Uri| crate::demo::serve(dir.clone(), uri)),
        None => r.fallback(|| async { (StatusCode::NOT_FOUND, "no such endpoint\n") }),
    };
    r.with_state(signal)
}

async fn metrics_page(State(s): State<Arc<Signal>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&s.snapshot()),
    )
        .into_response()
}

async fn upgrade(
    State(s): State<Arc<Signal>>,
    q: Result<Query<Join>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Response {
    let cap = transport_cap(&s.limits);
    let (room, id) = match q {
        Ok(Query(j)) => (j.room.unwrap_or_default(), j.id.unwrap_or_default()),
        Err(_) => (String::new(), String::new()),
    };
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| session(s, socket, room, id))
}

async fn close(socket: &mut WebSocket, r: Reject) {
    let frame = CloseFrame {
        code: r.code(),
        reason: Utf8Bytes::from(r.to_string()),
    };
    if socket.send(Message::Close(Some(frame))).await.is_err() {
        return;
    }
    // Let the client read the frame and answer it (the closing handshake),
    // but never wait on it for long.
    let drain = async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
}

/// Longest wait for a client's answer to our close frame.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Maps a WebSocket-layer read error to a close cause, if the peer is
/// still there to be told.
fn read_error(e: axum::Error) -> Option<Reject> {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => Some(Reject::Oversize),
        tungstenite::Error::Protocol(_) | tungstenite::Error::Utf8(_) => Some(Reject::Protocol),
        _ => None,
    }
}

async fn session(s: Arc<Signal>, mut socket: WebSocket, room: String, id: String) {
    let (tx, mut rx) = mpsc::channel(s.limits.queue);
    let joined = {
        let mut st = s.lock();
        st.connections += 1;
        match st.hub.join(Instant::now(), &room, &id) {
            Ok(j) => {
                st.outs.insert(j.conn, tx);
                st.deliver(j.sends);
                Ok(j.conn)
            }
            Err(r) => Err(r),
        }
    };
    let conn = match joined {
        Ok(c) => c,
        Err(r) => {
            close(&mut socket, r).await;
            s.lock().connections -= 1;
            return;
        }
    };
    let idle = s.limits.idle;
    let mut ping = tokio::time::interval((idle / 3).max(std::time::Duration::from_millis(10)));
    ping.tick().await;
    let mut heard = Instant::now();
    let cause = loop {
        tokio::select! {
            msg = socket.recv() => {
                heard = Instant::now();
                match msg {
                    None | Some(Ok(Message::Close(_))) => break None,
                    Some(Err(e)) => {
                        let r = read_error(e);
                        if let Some(r) = r {
                            s.lock().hub.count_reject(r);
                        }
                        break r;
                    }
                    Some(Ok(Message::Binary(_))) => {
                        s.lock().hub.count_reject(Reject::Binary);
                        break Some(Reject::Binary);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Text(t))) => {
                        let mut st = s.lock();
                        match st.hub.route(heard, conn, t.as_str()) {
                            Ok(sends) => st.deliver(sends),
                            Err(r) => break Some(r),
                        }
                    }
                }
            }
            out = rx.recv() => match out {
                Some(text) => if socket.send(Message::Text(text)).await.is_err() { break None },
                None => break None,
            },
            _ = ping.tick() => {
                if heard.elapsed() >= idle {
                    s.lock().hub.count_reject(Reject::Idle);
                    break Some(Reject::Idle);
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break None;
                }
            }
        }
    };
    // Leave the room first: nothing is routed to a peer being closed.
    {
        let mut st = s.lock();
        st.outs.remove(&conn);
        let sends = st.hub.leave(conn);
        st.deliver(sends);
    }
    if let Some(r) = cause {
        close(&mut socket, r).await;
    }
    s.lock().connections -= 1;
}
