"""LSP positions <-> character offsets, in the encoding the client negotiated.

Pure functions over the document text. Lines end at `\\n`, `\\r\\n` or `\\r`, as
the LSP specification defines them; a character past the end of its line
defaults back to the line's end (the specification's rule), while a line past
the end of the document is an error the client must hear about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LINE_BREAK = re.compile(r"\r\n|\r|\n")


class PositionError(ValueError):
    """A position that does not exist in the document."""


@dataclass(frozen=True)
class Point:
    line: int
    character: int


def line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in LINE_BREAK.finditer(text))]


def units(text: str, encoding: str) -> int:
    """Length of `text` in the encoding's code units."""
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    if encoding == "utf-16":
        return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
    return len(text)


def column_to_index(line_text: str, column: int, encoding: str) -> int:
    """Index into `line_text` of a column counted in code units (clamped to the line end)."""
    if encoding == "utf-32":
        return min(column, len(line_text))
    counted = 0
    for index, ch in enumerate(line_text):
        if counted >= column:
            return index
        counted += units(ch, encoding)
    return len(line_text)


def offset_at(text: str, point: Point, encoding: str, starts: list[int] | None = None) -> int:
    starts = starts if starts is not None else line_starts(text)
    if point.line < 0 or point.character < 0:
        raise PositionError(f"position {point.line}:{point.character} is negative")
    if point.line >= len(starts):
        raise PositionError(
            f"line {point.line} is out of range: the document has {len(starts)} line(s) (0-based)"
        )
    start = starts[point.line]
    end = starts[point.line + 1] if point.line + 1 < len(starts) else len(text)
    line_text = text[start:end].rstrip("\r\n")
    return start + column_to_index(line_text, point.character, encoding)


def point_at(text: str, offset: int, encoding: str, starts: list[int] | None = None) -> Point:
    starts = starts if starts is not None else line_starts(text)
    if not 0 <= offset <= len(text):
        raise PositionError(f"offset {offset} is outside the document (length {len(text)})")
    low, high = 0, len(starts) - 1
    while low < high:  # the last line start <= offset
        middle = (low + high + 1) // 2
        if starts[middle] <= offset:
            low = middle
        else:
            high = middle - 1
    return Point(low, units(text[starts[low] : offset], encoding))
