//! Every bad input of the C ABI returns its documented code (and a
//! `Moss_LastError` message) instead of crashing.

use moss_capi::*;
use std::ffi::{c_char, CStr};
use std::ptr::{null, null_mut};

const QUIET: &CStr =
    c"{\"trackers\":[],\"lan_discovery_enabled\":false,\"dht_enabled\":false,\"security\":{\"handshake_timeout_sec\":1}}";

fn last_error() -> String {
    // SAFETY: Moss_LastError returns a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(Moss_LastError()) }
        .to_string_lossy()
        .into_owned()
}

/// Takes a Moss-owned string, copies it and frees it.
fn take(p: *mut c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-NULL string returned by a Moss getter.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: released once, with Moss_Free.
    unsafe { Moss_Free(p.cast()) };
    Some(s)
}

fn init(config: &CStr) -> MossHandle {
    // SAFETY: valid C strings, NULL psk.
    let h = unsafe { Moss_Init(c"bad-input".as_ptr(), null(), config.as_ptr()) };
    assert!(h > 0, "Moss_Init failed: {h} {}", last_error());
    h
}

#[test]
fn version_names_the_library() {
    // SAFETY: static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(Moss_Version()) }.to_str().unwrap();
    assert!(v.starts_with("moss "), "{v}");
    assert!(v.contains(env!("CARGO_PKG_VERSION")), "{v}");
}

#[test]
fn init_rejects_bad_mesh_ids_and_configs() {
    let bad_utf8 = [0xffu8, 0xfe, 0x00];
    // SAFETY (all calls below): pointers are NULL or NUL-terminated buffers.
    unsafe {
        assert_eq!(
            Moss_Init(null(), null(), null()),
            i64::from(MOSS_ERR_CONFIG_INVALID)
        );
        assert!(last_error().contains("mesh_id"), "{}", last_error());
        assert_eq!(
            Moss_Init(bad_utf8.as_ptr().cast(), null(), null()),
            i64::from(MOSS_ERR_CONFIG_INVALID)
        );
        assert!(
            last_error().contains("mesh_id: not UTF-8"),
            "{}",
            last_error()
        );
        assert_eq!(
            Moss_Init(c"".as_ptr(), null(), null()),
            i64::from(MOSS_ERR_CONFIG_INVALID)
        );
        assert_eq!(
            Moss_Init(c"m".as_ptr(), null(), bad_utf8.as_ptr().cast()),
            i64::from(MOSS_ERR_CONFIG_INVALID)
        );
        assert!(last_error().contains("config_json"), "{}", last_error());
        for (cfg, field) in [
            (c"{not json", "?"), // a syntax error has no field path
            (c"{\"listen_port\":\"x\"}", "listen_port"),
            (c"{\"listen_port\":70000}", "listen_port"),
            (c"{\"gossipsub\":{\"D\":1}}", "gossipsub.D"),
            (c"{\"trackers\":[\"ftp://x\"]}", "trackers"),
            (c"{\"static_peers\":[\"nohost\"]}", "static_peers"),
            (
                c"{\"security\":{\"max_message_size_bytes\":2000000000}}",
                "security.max_message_size_bytes",
            ),
            (c"{\"engine\":{\"backend\":\"teleport\"}}", "engine.backend"),
        ] {
            let h = Moss_Init(c"m".as_ptr(), null(), cfg.as_ptr());
            assert_eq!(h, i64::from(MOSS_ERR_CONFIG_INVALID), "{cfg:?} accepted");
            let e = last_error();
            assert!(
                e.contains(&format!("`{field}`")),
                "{cfg:?}: `{e}` does not name {field}"
            );
        }
    }
}

#[test]
fn init_accepts_null_empty_and_partial_configs() {
    // SAFETY (all calls below): valid C strings; psk points to 32 bytes.
    unsafe {
        let psk = [7u8; 32];
        for (cfg, psk) in [
            (null(), null()),
            (c"".as_ptr(), psk.as_ptr()),
            (c"{\"gossipsub\":{\"D\":8,\"D_high\":14}}".as_ptr(), null()),
            (c"{\"trackers\":[]}".as_ptr(), null()),
        ] {
            let h = Moss_Init(c"ok".as_ptr(), psk, cfg);
            assert!(h > 0, "{h}: {}", last_error());
            // Never started: released, and says so.
            assert_eq!(Moss_Stop(h), MOSS_ERR_NOT_STARTED);
            assert_eq!(Moss_Stop(h), MOSS_ERR_INVALID_HANDLE);
        }
    }
}

