"""Progress for long work (training, evaluation) on a terminal and in a log file.

On a terminal this is rich's live bar. When stderr is redirected, rich's bar
stays silent until the end, so an hour-long run under `nohup` or in CI would
show nothing; there the same calls print one plain line at most every
`every` seconds, and one when the work is done.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class LineProgress:
    """The subset of `rich.progress.Progress` the project uses, printed as lines."""

    def __init__(
        self, console: Console, label: str, every: float = 30.0, formats: Mapping[str, str] | None = None
    ):
        self.console = console
        self.label = label
        self.every = every
        self.formats = dict(formats or {})  # field -> how the bar words it, e.g. "pass {:.1f}%"
        self.started = time.monotonic()
        self.printed = float("-inf")
        self.total = 0.0
        self.completed = 0.0
        self.fields: dict[str, Any] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self._print()

    def add_task(self, description: str, total: float, completed: float = 0, **fields: Any) -> int:
        self.total, self.completed, self.fields = total, completed, fields
        return 0

    def update(self, task: int, advance: float = 0, completed: float | None = None, **fields: Any) -> None:
        self.completed = completed if completed is not None else self.completed + advance
        self.fields.update(fields)
        now = time.monotonic()
        if now - self.printed >= self.every:
            self._print(now)

    def _print(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.printed = now
        values = " ".join(self._worded(k, v) for k, v in self.fields.items())
        elapsed = int(now - self.started)
        self.console.print(
            f"{self.label} {self.completed:g}/{self.total:g} {values} {elapsed // 60}:{elapsed % 60:02d} elapsed",
            highlight=False,
            soft_wrap=True,
        )

    def _worded(self, field: str, value: Any) -> str:
        if isinstance(value, float) and math.isnan(value):  # not measured yet
            return f"{self.formats.get(field, field + ' {}').split(' ')[0]} -"
        if field in self.formats:
            return self.formats[field].format(value)
        return f"{field} {_short(value)}"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def progress(
    console: Console, label: str, *columns: ProgressColumn, formats: Mapping[str, str] | None = None
) -> Progress | LineProgress:
    """A bar labelled `label` with `columns` between the bar and the times, or lines off a
    terminal, where `formats` words each field as the columns do (`{"rate": "pass {:.1f}%"}`)."""
    if not console.is_terminal:
        return LineProgress(console, label, formats=formats)
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        *columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )
