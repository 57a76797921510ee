#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh machine, then runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "warning: could not install chromium; browser tests will fail" >&2
fi
python3 -m pip install -q -e ".[test]"
python3 -m pytest -q -p no:cacheprovider "$@"
