#!/usr/bin/env bash
# Screenshots of `unmask preview` from a real run: the preview in tmux with the real model,
# the pane captured (ANSI colours) many times while the block denoises, then two frames kept
# and turned into SVG with rich: one halfway through the denoising, one with the final diff.
#
#   editor_clients/screenshots/preview.sh [FILE:LINE] [preview options...]
#
# Defaults: infill at the empty body line of a small file made here. Writes
# preview-steps.svg and preview-diff.svg beside this script (OUT_DIR=... elsewhere).
# UNMASK_TEST_MODEL=FOLDER previews with that model instead of the built-in one. Needs tmux.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT_DIR="$(realpath -m "${OUT_DIR:-$HERE}")"
COLS=100
ROWS=42

command -v tmux >/dev/null || { echo "tmux is needed (apt-get install -y tmux)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$REPO/.venv/bin/activate"

WORK="$(mktemp -d)"
SOCKET="unmask-preview-shot-$$"
cleanup() { tmux -L "$SOCKET" kill-server 2>/dev/null || true; [ -n "${KEEP_FRAMES:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/frames"
[ -z "${KEEP_FRAMES:-}" ] || echo "frames kept in $WORK"

if [ $# -gt 0 ]; then
  TARGET="$1"; shift
else # a small file with a body line left to fill (line 18)
  cat > "$WORK/files.py" <<'PY'
import os


def average(values):
    """Return the mean of the values, or 0.0 when there are none."""
    if not values:
        return 0.0
    total = sum(values)
    return total / len(values)


def list_python_files(root):
    """Return the paths of the .py files under root."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):

    return found
PY
  TARGET="files.py:18"
fi
MODEL=()
[ -z "${UNMASK_TEST_MODEL:-}" ] || MODEL=(--model "$UNMASK_TEST_MODEL")

tmux -L "$SOCKET" -f /dev/null new-session -d -s shot -x "$COLS" -y "$ROWS" -e "PATH=$PATH" \
  "cd '$WORK' && TERM=xterm-256color COLORTERM=truecolor unmask preview $(printf '%q ' "$TARGET" "$@" "${MODEL[@]}")\
   ; touch '$WORK/done'; sleep 600"

n=0
while [ ! -e "$WORK/done" ] && [ "$n" -lt 20000 ]; do
  tmux -L "$SOCKET" capture-pane -e -p -t shot > "$WORK/frames/$(printf %05d $n).ansi"
  n=$((n + 1))
  sleep 0.02
done
[ -e "$WORK/done" ] || { echo "the preview did not finish" >&2; exit 1; }
sleep 0.2
tmux -L "$SOCKET" capture-pane -e -p -t shot > "$WORK/frames/$(printf %05d $n).ansi"

python "$HERE/ansi_svg.py" "$WORK/frames" "$OUT_DIR" "$COLS"
