//! Nodes driven through the C ABI (the Rust functions of the rlib, called
//! exactly as C would): delivery, re-entrant callbacks, stopping from a
//! callback, independent handles, overflow reporting.

use moss_capi::*;
use std::ffi::{c_char, CStr, CString};
use std::ptr::null;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const QUIET: &str = "{\"trackers\":[],\"lan_discovery_enabled\":false,\"dht_enabled\":false}";

fn last_error() -> String {
    // SAFETY: Moss_LastError returns a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(Moss_LastError()) }
        .to_string_lossy()
        .into_owned()
}

fn take(p: *mut c_char) -> String {
    assert!(!p.is_null(), "getter failed: {}", last_error());
    // SAFETY: a non-NULL string returned by a Moss getter.
    let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    // SAFETY: released once, with Moss_Free.
    unsafe { Moss_Free(p.cast()) };
    s
}

fn init(mesh: &str, config: &str) -> MossHandle {
    let mesh = CString::new(mesh).unwrap();
    let config = CString::new(config).unwrap();
    // SAFETY: valid C strings, NULL psk.
    let h = unsafe { Moss_Init(mesh.as_ptr(), null(), config.as_ptr()) };
    assert!(h > 0, "Moss_Init: {h} {}", last_error());
    h
}

fn port(h: MossHandle) -> u16 {
    let info = take(Moss_GetMeshInfo(h));
    let v: serde_json::Value = serde_json::from_str(&info).unwrap();
    v["listen_port"].as_u64().unwrap() as u16
}

/// Starts `a` and `b` (subscribed to `channel`) and connects b to a.
fn pair(a: MossHandle, b: MossHandle, channel: &CStr) {
    // SAFETY: valid C strings.
    unsafe {
        assert_eq!(Moss_Subscribe(a, channel.as_ptr()), MOSS_OK);
        assert_eq!(Moss_Subscribe(b, channel.as_ptr()), MOSS_OK);
    }
    assert_eq!(Moss_Start(a), MOSS_OK, "{}", last_error());
    assert_eq!(Moss_Start(b), MOSS_OK, "{}", last_error());
    let addr = CString::new(format!("127.0.0.1:{}", port(a))).unwrap();
    // SAFETY: valid C string.
    let rc = unsafe { Moss_Connect(b, addr.as_ptr()) };
    assert_eq!(rc, MOSS_OK, "{}", last_error());
}

/// Polls `done` for up to 60 s (a bound against hanging, not a speed check).
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Publishes `data` from `h` until `done`, as subscriptions reach peers
/// asynchronously.
fn publish_until(h: MossHandle, channel: &CStr, data: &[u8], what: &str, done: impl Fn() -> bool) {
    let mut tries = 0;
    wait_for(what, || {
        if done() {
            return true;
        }
        if tries % 5 == 0 {
            // SAFETY: valid C string and buffer of `data.len()` bytes.
            let rc = unsafe { Moss_Publish(h, channel.as_ptr(), data.as_ptr(), data.len() as u32) };
            assert!(
                rc == MOSS_OK || rc == MOSS_ERR_NO_PEERS,
                "publish: {rc} {}",
                last_error()
            );
        }
        tries += 1;
        false
    });
}

