"""Turn captured terminal frames of `unmask preview` into SVG screenshots.

Usage: python ansi_svg.py FRAMES_DIR OUT_DIR COLUMNS

FRAMES_DIR holds tmux `capture-pane -e` dumps named in capture order. Two are
kept: the frame halfway through the denoising (the most balanced count of the
`░` glyph that marks unresolved positions) as preview-steps.svg, and the last
frame, with the diff, as preview-diff.svg.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from rich.console import Console
from rich.terminal_theme import MONOKAI
from rich.text import Text

UNRESOLVED = "░"


def svg(ansi: str, title: str, columns: int) -> str:
    console = Console(
        record=True, width=columns, force_terminal=True, color_system="truecolor", file=io.StringIO()
    )
    console.print(Text.from_ansi(ansi.rstrip("\n")), end="")
    return console.export_svg(title=title, theme=MONOKAI)


def halfway(frames: list[tuple[Path, str]]) -> tuple[Path, str]:
    counts = [(path, text, text.count(UNRESOLVED)) for path, text in frames]
    masked = [c for c in counts if c[2] > 0]
    if not masked:
        sys.exit("no frame shows an unresolved span (did the preview stream its steps?)")
    most = max(c[2] for c in masked)
    path, text, _ = min(masked, key=lambda c: abs(c[2] - 0.45 * most))
    return path, text


def main(frames_dir: str, out_dir: str, columns: str) -> None:
    paths = sorted(Path(frames_dir).glob("*.ansi"))
    frames = [(p, p.read_text(errors="replace")) for p in paths]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    middle, text = halfway(frames)
    (out / "preview-steps.svg").write_text(
        svg(text, "unmask preview · denoising", int(columns)), encoding="utf-8"
    )
    last, final = frames[-1]
    (out / "preview-diff.svg").write_text(svg(final, "unmask preview · diff", int(columns)), encoding="utf-8")
    print(f"{len(frames)} frames; kept {middle.name} and {last.name}; wrote {out}/preview-*.svg")


if __name__ == "__main__":
    main(*sys.argv[1:4])
