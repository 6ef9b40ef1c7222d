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
# cargo for the wasm32 builds, with trim-paths: cargo remaps every source
# path itself, so nothing in the output (flags, metadata hashes) depends on
# where the checkout lives, and a build in any clone is byte-identical.
wasm_cargo() {
  CARGO_PROFILE_RELEASE_TRIM_PATHS=all CARGO_PROFILE_DEV_TRIM_PATHS=all \
    /usr/bin/cargo "$1" -Ztrim-paths "${@:2}"
}

# A digest of everything the explorer/pkg build reads from this repository:
# the telemetry and moss-wasm sources, their manifests and lockfiles, the
# build scripts and the root workspace's dependency table. build.sh stores
# it beside the pkg; the tests compare it with the checkout's, which tells
# a stale pkg apart from a toolchain that emits different bytes.
wasm_inputs_digest() {
  local root; root=$(cd "$WASM_DIR/.." && pwd)
  (
    cd "$root"
    find telemetry/src telemetry/Cargo.toml wasm/src wasm/Cargo.toml wasm/Cargo.lock \
      wasm/package-lock.json wasm/scripts/build.sh wasm/scripts/env.sh -type f -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
    sed -n '/^\[workspace\.dependencies\]/,/^\[/p' Cargo.toml | sha256sum
  ) | sha256sum | cut -d' ' -f1
}