/// Every handle-taking function with `h`, which must be invalid.
fn assert_all_invalid(h: MossHandle) {
    let data = [1u8; 4];
    // SAFETY (all calls below): valid C strings and buffers.
    unsafe {
        assert_eq!(Moss_Start(h), MOSS_ERR_INVALID_HANDLE);
        assert_eq!(Moss_Subscribe(h, c"x".as_ptr()), MOSS_ERR_INVALID_HANDLE);
        assert_eq!(Moss_Unsubscribe(h, c"x".as_ptr()), MOSS_ERR_INVALID_HANDLE);
        assert_eq!(
            Moss_Publish(h, c"x".as_ptr(), data.as_ptr(), 4),
            MOSS_ERR_INVALID_HANDLE
        );
        assert_eq!(
            Moss_Connect(h, c"127.0.0.1:1".as_ptr()),
            MOSS_ERR_INVALID_HANDLE
        );
        assert_eq!(Moss_SetCallback(h, None), MOSS_ERR_INVALID_HANDLE);
        assert_eq!(Moss_SetEventCallback(h, None), MOSS_ERR_INVALID_HANDLE);
        assert_eq!(Moss_SetScoringCallback(h, None), MOSS_ERR_INVALID_HANDLE);
        assert!(Moss_GetMeshInfo(h).is_null());
        assert!(Moss_GetNetworkStats(h).is_null());
        assert!(Moss_GetPublicKey(h).is_null());
        assert!(Moss_GetNATType(h).is_null());
        assert!(last_error().contains("invalid handle"), "{}", last_error());
        assert_eq!(Moss_Stop(h), MOSS_ERR_INVALID_HANDLE);
    }
}

#[test]
fn unknown_and_released_handles_are_rejected() {
    for h in [0, -1, -8, 1 << 40, i64::MAX, i64::MIN] {
        assert_all_invalid(h);
    }
    let h = init(QUIET);
    assert_eq!(Moss_Start(h), MOSS_OK);
    assert_eq!(Moss_Stop(h), MOSS_OK);
    assert_all_invalid(h);
    // Ids are never reused.
    let h2 = init(QUIET);
    assert!(h2 > h);
    assert_eq!(Moss_Stop(h2), MOSS_ERR_NOT_STARTED);
}

#[test]
fn bad_channels_and_payloads() {
    let h = init(QUIET);
    let long = "c".repeat(256) + "\0";
    let ok_255 = "c".repeat(255) + "\0";
    let bad_utf8 = [b'a', 0xff, 0x00];
    let one = [9u8];
    // SAFETY (all calls below): pointers are NULL, NUL-terminated strings,
    // or buffers at least as long as the length passed, except where the
    // length exceeds the limit, which is rejected before any read.
    unsafe {
        for (name, c) in [
            ("NULL", null()),
            ("not UTF-8", bad_utf8.as_ptr().cast()),
            ("empty", c"".as_ptr()),
            ("256 bytes", long.as_ptr().cast()),
        ] {
            assert_eq!(Moss_Subscribe(h, c), MOSS_ERR_INVALID_CHANNEL, "{name}");
            assert_eq!(Moss_Unsubscribe(h, c), MOSS_ERR_INVALID_CHANNEL, "{name}");
            assert_eq!(
                Moss_Publish(h, c, one.as_ptr(), 1),
                MOSS_ERR_INVALID_CHANNEL,
                "{name}"
            );
        }
        // Before start: subscribing is remembered; publishing needs a node.
        assert_eq!(Moss_Subscribe(h, ok_255.as_ptr().cast()), MOSS_OK);
        assert_eq!(Moss_Unsubscribe(h, ok_255.as_ptr().cast()), MOSS_OK);
        assert_eq!(Moss_Subscribe(h, c"chat".as_ptr()), MOSS_OK);
        assert_eq!(
            Moss_Publish(h, c"chat".as_ptr(), one.as_ptr(), 1),
            MOSS_ERR_NOT_STARTED
        );
        assert_eq!(
            Moss_Connect(h, c"127.0.0.1:9".as_ptr()),
            MOSS_ERR_NOT_STARTED
        );
        assert!(Moss_GetMeshInfo(h).is_null());
        assert!(last_error().contains("not started"));

        assert_eq!(Moss_Start(h), MOSS_OK);
        assert_eq!(Moss_Start(h), MOSS_ERR_ALREADY_STARTED);
        // Oversized: rejected from `len` alone, the 1-byte buffer is not read.
        for len in [65_537, u32::MAX] {
            assert_eq!(
                Moss_Publish(h, c"chat".as_ptr(), one.as_ptr(), len),
                MOSS_ERR_MESSAGE_TOO_LARGE
            );
        }
        assert!(last_error().contains("65536"), "{}", last_error());
        assert_eq!(
            Moss_Publish(h, c"chat".as_ptr(), null(), 5),
            MOSS_ERR_INVALID_ARGUMENT
        );
        // Zero length is an empty message (NULL data allowed); with no peer
        // connected it cannot leave the node.
        assert_eq!(
            Moss_Publish(h, c"chat".as_ptr(), null(), 0),
            MOSS_ERR_NO_PEERS
        );
        assert_eq!(
            Moss_Publish(h, c"chat".as_ptr(), one.as_ptr(), 1),
            MOSS_ERR_NO_PEERS
        );

        let info = take(Moss_GetMeshInfo(h)).expect("mesh info");
        let v: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(v["channels"], serde_json::json!(["chat"]), "{info}");
        assert_eq!(v["mesh_id"], "bad-input");
        assert!(v["listen_port"].as_u64().unwrap() > 0);
        assert_eq!(Moss_Stop(h), MOSS_OK);
        assert_eq!(Moss_Stop(h), MOSS_ERR_INVALID_HANDLE);
        assert_eq!(
            Moss_Publish(h, c"chat".as_ptr(), one.as_ptr(), 1),
            MOSS_ERR_INVALID_HANDLE
        );
    }
}

