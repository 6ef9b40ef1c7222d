//! `-demo DIR`: the server also serves the browser demo's static files
//! (`wasm/peer`: `demo/`, `js/`, `pkg/`) from DIR, so one process is all
//! a person needs to try the browser peer. Only files under DIR are read:
//! paths with `..`, backslashes or hidden components are refused.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use std::path::{Component, Path, PathBuf};

/// Largest file served (the peer's wasm is well under 1 MiB).
const MAX_FILE: u64 = 16 << 20;

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript",
        Some("css") => "text/css",
        Some("wasm") => "application/wasm",
        Some("json" | "map") => "application/json",
        Some("png") => "image/png",
        Some("ts") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The file under `root` that `path` names, if it may be served.
pub fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path.trim_start_matches('/'));
    if path.contains('\\') {
        return None;
    }
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(s) if !s.to_string_lossy().starts_with('.') => out.push(s),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Serves `uri` from `root`: `/` goes to `/demo/`, a directory to its
/// `index.html`.
pub async fn serve(root: PathBuf, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/" {
        let to = match uri.query() {
            Some(q) => format!("/demo/?{q}"),
            None => "/demo/".into(),
        };
        return Redirect::temporary(&to).into_response();
    }
    let Some(file) = resolve(&root, path) else {
        return (StatusCode::BAD_REQUEST, "bad path\n").into_response();
    };
    // Small files, read off the async threads.
    let read = tokio::task::spawn_blocking(move || read_file(file)).await;
    match read {
        Ok(Some((file, body))) => (
            [
                (header::CONTENT_TYPE, content_type(&file)),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            body,
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "no such file\n").into_response(),
    }
}

/// Reads `file` (a directory's `index.html`), if it is a file of at most [`MAX_FILE`].
fn read_file(mut file: PathBuf) -> Option<(PathBuf, Vec<u8>)> {
    if std::fs::metadata(&file).is_ok_and(|m| m.is_dir()) {
        file.push("index.html");
    }
    let m = std::fs::metadata(&file).ok()?;
    if !m.is_file() || m.len() > MAX_FILE {
        return None;
    }
    let body = std::fs::read(&file).ok()?;
    Some((file, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_under_the_root_resolve() {
        let root = Path::new("/srv/demo");
        assert_eq!(
            resolve(root, "/demo/index.html"),
            Some(root.join("demo/index.html"))
        );
        assert_eq!(
            resolve(root, "/./js/moss.js"),
            Some(root.join("js/moss.js"))
        );
        for bad in [
            "/../etc/passwd",
            "/demo/../../x",
            "/.git/config",
            "/a\\b",
            "//etc/passwd/..",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn types_by_extension() {
        assert_eq!(content_type(Path::new("a.wasm")), "application/wasm");
        assert_eq!(content_type(Path::new("a.js")), "text/javascript");
        assert_eq!(content_type(Path::new("a")), "application/octet-stream");
    }
}
