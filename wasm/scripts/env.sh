# Sourced by the moss-wasm scripts: Debian's rustc-web toolchain (not
# rustup's) for wasm32-unknown-unknown, std built from source, lld-22 as the
# linker, wasm-bindgen-cli from $WASM_TOOLS_ROOT, chromedriver for tests.
WASM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${WASM_TOOLS_ROOT:-/opt/wasm-tools}
export PATH=$TOOLS/bin:/usr/bin:$WASM_DIR/node_modules/.bin:$PATH
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO=/usr/bin/cargo
export CARGO_TARGET_DIR=$WASM_DIR/target
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-22
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER=/usr/bin/chromedriver
BUILD_STD=-Zbuild-std=std,panic_abort
/usr/bin/rustc -V | grep -q '^rustc 1\.96\.' || { echo "moss-wasm: need Debian rustc-web 1.96, have $(/usr/bin/rustc -V)" >&2; exit 1; }
# Path-independent output, so the committed explorer/pkg can be compared
# byte for byte with a build from any checkout.
export RUSTFLAGS="--remap-path-prefix=$(cd "$WASM_DIR/.." && pwd)=/moss --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo"
