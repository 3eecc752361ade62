"""Pure rendering for `unmask preview`: a denoising step, a unified diff, a summary line.

Every function here takes plain values and returns a rich renderable; nothing
reads files, loads models or writes to a terminal, so each can be snapshot-
tested by rendering to text.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from rich.text import Text

MASK_GLYPH = "░"
CONTEXT_LINES = 3

# Styles, named once so the terminal look can change in one place.
HEADER_STYLE = "bold"
CONTEXT_STYLE = "bright_black"
BLOCK_STYLE = ""  # resolved text reads as ordinary code
MASK_STYLE = "dim"
GUTTER_CONTEXT = ("│ ", "bright_black")
GUTTER_BLOCK = ("┃ ", "yellow")


class SegmentLike(Protocol):
    """What `diffusion.engine.Segment` offers; named structurally so rendering needs no torch."""

    text: str
    resolved: bool
    tokens: int


@dataclass(frozen=True)
class StepState:
    """One frame of the live preview: the block as it stands after `step` of `steps`."""

    path: str
    mode: str
    step: int
    steps: int
    before: str  # a few whole lines of context, then the region's own line up to the region
    segments: tuple[SegmentLike, ...]
    after: str  # the rest of the region's last line, then a few whole lines of context


def context_around(text: str, start: int, end: int, lines: int = CONTEXT_LINES) -> tuple[str, str]:
    """The text shown around `text[start:end]`: `lines` whole lines either side, plus the partial
    lines the region sits in."""
    begin = text.rfind("\n", 0, start) + 1
    for _ in range(lines):
        if begin == 0:
            break
        begin = text.rfind("\n", 0, begin - 1) + 1
    stop = text.find("\n", end)
    for _ in range(lines):
        if stop == -1:
            break
        stop = text.find("\n", stop + 1)
    return text[begin:start], text[end:] if stop == -1 else text[end:stop]


def block_text(segments: Sequence[SegmentLike], glyph: str = MASK_GLYPH) -> Text:
    """Resolved text as is, and one dim glyph per still-masked token."""
    out = Text()
    for segment in segments:
        if segment.resolved:
            out.append(_display(segment.text), BLOCK_STYLE)
        else:
            out.append(glyph * segment.tokens, MASK_STYLE)
    return out


def render_step(state: StepState) -> Text:
    """Header `path · mode · step i/n`, then context and block, each line behind a gutter that
    marks the lines the block touches."""
    body = Text()
    body.append(_display(state.before), CONTEXT_STYLE)
    block_start = len(body)
    body.append_text(block_text(state.segments))
    block_end = len(body)
    body.append(_display(state.after), CONTEXT_STYLE)

    out = Text()
    out.append(f"{state.path} · {state.mode} · step {state.step}/{state.steps}", HEADER_STYLE)
    offset = 0
    for line in body.split("\n", allow_blank=True):
        line_end = offset + len(line)
        # A line belongs to the block when it overlaps it, or holds an empty block's insertion point.
        touches = (offset < block_end and line_end > block_start) or offset <= block_start <= line_end
        gutter, style = GUTTER_BLOCK if touches else GUTTER_CONTEXT
        out.append("\n")
        out.append(gutter, style)
        out.append_text(line)
        offset = line_end + 1
    return out


def render_diff(old_text: str, new_text: str, path: str) -> Text:
    """A unified diff (`a/path` → `b/path`, three lines of context) with git's colours.

    Empty when nothing changed."""
    old_lines, new_lines = _lines(old_text), _lines(new_text)
    if old_lines == new_lines:
        old_lines, new_lines = _newline_marked(old_text), _newline_marked(new_text)
    out = Text()
    diff = difflib.unified_diff(old_lines, new_lines, f"a/{path}", f"b/{path}", lineterm="")
    for number, line in enumerate(diff):
        if number < 2:  # the file headers; by position, since a code line may begin with "---"
            style = "bold"
        elif line.startswith("@@"):
            style = "cyan"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        else:
            style = ""
        if number:
            out.append("\n")
        out.append(line, style)
    return out


def render_summary(steps: int, forwards: int | None, seconds: float, tokens: int) -> Text:
    """`n steps · f forwards · s seconds · r tokens/s`; forwards left out when unknown."""
    parts = [f"{steps} steps"]
    if forwards is not None:
        parts.append(f"{forwards} forwards")
    parts.append(f"{seconds:.2f} s")
    rate = tokens / seconds if seconds > 0 else 0.0
    parts.append(f"{tokens} tokens · {rate:.1f} tokens/s")
    return Text(" · ".join(parts), "bold")


def _lines(text: str) -> list[str]:
    """Lines split on newlines only (as editors count them), without their endings."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [_display(line.removesuffix("\r")) for line in lines]


def _newline_marked(text: str) -> list[str]:
    """Lines that keep their ending visible: used only when the texts differ in line endings alone."""
    *ended, last = text.split("\n")
    marked = [line.replace("\r", "␍") + "␊" for line in ended]
    return [*marked, last.replace("\r", "␍")] if last else marked


def _display(text: str) -> str:
    # A bare carriage return would move the terminal's cursor and overwrite the line.
    return text.replace("\r\n", "\n").replace("\r", "␍")
