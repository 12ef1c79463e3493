#!/usr/bin/env bash
# The GPU check (issue 13): ASTRA CUDA 3D parallel/cone against the torch backends (agreement, dot
# tests), projector throughput at 256^3 / 360 views, and PiGDM at 128^3 with 50 NFE in fp32 and bf16.
# Writes gpu_check.json and gpu_check.md to OUT_DIR (default benchmarks/results/gpu/); meant to
# finish in under 5 minutes on one GPU. Without a GPU it refuses with one line and runs nothing.
#
# Usage: bash scripts/gpu_check.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" -m tomodiff.cli selftest --gpu --out "${1:-benchmarks/results/gpu}"
