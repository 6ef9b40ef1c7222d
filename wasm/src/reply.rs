//! The JSON envelope every export answers with.

use moss_telemetry::InputError;
use serde_json::{json, Value};

/// `{"ok":true, …fields}`.
pub fn ok(fields: Value) -> String {
    let mut v = json!({ "ok": true });
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    v.to_string()
}

/// `{"ok":false,"error":{"kind",…,"message"}}` for rejected input.
pub fn input_error(e: &InputError) -> String {
    let mut detail = serde_json::to_value(e).unwrap_or_else(|_| json!({}));
    if let Some(o) = detail.as_object_mut() {
        o.insert("message".into(), Value::String(e.to_string()));
    }
    json!({ "ok": false, "error": detail }).to_string()
}

/// `{"ok":false,"error":{"kind":"usage","message"}}` for a call the page
/// got wrong (e.g. an unknown gateway slot).
pub fn usage(message: String) -> String {
    json!({ "ok": false, "error": { "kind": "usage", "message": message } }).to_string()
}