fn hex(id: *const u8) -> String {
    // SAFETY: callbacks pass 32-byte ids.
    let id = unsafe { std::slice::from_raw_parts(id, 32) };
    id.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- delivery and re-entrant publish -------------------------------------

static R_A: AtomicI64 = AtomicI64::new(0);
static R_B: AtomicI64 = AtomicI64::new(0);
static R_PINGS_AT_B: AtomicUsize = AtomicUsize::new(0);
static R_REPLY_RC: AtomicI32 = AtomicI32::new(1);
static R_AT_A: Mutex<Vec<(String, String, Vec<u8>)>> = Mutex::new(Vec::new());

unsafe extern "C" fn r_on_a(channel: *const c_char, from: *const u8, data: *const u8, len: u32) {
    // SAFETY: valid for the call, as documented.
    let (c, d) = unsafe {
        (
            CStr::from_ptr(channel).to_string_lossy().into_owned(),
            std::slice::from_raw_parts(data, len as usize).to_vec(),
        )
    };
    R_AT_A.lock().unwrap().push((c, hex(from), d));
}

unsafe extern "C" fn r_on_b(channel: *const c_char, _from: *const u8, data: *const u8, len: u32) {
    // SAFETY: valid for the call, as documented.
    let d = unsafe { std::slice::from_raw_parts(data, len as usize) };
    if d == b"ping" && R_PINGS_AT_B.fetch_add(1, Ordering::SeqCst) == 0 {
        let b = R_B.load(Ordering::SeqCst);
        // Re-entrant calls from the dispatch thread: a reply and an empty
        // message on the same channel.
        // SAFETY: `channel` is valid for the call; buffers are valid.
        let rc1 = unsafe { Moss_Publish(b, channel, b"pong".as_ptr(), 4) };
        // SAFETY: as above; len 0 with NULL data is allowed.
        let rc2 = unsafe { Moss_Publish(b, channel, null(), 0) };
        R_REPLY_RC.store(if rc1 == MOSS_OK { rc2 } else { rc1 }, Ordering::SeqCst);
    }
}

#[test]
fn delivery_with_reentrant_publish_and_empty_messages() {
    let a = init("life-deliver", QUIET);
    let b = init("life-deliver", QUIET);
    R_A.store(a, Ordering::SeqCst);
    R_B.store(b, Ordering::SeqCst);
    assert_eq!(Moss_SetCallback(a, Some(r_on_a)), MOSS_OK);
    assert_eq!(Moss_SetCallback(b, Some(r_on_b)), MOSS_OK);
    let key_b = take(Moss_GetPublicKey(b));
    pair(a, b, c"chat");
    publish_until(a, c"chat", b"ping", "ping at b", || {
        R_PINGS_AT_B.load(Ordering::SeqCst) > 0
    });
    wait_for("pong and empty message at a", || {
        R_AT_A.lock().unwrap().len() >= 2
    });
    assert_eq!(R_REPLY_RC.load(Ordering::SeqCst), MOSS_OK);
    let got = R_AT_A.lock().unwrap().clone();
    assert!(
        got.contains(&("chat".into(), key_b.clone(), b"pong".to_vec())),
        "{got:?}"
    );
    assert!(got.contains(&("chat".into(), key_b, Vec::new())), "{got:?}");
    // Unsubscribed channels are no longer delivered; the mesh info shows it.
    // SAFETY: valid C string.
    assert_eq!(unsafe { Moss_Unsubscribe(a, c"chat".as_ptr()) }, MOSS_OK);
    wait_for("channel list without chat", || {
        !take(Moss_GetMeshInfo(a)).contains("\"chat\"")
    });
    assert_eq!(Moss_Stop(a), MOSS_OK);
    assert_eq!(Moss_Stop(b), MOSS_OK);
}

// ---- stopping a handle from its own callback ------------------------------

static S_B: AtomicI64 = AtomicI64::new(0);
static S_CALLS: AtomicUsize = AtomicUsize::new(0);
static S_STOP_RC: AtomicI32 = AtomicI32::new(1);

unsafe extern "C" fn s_on_b(_c: *const c_char, _f: *const u8, _d: *const u8, _l: u32) {
    if S_CALLS.fetch_add(1, Ordering::SeqCst) == 0 {
        S_STOP_RC.store(Moss_Stop(S_B.load(Ordering::SeqCst)), Ordering::SeqCst);
    }
}

#[test]
fn stop_from_inside_the_own_callback() {
    let a = init("life-selfstop", QUIET);
    let b = init("life-selfstop", QUIET);
    S_B.store(b, Ordering::SeqCst);
    assert_eq!(Moss_SetCallback(b, Some(s_on_b)), MOSS_OK);
    pair(a, b, c"chat");
    publish_until(a, c"chat", b"x", "first delivery at b", || {
        S_CALLS.load(Ordering::SeqCst) > 0
    });
    wait_for("stop inside the callback", || {
        S_STOP_RC.load(Ordering::SeqCst) != 1
    });
    assert_eq!(S_STOP_RC.load(Ordering::SeqCst), MOSS_OK);
    assert_eq!(Moss_Stop(b), MOSS_ERR_INVALID_HANDLE);
    // The peer sees b leave; a keeps working and stops normally.
    wait_for("a has no peers", || {
        take(Moss_GetMeshInfo(a)).contains("\"peer_count\":0")
    });
    // SAFETY: valid C string and buffer.
    let rc = unsafe { Moss_Publish(a, c"chat".as_ptr(), b"y".as_ptr(), 1) };
    assert_eq!(rc, MOSS_ERR_NO_PEERS);
    assert_eq!(S_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(Moss_Stop(a), MOSS_OK);
}

// ---- independent handles ---------------------------------------------------

static I_GOT: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static I_WRONG: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn i_on_1(_c: *const c_char, _f: *const u8, d: *const u8, l: u32) {
    // SAFETY: valid for the call.
    let d = unsafe { std::slice::from_raw_parts(d, l as usize) };
    if d == b"one" {
        I_GOT[0].fetch_add(1, Ordering::SeqCst);
    } else {
        I_WRONG.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe extern "C" fn i_on_2(_c: *const c_char, _f: *const u8, d: *const u8, l: u32) {
    // SAFETY: valid for the call.
    let d = unsafe { std::slice::from_raw_parts(d, l as usize) };
    if d == b"two" {
        I_GOT[1].fetch_add(1, Ordering::SeqCst);
    } else {
        I_WRONG.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn many_handles_work_independently() {
    let (a1, b1) = (init("life-one", QUIET), init("life-one", QUIET));
    let (a2, b2) = (init("life-two", QUIET), init("life-two", QUIET));
    assert_eq!(Moss_SetCallback(b1, Some(i_on_1)), MOSS_OK);
    assert_eq!(Moss_SetCallback(b2, Some(i_on_2)), MOSS_OK);
    pair(a1, b1, c"same-channel");
    pair(a2, b2, c"same-channel");
    publish_until(a1, c"same-channel", b"one", "mesh one", || {
        I_GOT[0].load(Ordering::SeqCst) > 0
    });
    // Stopping mesh one leaves mesh two untouched.
    assert_eq!(Moss_Stop(a1), MOSS_OK);
    assert_eq!(Moss_Stop(b1), MOSS_OK);
    publish_until(a2, c"same-channel", b"two", "mesh two", || {
        I_GOT[1].load(Ordering::SeqCst) > 0
    });
    assert_eq!(I_WRONG.load(Ordering::SeqCst), 0);
    assert_eq!(Moss_Stop(a2), MOSS_OK);
    assert_eq!(Moss_Stop(b2), MOSS_OK);
}

// ---- a slow callback: engine drops are reported as event 100 --------------

static O_ENTERED: AtomicBool = AtomicBool::new(false);
static O_RELEASE: AtomicBool = AtomicBool::new(false);
static O_DELIVERED: AtomicU64 = AtomicU64::new(0);
static O_DROPPED: AtomicU64 = AtomicU64::new(0);
static O_EVENT_TEXT: Mutex<String> = Mutex::new(String::new());

unsafe extern "C" fn o_on_msg(_c: *const c_char, _f: *const u8, _d: *const u8, _l: u32) {
    O_ENTERED.store(true, Ordering::SeqCst);
    // Block the dispatch thread until the test releases it.
    while !O_RELEASE.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
    O_DELIVERED.fetch_add(1, Ordering::SeqCst);
}

unsafe extern "C" fn o_on_event(id: i32, detail: *const c_char) {
    if id == 100 {
        // SAFETY: valid for the call.
        let d = unsafe { CStr::from_ptr(detail) }
            .to_string_lossy()
            .into_owned();
        let v: serde_json::Value = serde_json::from_str(&d).unwrap_or_default();
        O_DROPPED.fetch_add(v["dropped"].as_u64().unwrap_or(0), Ordering::SeqCst);
        *O_EVENT_TEXT.lock().unwrap() = d;
    }
}

#[test]
fn slow_callbacks_overflow_and_are_reported() {
    let cfg = "{\"trackers\":[],\"lan_discovery_enabled\":false,\"dht_enabled\":false,\
               \"security\":{\"rate_limit_burst\":1000000000,\"rate_limit_sustained\":1000000000}}";
    let a = init("life-overflow", cfg);
    let b = init("life-overflow", cfg);
    assert_eq!(Moss_SetCallback(b, Some(o_on_msg)), MOSS_OK);
    assert_eq!(Moss_SetEventCallback(b, Some(o_on_event)), MOSS_OK);
    pair(a, b, c"flood");
    // The first delivery blocks b's dispatch thread; everything after it
    // piles up in the engine's bounded queue (16384) until it overflows.
    publish_until(a, c"flood", b"first", "b's callback entered", || {
        O_ENTERED.load(Ordering::SeqCst)
    });
    let mut sent = 0u64;
    while sent < 25_000 {
        // SAFETY: valid C string and buffer.
        let rc = unsafe { Moss_Publish(a, c"flood".as_ptr(), b"payload".as_ptr(), 7) };
        match rc {
            MOSS_OK => sent += 1,
            // Engine queue full: back off briefly.
            MOSS_ERR_OUT_OF_MEMORY => std::thread::sleep(Duration::from_millis(1)),
            other => panic!("publish: {other} {}", last_error()),
        }
    }
    // Wait until b's engine has dropped messages for lack of room (read
    // from the engine's counter, as b's dispatcher is blocked), then
    // unblock the callback: the dispatcher drains the queue and reports the
    // drops as event 100.
    let handle_b = moss_capi::handles::Handle::get(b).unwrap();
    wait_for("b's engine to drop messages", || {
        handle_b.host_drops().unwrap_or(0) > 0
    });
    assert_eq!(
        O_DROPPED.load(Ordering::SeqCst),
        0,
        "reported while blocked?"
    );
    O_RELEASE.store(true, Ordering::SeqCst);
    wait_for("an overflow event", || O_DROPPED.load(Ordering::SeqCst) > 0);
    let text = O_EVENT_TEXT.lock().unwrap().clone();
    assert!(text.starts_with("{\"dropped\":"), "{text}");
    wait_for("the queued messages", || {
        O_DELIVERED.load(Ordering::SeqCst) > 1_000
    });
    assert_eq!(Moss_Stop(a), MOSS_OK);
    assert_eq!(Moss_Stop(b), MOSS_OK);
}

// ---- Moss_Stop racing deliveries and calls from other threads --------------

static X_IN_CALLBACK: AtomicBool = AtomicBool::new(false);
static X_CALLS: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn x_on_b(_c: *const c_char, _f: *const u8, _d: *const u8, _l: u32) {
    X_IN_CALLBACK.store(true, Ordering::SeqCst);
    X_CALLS.fetch_add(1, Ordering::SeqCst);
    // A slow host: deliveries are in progress whenever Moss_Stop arrives.
    std::thread::sleep(Duration::from_millis(2));
    X_IN_CALLBACK.store(false, Ordering::SeqCst);
}

#[test]
fn stop_races_deliveries_and_concurrent_calls() {
    let a = init("life-race", QUIET);
    let b = init("life-race", QUIET);
    assert_eq!(Moss_SetCallback(b, Some(x_on_b)), MOSS_OK);
    pair(a, b, c"race");
    publish_until(a, c"race", b"warm", "first delivery", || {
        X_CALLS.load(Ordering::SeqCst) > 0
    });
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // Publishers on a, and callers hammering b from other threads.
    let mut threads = Vec::new();
    for i in 0..3 {
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut codes = std::collections::BTreeSet::new();
            while !stop.load(Ordering::SeqCst) {
                // SAFETY: valid C strings and buffers.
                let rc = unsafe {
                    if i == 0 {
                        Moss_Publish(a, c"race".as_ptr(), b"m".as_ptr(), 1)
                    } else {
                        let p = Moss_GetMeshInfo(b);
                        Moss_Free(p.cast());
                        Moss_Publish(b, c"race".as_ptr(), b"n".as_ptr(), 1)
                    }
                };
                codes.insert(rc);
            }
            codes
        }));
    }
    wait_for("deliveries under load", || {
        X_CALLS.load(Ordering::SeqCst) > 20
    });
    assert_eq!(Moss_Stop(b), MOSS_OK);
    // Moss_Stop returned: no callback of b runs now or starts later.
    assert!(!X_IN_CALLBACK.load(Ordering::SeqCst));
    let calls = X_CALLS.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(X_CALLS.load(Ordering::SeqCst), calls);
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let codes = t.join().expect("caller thread");
        // Only documented outcomes: OK, no peers (b gone), busy, or b's
        // handle released.
        for c in codes {
            assert!(
                [
                    MOSS_OK,
                    MOSS_ERR_NO_PEERS,
                    MOSS_ERR_OUT_OF_MEMORY,
                    MOSS_ERR_INVALID_HANDLE
                ]
                .contains(&c),
                "unexpected code {c}"
            );
        }
    }
    assert_eq!(Moss_Stop(a), MOSS_OK);
}

static SCORED: AtomicUsize = AtomicUsize::new(0);
static SCORED_PEER: Mutex<Option<[u8; 32]>> = Mutex::new(None);

unsafe extern "C" fn record_score(peer: *const u8, base: f64) -> f64 {
    let mut id = [0u8; 32];
    // SAFETY: the ABI promises 32 readable bytes.
    unsafe { std::ptr::copy_nonoverlapping(peer, id.as_mut_ptr(), 32) };
    *SCORED_PEER.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
    SCORED.fetch_add(1, Ordering::SeqCst);
    base + 1.0
}

#[test]
fn the_scoring_callback_is_consulted_for_connected_peers() {
    let a = init("ffi-scoring", QUIET);
    let b = init("ffi-scoring", QUIET);
    assert_eq!(Moss_SetScoringCallback(a, Some(record_score)), MOSS_OK);
    let chan = CString::new("s").unwrap();
    pair(a, b, &chan);
    let b_key = take(Moss_GetPublicKey(b));
    let deadline = Instant::now() + Duration::from_secs(30);
    while SCORED.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(SCORED.load(Ordering::SeqCst) > 0, "callback never called");
    let seen = SCORED_PEER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .expect("a peer id");
    let hex: String = seen.iter().map(|x| format!("{x:02x}")).collect();
    assert_eq!(hex, b_key, "scored peer is the connected one");
    assert_eq!(Moss_Stop(a), MOSS_OK);
    assert_eq!(Moss_Stop(b), MOSS_OK);
}
