#!/usr/bin/env bash
# Install (if needed) and run the default test suite: offline, tiny models, a few minutes on 2 cores.
# Pass --slow to also run the tests on the real embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "${1:-}" = "--slow" ]; then shift; exec python -m pytest -m "slow or not slow" "$@"; fi
exec python -m pytest "$@"
