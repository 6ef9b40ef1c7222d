//! A build without the `webrtc` feature refuses a config that enables
//! `webrtc` with a clear error instead of running without DataChannel peers.
#![cfg(not(feature = "webrtc"))]

use moss::{Node, StartError, WebrtcError};

#[test]
fn enabling_webrtc_without_the_feature_fails_to_start_and_names_it() {
    let cfg = r#"{"trackers":[],"dht_enabled":false,"lan_discovery_enabled":false,
        "webrtc":{"enabled":true,"signal":["ws://127.0.0.1:9"]}}"#;
    let err = Node::builder("webrtc-off")
        .config_json(cfg)
        .expect("valid config")
        .start()
        .err()
        .expect("start must fail without the webrtc feature");
    assert!(
        matches!(err, StartError::Webrtc(WebrtcError::NotBuilt)),
        "{err}"
    );
    assert!(err.to_string().contains("`webrtc` feature"), "{err}");
}
