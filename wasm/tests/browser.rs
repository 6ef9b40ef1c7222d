//! The verifier as the page runs it: wasm in headless Chromium
//! (`wasm-bindgen-test-runner` + chromedriver); also runs natively.

use moss_wasm::synthetic::synthetic_chain_json;
use moss_wasm::Verifier;
use serde_json::Value;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn parse(s: String) -> Value {
    serde_json::from_str(&s).unwrap()
}

#[wasm_bindgen_test]
fn a_served_chain_verifies_and_gateways_agree() {
    let mut v = Verifier::new(2);
    let body = synthetic_chain_json(50, 7);
    for slot in 0..2 {
        let r = parse(v.set_chain(slot, body.as_bytes()));
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["audit"]["verified_through"], 50);
        assert_eq!(r["audit"]["break_count"], 0);
    }
    let a = parse(v.agreement());
    let epochs = a["agreement"]["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 50);
    assert!(epochs.iter().all(|e| e["verdict"] == "agreed"));
}

#[wasm_bindgen_test]
fn a_tampered_digest_is_located_with_expected_and_got() {
    let good = synthetic_chain_json(20, 1);
    let mut links: Value = serde_json::from_str(&good).unwrap();
    let original = links[9]["epoch_digest"].as_str().unwrap().to_owned();
    let forged = "ab".repeat(32);
    links[9]["epoch_digest"] = Value::String(forged.clone());
    let mut v = Verifier::new(3);
    v.set_chain(0, good.as_bytes());
    v.set_chain(1, good.as_bytes());
    let r = parse(v.set_chain(2, links.to_string().as_bytes()));
    let breaks = r["audit"]["breaks"].as_array().unwrap();
    assert_eq!(breaks.len(), 1, "{r}");
    assert_eq!(breaks[0]["epoch"], 10);
    assert_eq!(breaks[0]["kind"], "digest_mismatch");
    assert_eq!(breaks[0]["expected"], original.as_str());
    assert_eq!(breaks[0]["got"], forged.as_str());
    assert_eq!(r["audit"]["verified_through"], 9);
    let a = parse(v.agreement());
    assert_eq!(a["agreement"]["dissent"], serde_json::json!([[], [], [10]]));
}

#[wasm_bindgen_test]
fn bad_input_answers_errors_and_never_throws() {
    let mut v = Verifier::new(1);
    let good = synthetic_chain_json(5, 0);
    let cases: [(&[u8], &str); 5] = [
        (&good.as_bytes()[..good.len() - 7], "truncated"),
        (b"[{\"epoch\":\"five\"}]", "wrong_type"),
        (b"{\"epoch\":5}", "wrong_type"),
        (b"<html>502</html>", "syntax"),
        (b"", "truncated"),
    ];
    for (body, kind) in cases {
        let r = parse(v.set_chain(0, body));
        assert_eq!(r["ok"], false);
        assert_eq!(r["error"]["kind"], kind, "{r}");
        assert!(!r["error"]["message"].as_str().unwrap().is_empty());
    }
    let huge = vec![b' '; moss_telemetry::audit::MAX_CHAIN_JSON + 1];
    let r = parse(v.set_chain(0, &huge));
    assert_eq!(r["error"]["kind"], "too_large", "{r}");
    let r = parse(v.set_chain(5, good.as_bytes()));
    assert_eq!(r["error"]["kind"], "usage");
    let r = parse(v.check_stats(0, b"{\"epoch\":1,"));
    assert_eq!(r["error"]["kind"], "truncated");
}

#[wasm_bindgen_test]
fn a_looping_or_skipping_chain_is_reported() {
    let one: Value = serde_json::from_str(&synthetic_chain_json(4, 2)).unwrap();
    let mut looped = one.as_array().unwrap().clone();
    looped.extend(one.as_array().unwrap().iter().cloned());
    let mut v = Verifier::new(1);
    let r = parse(v.set_chain(0, Value::Array(looped).to_string().as_bytes()));
    assert_eq!(r["audit"]["breaks"][0]["kind"], "epoch_not_increasing");
    assert_eq!(r["audit"]["breaks"][0]["epoch"], 1);
    assert_eq!(r["audit"]["verified_through"], 4);
    let mut skipped = one.as_array().unwrap().clone();
    skipped.remove(2);
    let r = parse(v.set_chain(0, Value::Array(skipped).to_string().as_bytes()));
    assert_eq!(r["audit"]["breaks"][0]["kind"], "broken_link");
    assert_eq!(r["audit"]["breaks"][0]["epoch"], 4);
}

#[wasm_bindgen_test]
fn stats_are_checked_against_the_chain() {
    let mut v = Verifier::new(1);
    let chain = synthetic_chain_json(3, 0);
    v.set_chain(0, chain.as_bytes());
    let links: Value = serde_json::from_str(&chain).unwrap();
    let head = links[2]["epoch_digest"].as_str().unwrap();
    let stats = format!(
        r#"{{"epoch":4,"node_count_estimate":2,"contributors":2,"k_anon_ok":true,
        "bandwidth_in_total":1,"bandwidth_out_total":1,"nat_histogram":{{"public":2}},
        "degree_histogram":{{"1-2":1}},"epoch_digest":"{head}","prev_digest":"{head}",
        "chain_head":3,"node":{{"mesh_id":"local"}}}}"#
    );
    let r = parse(v.check_stats(0, stats.as_bytes()));
    assert_eq!(r["stats"]["mesh_id"], "local");
    let issues = r["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{r}");
    assert_eq!(issues[0]["detail"]["kind"], "histogram_sum");
}
