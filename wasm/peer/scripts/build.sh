#!/usr/bin/env bash
# Builds the browser peer (moss-wasm-peer): release wasm32 build with std
# from source (ring's C parts by clang-22), JS glue by wasm-bindgen
# (--target web, with the .d.ts), then wasm-opt -Oz.
# usage: wasm/peer/scripts/build.sh [OUT_DIR]   (default: wasm/peer/pkg,
# which js/moss.js imports; not committed: CI builds it fresh)
set -euo pipefail
source "$(dirname "$0")/env.sh"
OUT=${1:-$PEER_DIR/pkg}
cd "$PEER_DIR"
wasm_cargo build --locked --release --target wasm32-unknown-unknown "$BUILD_STD" --lib
mkdir -p "$OUT"
wasm-bindgen --target web --out-dir "$OUT" \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/moss_wasm_peer.wasm"
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$OUT/moss_wasm_peer_bg.wasm" -o "$OUT/moss_wasm_peer_bg.wasm"
ls -l "$OUT"
