"""Infill tasks as immutable values, read from the bundled HumanEval-Infilling data or a jsonl file.

HumanEval-Infilling (Bavarian et al., 2022, "Efficient Training of Language
Models to Fill in the Middle"; MIT licence, OpenAI) is stored in
`data/humaneval-infilling/` so that nothing is downloaded at run time.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).parent / "data" / "humaneval-infilling"
SUBSETS = {
    "single-line": "HumanEval-SingleLineInfilling.jsonl.gz",
    "multi-line": "HumanEval-MultiLineInfilling.jsonl.gz",
}


@dataclass(frozen=True)
class InfillTask:
    task_id: str
    prefix: str
    suffix: str
    middle: str  # the reference middle
    test: str = ""  # HumanEval: the `check` function
    entry_point: str = ""

    def program(self, completion: str) -> str:
        """The whole program to execute: the completed code, its tests, and the call of `check`."""
        return f"{self.prefix}{completion}{self.suffix}\n{self.test}\n\ncheck({self.entry_point})\n"


def load_humaneval(subset: str, data: Path = DATA) -> list[InfillTask]:
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; choose from {', '.join(SUBSETS)}")
    with gzip.open(data / SUBSETS[subset], "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [
        InfillTask(
            task_id=row["task_id"],
            prefix=row["prompt"],
            suffix=row["suffix"],
            middle=row["canonical_solution"],
            test=row["test"],
            entry_point=row["entry_point"],
        )
        for row in rows
    ]


def spread(tasks: Sequence[InfillTask], limit: int | None) -> list[InfillTask]:
    """`limit` tasks evenly spaced over the set (every problem represented), in order.

    The multi-line file lists each problem's spans together, so its first N
    rows would cover only the first few problems.
    """
    if limit is None or limit >= len(tasks):
        return list(tasks)
    if limit <= 0:
        return []
    return [tasks[i * len(tasks) // limit] for i in range(limit)]


def is_utf8(text: str) -> bool:
    """False for text holding lone surrogates (JSON's "\\ud800"), which no tokenizer takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_lines(data: bytes, source: str) -> list[str]:
    """The lines of a UTF-8 file; one that is not names its line and byte, as a ValueError."""
    lines = []
    for number, raw in enumerate(data.splitlines(keepends=True), 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{source}:{number}: not UTF-8 text (byte {error.start + 1} of the line)"
            ) from None
    return lines


def parse_jsonl_tasks(lines: Iterable[str], source: str = "<jsonl>") -> list[InfillTask]:
    """Tasks `{task_id, prefix, suffix, middle}`, one JSON object per line; errors name the line."""
    tasks = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}:{number}: not JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{source}:{number}: expected a JSON object")
        missing = [
            key for key in ("task_id", "prefix", "suffix", "middle") if not isinstance(row.get(key), str)
        ]
        if missing:
            raise ValueError(f"{source}:{number}: needs string fields {', '.join(missing)}")
        if unencodable := [key for key in ("prefix", "suffix", "middle") if not is_utf8(row[key])]:
            raise ValueError(f"{source}:{number}: {', '.join(unencodable)} is not valid Unicode text")
        tasks.append(InfillTask(row["task_id"], row["prefix"], row["suffix"], row["middle"]))
    return tasks
