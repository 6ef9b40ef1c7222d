//! The committed `include/moss.h` is exactly what cbindgen generates from the
//! current source. Regenerate with `MOSS_BLESS=1 cargo test -p moss-ffi --test header`.

use std::path::PathBuf;

fn generate() -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("header is UTF-8")
}

#[test]
fn committed_header_matches_generated() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("include/moss.h");
    let generated = generate();
    if std::env::var_os("MOSS_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/moss.h");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/moss.h is stale; run MOSS_BLESS=1 cargo test -p moss-ffi --test header\n--- generated ---\n{generated}"
    );
}

#[test]
fn header_declares_the_whole_abi() {
    let h = generate().split_whitespace().collect::<Vec<_>>().join(" ");
    for f in [
        "MossHandle Moss_Init(const char *mesh_id, const uint8_t *psk, const char *config_json);",
        "int32_t Moss_Start(MossHandle handle);",
        "int32_t Moss_Stop(MossHandle handle);",
        "int32_t Moss_Subscribe(MossHandle handle, const char *channel);",
        "int32_t Moss_Unsubscribe(MossHandle handle, const char *channel);",
        "int32_t Moss_Publish(MossHandle handle, const char *channel, const uint8_t *data, uint32_t len);",
        "int32_t Moss_Connect(MossHandle handle, const char *host_port);",
        "int32_t Moss_SetCallback(MossHandle handle, MossMessageCallback cb);",
        "int32_t Moss_SetEventCallback(MossHandle handle, MossEventCallback cb);",
        "int32_t Moss_SetScoringCallback(MossHandle handle, MossScoringCallback cb);",
        "int32_t Moss_SetKeyStore(MossKeyStoreLoadCallback load, MossKeyStoreSaveCallback save);",
        "char *Moss_GetMeshInfo(MossHandle handle);",
        "char *Moss_GetNetworkStats(MossHandle handle);",
        "char *Moss_GetPublicKey(MossHandle handle);",
        "char *Moss_GetNATType(MossHandle handle);",
        "void Moss_Free(void *ptr);",
        "const char *Moss_LastError(void);",
        "const char *Moss_Version(void);",
        "typedef int64_t MossHandle;",
        "typedef void (*MossMessageCallback)(const char *channel, const uint8_t *sender_id, const uint8_t *data, uint32_t len);",
        "typedef void (*MossEventCallback)(int32_t event_type, const char *detail_json);",
        "typedef double (*MossScoringCallback)(const uint8_t *peer_id, double base_score);",
        "typedef uint32_t (*MossKeyStoreLoadCallback)(uint8_t *buf, uint32_t cap);",
        "typedef void (*MossKeyStoreSaveCallback)(const uint8_t *data, uint32_t len);",
        "#define MOSS_ERR_CONNECT_FAILED -10",
        "#define MOSS_ERR_NOT_AVAILABLE -11",
    ] {
        assert!(h.contains(f), "header lacks `{f}`\n{h}");
    }
}
