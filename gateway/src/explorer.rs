//! The explorer's static files, embedded at build time from `explorer/`
//! (including the committed wasm verifier in `explorer/pkg/`), served at
//! `/explorer/`; `/` redirects there.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// `(path under /explorer/, content type, bytes)`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../../explorer/index.html"),
    ),
    (
        "explorer.css",
        "text/css; charset=utf-8",
        include_bytes!("../../explorer/explorer.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/app.js"),
    ),
    (
        "fetch.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/fetch.js"),
    ),
    (
        "plots.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/plots.js"),
    ),
    (
        "topology.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/topology.js"),
    ),
    (
        "pkg/moss_wasm.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/pkg/moss_wasm.js"),
    ),
    (
        "pkg/moss_wasm_bg.wasm",
        "application/wasm",
        include_bytes!("../../explorer/pkg/moss_wasm_bg.wasm"),
    ),
];

/// The embedded file at `path` (`""` is `index.html`).
pub fn file(path: &str) -> Option<(&'static str, &'static [u8])> {
    let path = if path.is_empty() { "index.html" } else { path };
    FILES
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, ty, body)| (*ty, *body))
}

fn serve(path: &str) -> Response {
    match file(path) {
        Some((ty, body)) => ([(header::CONTENT_TYPE, ty)], body).into_response(),
        None => (StatusCode::NOT_FOUND, "no such explorer file").into_response(),
    }
}

/// Routes `/`, `/explorer` and `/explorer/{*path}`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/explorer/") }))
        .route("/explorer", get(|| async { Redirect::to("/explorer/") }))
        .route("/explorer/", get(|| async { serve("") }))
        .route(
            "/explorer/{*path}",
            get(|Path(p): Path<String>| async move { serve(&p) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_import_is_embedded() {
        let (ty, index) = file("").unwrap();
        assert!(ty.starts_with("text/html"));
        let index = std::str::from_utf8(index).unwrap();
        for name in ["explorer.css", "app.js"] {
            assert!(index.contains(name), "{name}");
            assert!(file(name).is_some(), "{name}");
        }
        // Every module imported by a script is served too.
        for (path, _, body) in FILES.iter().filter(|(p, _, _)| p.ends_with(".js")) {
            let text = std::str::from_utf8(body).unwrap();
            for import in text.split("from './").skip(1) {
                let name = import.split('\'').next().unwrap();
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                let full = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                assert!(file(&full).is_some(), "{path} imports {full}");
            }
        }
        let (ty, wasm) = file("pkg/moss_wasm_bg.wasm").unwrap();
        assert_eq!(ty, "application/wasm");
        assert_eq!(&wasm[..4], b"\0asm");
        assert!(file("../Cargo.toml").is_none());
    }
}