#[test]
fn bad_addresses_fail_to_connect() {
    let h = init(QUIET);
    assert_eq!(Moss_Start(h), MOSS_OK);
    let bad_utf8 = [b'1', 0xff, 0x00];
    // SAFETY (all calls below): NULL or NUL-terminated strings.
    unsafe {
        for a in [
            null(),
            bad_utf8.as_ptr().cast(),
            c"".as_ptr(),
            c"not an address".as_ptr(),
            c"127.0.0.1".as_ptr(),
            c"127.0.0.1:99999".as_ptr(),
            // Nobody answers there: the handshake times out (1 s here).
            c"127.0.0.1:9".as_ptr(),
        ] {
            assert_eq!(Moss_Connect(h, a), MOSS_ERR_CONNECT_FAILED);
            assert!(
                last_error().starts_with("connect failed"),
                "{}",
                last_error()
            );
        }
    }
    assert_eq!(Moss_Stop(h), MOSS_OK);
}

#[test]
fn getters_free_and_unavailable_features() {
    let h = init(QUIET);
    // Known from Moss_Init on.
    let key = take(Moss_GetPublicKey(h)).expect("public key");
    assert_eq!(key.len(), 64);
    assert!(key
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(take(Moss_GetNATType(h)).as_deref(), Some("unknown"));
    assert_eq!(take(Moss_GetNetworkStats(h)).as_deref(), Some("{}"));
    // SAFETY: NULL is documented as a no-op.
    unsafe { Moss_Free(null_mut()) };

    unsafe extern "C" fn score(_peer: *const u8, base: f64) -> f64 {
        base
    }
    assert_eq!(Moss_SetScoringCallback(h, Some(score)), MOSS_OK);
    assert_eq!(Moss_SetScoringCallback(h, None), MOSS_OK);

    assert_eq!(Moss_Start(h), MOSS_OK);
    let info = take(Moss_GetMeshInfo(h)).expect("mesh info");
    assert!(
        info.contains(&format!("\"public_key\":\"{key}\"")),
        "{info}"
    );
    assert_eq!(take(Moss_GetNATType(h)).as_deref(), Some("unknown"));
    assert_eq!(Moss_Stop(h), MOSS_OK);
}

#[test]
fn network_stats_with_telemetry_on() {
    let h = init(c"{\"trackers\":[],\"lan_discovery_enabled\":false,\"dht_enabled\":false,\"telemetry\":{\"enabled\":true}}");
    assert_eq!(take(Moss_GetNetworkStats(h)).as_deref(), Some("{}"));
    assert_eq!(Moss_Start(h), MOSS_OK);
    let stats = take(Moss_GetNetworkStats(h)).expect("network stats");
    let v: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(v.get("epoch").is_some(), "{stats}");
    assert_eq!(Moss_Stop(h), MOSS_OK);
}

#[test]
fn listen_failure_is_reported() {
    // Hold a UDP port, then ask a node to bind it.
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let cfg = format!("{{\"trackers\":[],\"lan_discovery_enabled\":false,\"dht_enabled\":false,\"listen_port\":{port}}}\0");
    let h = init(CStr::from_bytes_with_nul(cfg.as_bytes()).unwrap());
    assert_eq!(Moss_Start(h), MOSS_ERR_LISTEN_FAILED);
    assert!(
        last_error().starts_with("listen failed"),
        "{}",
        last_error()
    );
    // The handle stays usable; once the port is free it starts.
    drop(sock);
    assert_eq!(Moss_Start(h), MOSS_OK);
    assert_eq!(Moss_Stop(h), MOSS_OK);
}
