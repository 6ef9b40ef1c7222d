//! The peer's half: the server's `peers`, `join` and `leave`, and the
//! `offer` / `answer` envelopes the browser peer (`wasm/peer/js`) sends,
//! each carrying complete SDP in `data.sdp` (no trickled candidates).

use serde::{Deserialize, Serialize};

pub use crate::bounds::{MAX_ID, MAX_SDP};

/// One envelope from a signal server, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// The ids already in the room (sent once, on join).
    Peers(Vec<String>),
    /// `id` joined the room.
    Join(String),
    /// `id` left the room.
    Leave(String),
    /// `from` offers a link with this SDP.
    Offer {
        /// The offering peer's id (stamped by the server).
        from: String,
        /// The complete offer SDP.
        sdp: String,
    },
    /// `from` answers our offer with this SDP.
    Answer {
        /// The answering peer's id (stamped by the server).
        from: String,
        /// The complete answer SDP.
        sdp: String,
    },
}

/// Why an envelope was not understood (it is dropped and counted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or a field of the wrong type.
    #[error("not an envelope: {0}")]
    Json(String),
    /// A type this peer does not take.
    #[error("unexpected envelope type {0:?}")]
    Type(String),
    /// A required field is missing.
    #[error("envelope {kind} lacks {field}")]
    Missing {
        /// The envelope type.
        kind: &'static str,
        /// The field.
        field: &'static str,
    },
    /// An id or SDP over its bound.
    #[error("{0} too long")]
    TooLong(&'static str),
    /// An id the relay could not have accepted (see [`crate::bounds::valid_name`]).
    #[error("id is not URL-unreserved ASCII")]
    BadId,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    peers: Option<Vec<String>>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize, Serialize)]
struct Data {
    sdp: String,
}

#[derive(Serialize)]
struct Out<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    to: &'a str,
    data: Data,
}

fn id(s: String) -> Result<String, EnvelopeError> {
    if s.len() > MAX_ID {
        return Err(EnvelopeError::TooLong("id"));
    }
    if !crate::bounds::valid_name(&s, MAX_ID) {
        return Err(EnvelopeError::BadId);
    }
    Ok(s)
}

/// Decodes one text message from a signal server.
pub fn decode(text: &str) -> Result<Signal, EnvelopeError> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| EnvelopeError::Json(e.to_string()))?;
    let from = |kind: &'static str| {
        raw.from
            .clone()
            .ok_or(EnvelopeError::Missing {
                kind,
                field: "from",
            })
            .and_then(id)
    };
    let sdp = |kind: &'static str| {
        let d = raw.data.as_ref().ok_or(EnvelopeError::Missing {
            kind,
            field: "data.sdp",
        })?;
        if d.sdp.len() > MAX_SDP {
            return Err(EnvelopeError::TooLong("sdp"));
        }
        Ok(d.sdp.clone())
    };
    match raw.kind.as_str() {
        "peers" => {
            let peers = raw.peers.clone().ok_or(EnvelopeError::Missing {
                kind: "peers",
                field: "peers",
            })?;
            Ok(Signal::Peers(
                peers.into_iter().map(id).collect::<Result<_, _>>()?,
            ))
        }
        "join" => Ok(Signal::Join(from("join")?)),
        "leave" => Ok(Signal::Leave(from("leave")?)),
        "offer" => Ok(Signal::Offer {
            from: from("offer")?,
            sdp: sdp("offer")?,
        }),
        "answer" => Ok(Signal::Answer {
            from: from("answer")?,
            sdp: sdp("answer")?,
        }),
        other => Err(EnvelopeError::Type(other.chars().take(64).collect())),
    }
}

/// `{"type":"offer"|"answer","to":id,"data":{"sdp":…}}`.
pub fn encode(kind: &str, to: &str, sdp: String) -> String {
    let out = Out {
        kind,
        to,
        data: Data { sdp },
    };
    // Strings always serialise; the fallback keeps this free of panics.
    serde_json::to_string(&out).unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_server_and_browsers_send() {
        assert_eq!(
            decode(r#"{"type":"peers","peers":["a","b"]}"#),
            Ok(Signal::Peers(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            decode(r#"{"type":"join","from":"a"}"#),
            Ok(Signal::Join("a".into()))
        );
        assert_eq!(
            decode(r#"{"type":"offer","from":"a","to":"b","data":{"sdp":"v=0"}}"#),
            Ok(Signal::Offer {
                from: "a".into(),
                sdp: "v=0".into()
            })
        );
    }

    #[test]
    fn refuses_junk_with_a_reason() {
        assert!(matches!(decode("{"), Err(EnvelopeError::Json(_))));
        assert!(matches!(decode("[1]"), Err(EnvelopeError::Json(_))));
        assert!(matches!(
            decode(r#"{"type":"candidate","from":"a"}"#),
            Err(EnvelopeError::Type(_))
        ));
        assert!(matches!(
            decode(r#"{"type":"offer","from":"a"}"#),
            Err(EnvelopeError::Missing { .. })
        ));
        assert!(matches!(
            decode(r#"{"type":"answer","data":{"sdp":""}}"#),
            Err(EnvelopeError::Missing { .. })
        ));
        let long = format!(r#"{{"type":"join","from":"{}"}}"#, "a".repeat(MAX_ID + 1));
        assert_eq!(decode(&long), Err(EnvelopeError::TooLong("id")));
        assert_eq!(
            decode(r#"{"type":"join","from":"a b"}"#),
            Err(EnvelopeError::BadId)
        );
        assert_eq!(
            decode(r#"{"type":"peers","peers":[""]}"#),
            Err(EnvelopeError::BadId)
        );
        let big = format!(
            r#"{{"type":"offer","from":"a","data":{{"sdp":"{}"}}}}"#,
            "x".repeat(MAX_SDP + 1)
        );
        assert_eq!(decode(&big), Err(EnvelopeError::TooLong("sdp")));
    }

    #[test]
    fn what_the_relay_sends_the_peer_reads() {
        use crate::relay;
        let ids = ["a", "b"];
        assert_eq!(
            decode(&relay::peers(ids.into_iter())),
            Ok(Signal::Peers(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            decode(&relay::presence("leave", "a")),
            Ok(Signal::Leave("a".into()))
        );
        let sent = encode("offer", "b", "v=0".into());
        let fwd = relay::forward(&relay::decode(&sent).unwrap(), "a");
        assert_eq!(
            decode(&fwd),
            Ok(Signal::Offer {
                from: "a".into(),
                sdp: "v=0".into()
            })
        );
    }

    #[test]
    fn encodes_an_answer() {
        let s = encode("answer", "b", "v=0\r\n".into());
        assert_eq!(s, r#"{"type":"answer","to":"b","data":{"sdp":"v=0\r\n"}}"#);
    }
}
