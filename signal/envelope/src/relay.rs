//! The relay's half: decoding what a client sends, encoding what the
//! server sends. `type` and `data` are opaque to the server.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use crate::bounds::MAX_TYPE;

/// Types only the server sends (the [`crate::peer`] half reads them); a
/// client sending one is malformed.
pub const SERVER_TYPES: [&str; 3] = ["peers", "join", "leave"];

/// Why a client's envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, not an object, or a field of the wrong type.
    #[error("not an envelope: {0}")]
    Json(String),
    /// `type` is empty or longer than [`MAX_TYPE`].
    #[error("type must be 1-{MAX_TYPE} bytes")]
    BadType,
    /// `type` is one the server reserves.
    #[error("type {0:?} is reserved for the server")]
    Reserved(String),
}

/// An envelope as a client sends it. `from` and unknown fields are ignored.
#[derive(Debug, Deserialize)]
pub struct Inbound<'a> {
    /// The message type (offer, answer, candidate...).
    #[serde(rename = "type", borrow)]
    pub kind: std::borrow::Cow<'a, str>,
    /// Recipient id; absent or empty broadcasts to the room.
    #[serde(default, borrow)]
    pub to: Option<std::borrow::Cow<'a, str>>,
    /// Opaque payload, forwarded verbatim.
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
}

/// An envelope as the server forwards it, `from` stamped.
#[derive(Debug, Serialize)]
struct Outbound<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    from: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

/// Decodes a client envelope.
pub fn decode(text: &str) -> Result<Inbound<'_>, EnvelopeError> {
    let env: Inbound<'_> =
        serde_json::from_str(text).map_err(|e| EnvelopeError::Json(e.to_string()))?;
    if env.kind.is_empty() || env.kind.len() > MAX_TYPE {
        return Err(EnvelopeError::BadType);
    }
    if SERVER_TYPES.contains(&env.kind.as_ref()) {
        return Err(EnvelopeError::Reserved(env.kind.into_owned()));
    }
    // `data` is kept raw, and the raw scan lets escapes such as a lone
    // surrogate (`"\udc00"`) through. Forward only I-JSON (RFC 7493), which
    // every receiver's parser accepts: decode it once, strictly.
    if let Some(d) = env.data {
        serde_json::from_str::<serde_json::Value>(d.get())
            .map_err(|e| EnvelopeError::Json(e.to_string()))?;
    }
    Ok(env)
}

/// Encodes `env` as forwarded from `from`.
pub fn forward(env: &Inbound<'_>, from: &str) -> String {
    encode(&Outbound {
        kind: &env.kind,
        from,
        to: env.to.as_deref().filter(|t| !t.is_empty()),
        data: env.data,
    })
}

/// `{"type":"join","from":id}` or `{"type":"leave","from":id}`.
pub fn presence(kind: &str, from: &str) -> String {
    encode(&Outbound {
        kind,
        from,
        to: None,
        data: None,
    })
}

/// `{"type":"peers","peers":[ids]}`.
pub fn peers<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    #[derive(Serialize)]
    struct Peers<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        peers: Vec<&'a str>,
    }
    encode(&Peers {
        kind: "peers",
        peers: ids.collect(),
    })
}

fn encode<T: Serialize>(v: &T) -> String {
    // Strings and already-valid raw JSON always serialise; the fallback is
    // never reached but keeps this path free of panics.
    serde_json::to_string(v).unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_data_verbatim_and_stamps_from() {
        let env = decode(r#"{"type":"offer","from":"mallory","to":"b","data":{"sdp":"v=0\r\n","n":[1,2]},"x":1}"#).unwrap();
        assert_eq!(
            forward(&env, "a"),
            r#"{"type":"offer","from":"a","to":"b","data":{"sdp":"v=0\r\n","n":[1,2]}}"#
        );
        let env = decode(r#"{"type":"hello","to":""}"#).unwrap();
        assert_eq!(forward(&env, "a"), r#"{"type":"hello","from":"a"}"#);
    }

    #[test]
    fn refuses_what_is_not_an_envelope() {
        for bad in [
            "",
            "nope",
            "[]",
            "1",
            r#"{"to":"b"}"#,
            r#"{"type":5}"#,
            r#"{"type":"offer","to":7}"#,
            r#"{"type":"offer""#,
            r#"{"type":"offer","data":{"sdp":"\udc00"}}"#,
        ] {
            assert!(matches!(decode(bad), Err(EnvelopeError::Json(_))), "{bad}");
        }
        assert_eq!(
            decode(r#"{"type":""}"#).unwrap_err(),
            EnvelopeError::BadType
        );
        let long = format!(r#"{{"type":"{}"}}"#, "x".repeat(MAX_TYPE + 1));
        assert_eq!(decode(&long).unwrap_err(), EnvelopeError::BadType);
        assert!(matches!(
            decode(r#"{"type":"join"}"#),
            Err(EnvelopeError::Reserved(_))
        ));
    }

    #[test]
    fn server_messages() {
        assert_eq!(
            peers(["a", "b"].into_iter()),
            r#"{"type":"peers","peers":["a","b"]}"#
        );
        assert_eq!(peers(std::iter::empty()), r#"{"type":"peers","peers":[]}"#);
        assert_eq!(presence("leave", "a"), r#"{"type":"leave","from":"a"}"#);
    }
}
