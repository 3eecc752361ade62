"""`unmask infill --jsonl`: the scriptable entry point for evaluation.

Reads `{"task_id", "prefix", "suffix"[, "max_tokens"]}` lines on stdin and
writes `{"task_id", "completion", "steps", "seconds"}` lines on stdout, one
per input, in order. A bad line gets an `error` field instead of stopping
the run.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from diffusion.engine import Engine
from diffusion.evaluation.tasks import is_utf8


def complete(engine: Engine, task: dict[str, Any], default_tokens: int) -> dict[str, Any]:
    began = time.perf_counter()
    tokens = task.get("max_tokens") or default_tokens
    *_, last = engine.infill(task["prefix"], task["suffix"], [tokens])
    assert last is not None and last.final
    return {
        "task_id": task["task_id"],
        "completion": last.best.text,
        "steps": last.step,
        "seconds": round(time.perf_counter() - began, 4),
    }


def parse_task(line: str) -> dict[str, Any]:
    try:
        task = json.loads(line)
    except RecursionError:  # json's decoder recurses per bracket: a line of 3,000 `[` ends it
        raise ValueError("the line nests too deeply to be a task") from None
    if not isinstance(task, dict):
        raise ValueError("each line must be a JSON object")
    missing = [k for k in ("task_id", "prefix", "suffix") if k not in task]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if not isinstance(task["prefix"], str) or not isinstance(task["suffix"], str):
        raise ValueError("prefix and suffix must be strings")
    if not is_utf8(task["prefix"]) or not is_utf8(task["suffix"]):
        raise ValueError(
            "prefix and suffix must be valid Unicode text (the line held bytes that are not UTF-8, or an escaped lone surrogate)"
        )
    tokens = task.get("max_tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1):
        raise ValueError(f"max_tokens must be a positive integer, not {json.dumps(tokens)}")
    return task


def task_id_of(line: str) -> Any:
    """The task_id of a line that parsed but failed a check, so its error row can be matched up."""
    try:
        task = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return task.get("task_id") if isinstance(task, dict) else None


def process(engine: Engine, lines: Iterable[str], default_tokens: int) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            task = parse_task(line)
        except ValueError as error:
            yield {"task_id": task_id_of(line), "line": number, "error": f"line {number}: {error}"}
            continue
        yield complete(engine, task, default_tokens)


def run_infill_jsonl(
    args: argparse.Namespace, stdin: TextIO | None = None, stdout: TextIO = sys.stdout
) -> int:
    engine = Engine.load(args.model, args.device, args.dtype)
    default_tokens = args.max_tokens or engine.settings.max_span
    # Bytes that are not UTF-8 become lone surrogates (not an exception that ends the run);
    # the line holding them is then answered with an error, and the next line goes on.
    if stdin is None:
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
    for result in process(engine, stdin, default_tokens):
        stdout.write(json.dumps(result) + "\n")
        stdout.flush()
    return 0
