# Sourced by the browser peer's scripts: the moss-wasm toolchain
# (../../scripts/env.sh) plus a C compiler for wasm32, since ring's C parts
# are compiled for the browser too (clang targets wasm32, the host gcc not).
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/env.sh"
PEER_DIR=$WASM_DIR/peer
export CC_wasm32_unknown_unknown=clang-22 AR_wasm32_unknown_unknown=llvm-ar
