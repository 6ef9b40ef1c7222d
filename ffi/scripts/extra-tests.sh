#!/usr/bin/env bash
# The Python package's tests: builds libmoss.so if needed (cargo decides), installs
# ./ffi/python into a fresh virtual environment (system packages visible,
# so an installed setuptools/pytest is reused; pytest is installed if
# missing) and runs pytest from the repository root against the installed
# package, which finds target/debug/libmoss.so by itself.
set -euo pipefail
cd "$(dirname "$0")/../.."

# MOSS_PREBUILT=1: scripts/test-all.sh's workspace build made it (a
# build of this package alone would resolve other features and rebuild).
[ "${MOSS_PREBUILT:-}" = 1 ] || cargo build -q -p moss-ffi

venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv --system-site-packages "$venv"
py=$venv/bin/python
"$py" -c 'import pytest' 2>/dev/null || "$py" -m pip install -q pytest
"$py" -m pip install -q ./ffi/python
# Not the source tree: the tests must import the installed package.
env -u MOSS_LIB -u PYTHONPATH "$py" -m pytest -q -p no:cacheprovider ffi/python/tests
