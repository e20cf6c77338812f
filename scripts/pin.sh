#!/usr/bin/env bash
# Write scripts/constraints.txt from what .venv holds now: the exact versions that
# scripts/setup.sh installs, so that a clean clone (and CI) gets the environment the
# tests passed in, not whatever was released since. Run it after `scripts/setup.sh`
# with UNPINNED=1 (the newest versions pip resolves) once the tests pass on them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=scripts/constraints.txt
{
  echo "# The versions scripts/setup.sh installs (pip -c), written by scripts/pin.sh from a"
  echo "# .venv whose tests passed; autotweak's own requirements (pyproject.toml) stay ranges."
  echo "# A local version label (torch's +cpu) is left off: it pins PyTorch's CPU and PyPI builds alike."
  .venv/bin/python -m pip --disable-pip-version-check freeze --exclude-editable \
    | grep -v '^#' | sed -E 's/^([A-Za-z0-9_.-]+==[^+]+)\+.*$/\1/' | LC_ALL=C sort -f
} > "$out"
echo "wrote $out ($(grep -vc '^#' "$out") packages)"
