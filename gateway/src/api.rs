//! The read-only HTTP API: `/api/stats` (the telemetry snapshot plus node
//! counts), `/api/chain`, `/api/events` (SSE), `/api/messages`, `/metrics`,
//! and the explorer page at `/explorer/`. Every API route takes `?meshid=`;
//! every answer carries CORS and private-network-access headers so an https
//! explorer can read a gateway on localhost.

use crate::meshes::{MeshError, Meshes, Served};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Seconds between SSE pushes.
pub const SSE_PERIOD: Duration = Duration::from_secs(2);

/// Query parameters every route understands.
#[derive(Debug, Deserialize, Default)]
pub struct Params {
    /// Which mesh to read (default: the gateway's primary mesh).
    pub meshid: Option<String>,
    /// `/api/messages`: the topic.
    pub topic: Option<String>,
    /// `/api/chain`: how many of the newest links.
    pub limit: Option<String>,
}

fn api_error(status: StatusCode, msg: String) -> Response {
    (status, Json(serde_json::json!({ "error": msg }))).into_response()
}

fn mesh_error(e: MeshError) -> Response {
    let status = match e {
        MeshError::InvalidId => StatusCode::BAD_REQUEST,
        MeshError::Limit(_) => StatusCode::SERVICE_UNAVAILABLE,
        MeshError::Start(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    api_error(status, e.to_string())
}

async fn served(meshes: &Arc<Meshes>, p: &Params) -> Result<Arc<Served>, Response> {
    let m = meshes.clone();
    let id = p.meshid.clone();
    tokio::task::spawn_blocking(move || m.get(id.as_deref()))
        .await
        .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(mesh_error)
}

/// Builds the stats document of one mesh. Node facts are counts only,
/// never peer addresses or ids.
pub fn stats_document(s: &Served) -> Result<serde_json::Value, String> {
    let st = s.node.stats().map_err(|e| e.to_string())?;
    let summary = serde_json::json!({
        "mesh_id": st.mesh_id,
        "public_key": s.node.public_key().to_hex(),
        "backend": st.backend,
        "uptime_sec": st.uptime_sec,
        "peer_count": st.peer_count,
        "peers": st.peers,
        "sessions": st.sessions,
        "topics": st.topics,
        "nat_type": st.nat_type,
        "counters": st.counters,
        "send_dropped": st.send_dropped,
        "send_drops": st.send_drops,
        "events_dropped": st.events_dropped,
        "messages_dropped": st.messages_dropped,
        "discovery": s.node.discovery_stats(),
        "tcp": s.node.tcp_stats(),
        "spray": st.spray,
    });
    let mut doc = match serde_json::to_value(&st_network(s)?) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    doc.insert("node".into(), summary);
    Ok(serde_json::Value::Object(doc))
}

fn st_network(s: &Served) -> Result<moss::NetworkSnapshot, String> {
    s.node.network_stats().map_err(|e| e.to_string())
}

/// Default and largest `?limit=` of `/api/chain`.
pub const CHAIN_LIMIT: (usize, usize) = (64, 1024);

async fn chain(State(meshes): State<Arc<Meshes>>, Query(p): Query<Params>) -> Response {
    let limit = match p.limit.as_deref() {
        None => CHAIN_LIMIT.0,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n.min(CHAIN_LIMIT.1),
            _ => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    format!("limit `{v}` is not a positive integer"),
                )
            }
        },
    };
    let s = match served(&meshes, &p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match tokio::task::spawn_blocking(move || s.node.chain(limit)).await {
        Ok(Ok(links)) => Json(links).into_response(),
        Ok(Err(e)) => api_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn stats(State(meshes): State<Arc<Meshes>>, Query(p): Query<Params>) -> Response {
    let s = match served(&meshes, &p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match tokio::task::spawn_blocking(move || stats_document(&s)).await {
        Ok(Ok(doc)) => Json(doc).into_response(),
        Ok(Err(e)) => api_error(StatusCode::SERVICE_UNAVAILABLE, e),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn messages(State(meshes): State<Arc<Meshes>>, Query(p): Query<Params>) -> Response {
    let s = match served(&meshes, &p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match p.topic.as_deref() {
        None => Json(serde_json::json!({ "topics": s.inbox.topics() })).into_response(),
        Some(t) => match s.inbox.topic(t) {
            Some(list) => Json(list).into_response(),
            None => api_error(
                StatusCode::NOT_FOUND,
                format!("topic `{t}` is not subscribed (start the gateway with -subscribe {t})"),
            ),
        },
    }
}

async fn events(State(meshes): State<Arc<Meshes>>, Query(p): Query<Params>) -> Response {
    let s = match served(&meshes, &p).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Each period: the node's events since the last one (`event: node`,
    // data `{seq, id, detail}`: 3 supernode promoted, 4 revoked, 7 relay
    // migrated, …), then the stats document (`event: stats`).
    let stream = futures_util::stream::unfold((s, true, 0u64), |(s, first, seen)| async move {
        if !first {
            tokio::time::sleep(SSE_PERIOD).await;
        }
        let s2 = s.clone();
        let doc = tokio::task::spawn_blocking(move || stats_document(&s2)).await;
        let data = match doc {
            Ok(Ok(d)) => d.to_string(),
            _ => "{}".to_string(),
        };
        let fresh = s.events.since(seen);
        let seen = fresh.last().map_or(seen, |e| e.seq);
        let mut out: Vec<Result<SseEvent, Infallible>> = fresh
            .iter()
            .map(|e| {
                let d = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
                Ok(SseEvent::default().event("node").data(d))
            })
            .collect();
        out.push(Ok(SseEvent::default().event("stats").data(data)));
        Some((futures_util::stream::iter(out), (s, false, seen)))
    });
    let stream = futures_util::StreamExt::flatten(stream);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn metrics(State(meshes): State<Arc<Meshes>>) -> Response {
    let all = meshes.all();
    let text = tokio::task::spawn_blocking(move || crate::metrics::render(&all)).await;
    match text {
        Ok(t) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], t).into_response(),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn not_found() -> Response {
    api_error(StatusCode::NOT_FOUND, "no such endpoint".into())
}

async fn cors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let preflight = req.method() == Method::OPTIONS;
    let mut res = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else if req.method() != Method::GET && req.method() != Method::HEAD {
        api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this API is read-only".into(),
        )
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("*"),
    );
    h.insert(
        "access-control-allow-private-network",
        HeaderValue::from_static("true"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// The router over a mesh registry.
pub fn router(meshes: Arc<Meshes>) -> Router {
    Router::new()
        .route("/api/stats", get(stats))
        .route("/api/chain", get(chain))
        .route("/api/events", get(events))
        .route("/api/messages", get(messages))
        .route("/metrics", get(metrics))
        .merge(crate::explorer::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(cors))
        .with_state(meshes)
}
