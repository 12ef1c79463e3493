#!/usr/bin/env bash
# Create .venv if absent (reuse it if present) and install tomodiff with its test extras.
# Idempotent and fast on a second run: pip runs again only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/system-deps.sh

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)" >&2
    "$PYTHON" -m venv .venv
fi

# torch pinned first: on these machines this is a local CPU build; elsewhere pip takes PyPI's
# build (CUDA on Linux). pyproject.toml itself only asks for torch>=2.2.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "setup: installing torch" >&2
    .venv/bin/pip install -q "torch==${TOMODIFF_TORCH_VERSION:-2.13.0}"
fi

stamp=.venv/.tomodiff-setup-stamp
want="$(sha256sum pyproject.toml | cut -d' ' -f1) ${TOMODIFF_EXTRAS:-dev}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing tomodiff[${TOMODIFF_EXTRAS:-dev}] (editable)" >&2
    .venv/bin/pip install -q -e ".[${TOMODIFF_EXTRAS:-dev}]"
    echo "$want" > "$stamp"
fi
echo "setup: ready ($(.venv/bin/tomodiff --version))" >&2
