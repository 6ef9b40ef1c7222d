#!/usr/bin/env bash
# Installs what moss-wasm's build and browser tests need, idempotently:
# Debian's rustc-web 1.96 (+ std sources, built with -Zbuild-std), lld-22 as
# the wasm linker, clang-22 + llvm-ar (ring's C parts in the browser peer,
# peer/), chromium + chromedriver, wasm-bindgen-cli at the exact
# version in wasm/Cargo.lock (cached under $WASM_TOOLS_ROOT), and the npm
# packages binaryen (wasm-opt) and playwright-core (wasm/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${WASM_TOOLS_ROOT:-/opt/wasm-tools}
export DEBIAN_FRONTEND=noninteractive

need=()
for p in rustc-web cargo-web rust-web-src lld-22 clang-22 chromium chromium-driver; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# node may come from elsewhere (NodeSource bundles npm): ask apt only if absent
command -v npm >/dev/null || need+=(nodejs npm)
command -v llvm-ar >/dev/null || need+=(llvm)
if [ ${#need[@]} -gt 0 ]; then
  echo "moss-wasm: apt-get install ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# wasm-bindgen-cli must match the wasm-bindgen crate exactly. Installed
# without --locked: its own lockfile pins a crate the registry may lack.
WBG=$(sed -n '/^name = "wasm-bindgen"$/{n;s/^version = "\(.*\)"$/\1/p}' Cargo.lock)
if ! "$TOOLS/bin/wasm-bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $WBG"; then
  echo "moss-wasm: cargo install wasm-bindgen-cli $WBG into $TOOLS (slow the first time)"
  # Built unoptimised: 300 s of CPU instead of about 450 (a fresh CI machine
  # builds it in the install phase, before every lane); it then takes
  # 1.7 s instead of 0.3 s on the 2.4 MB peer wasm (docs/CI.md, Session 8).
  RUSTC=/usr/bin/rustc CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=256 CARGO_PROFILE_RELEASE_LTO=false \
    /usr/bin/cargo install wasm-bindgen-cli --version "=$WBG" --root "$TOOLS" --force
fi

# npm packages, pinned by package-lock.json.
if [ ! -x node_modules/.bin/wasm-opt ] || [ ! -d node_modules/playwright-core ] \
  || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
