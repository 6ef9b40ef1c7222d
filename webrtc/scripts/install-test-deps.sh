#!/usr/bin/env bash
# Installs what moss-webrtc builds against, idempotently: OpenSSL's
# headers and pkg-config (str0m's `openssl` crypto backend: DTLS, SRTP
# keys, certificates). Every crate that depends on the engine needs it.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for p in libssl-dev pkg-config; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "moss-webrtc: apt-get install ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
