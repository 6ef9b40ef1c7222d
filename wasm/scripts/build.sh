#!/usr/bin/env bash
# Builds moss-wasm for the browser: release wasm32 build with std from
# source, JS glue by wasm-bindgen (--target web), then wasm-opt -Oz.
# usage: wasm/scripts/build.sh [OUT_DIR]   (default: explorer/pkg, the copy
# the gateway embeds; tests build into target/ instead)
set -euo pipefail
source "$(dirname "$0")/env.sh"
OUT=${1:-$WASM_DIR/../explorer/pkg}
cd "$WASM_DIR"
wasm_cargo build --locked --release --target wasm32-unknown-unknown "$BUILD_STD" --lib
mkdir -p "$OUT"
wasm-bindgen --target web --no-typescript --out-dir "$OUT" \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/moss_wasm.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$OUT/moss_wasm_bg.wasm" -o "$OUT/moss_wasm_bg.wasm"
wasm_inputs_digest >"$OUT/inputs.sha256"
ls -l "$OUT"
