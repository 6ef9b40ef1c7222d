#!/usr/bin/env bash
# Installs the third-party components moss-discovery's integration tests run
# against: the `bittorrent-tracker` npm package (a real UDP + HTTP BitTorrent
# tracker), into discovery/tests/js/node_modules, pinned by package-lock.json.
#
# --ignore-scripts: bittorrent-tracker's WebRTC client pulls in
# node-datachannel, whose install script downloads a prebuilt native binary.
# The tests only use the tracker *server*, which never loads it, so no
# install script is needed (and none can download anything here).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../tests/js"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-test-deps: node and npm are required (e.g. apt-get install -y nodejs npm)" >&2
  exit 1
fi
npm ci --ignore-scripts --no-audit --no-fund
node -e "import('bittorrent-tracker/server').then(() => console.log('bittorrent-tracker server: ok'))"
