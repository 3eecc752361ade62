"""`unmask eval`: score a model on HumanEval-Infilling (tests run in a sandbox) or on a jsonl file.

The `auto` length policy takes its budgets from the server's own defaults
(`Settings.single_line_tokens`, `Settings.multi_line_tokens`), so the score
is the one an editor user gets.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import MofNCompleteColumn, TextColumn

from diffusion.evaluation.runner import (
    LengthPolicy,
    TaskResult,
    engine_completer,
    pass_at_1,
    run_tests,
    score_text,
    text_summary,
)
from diffusion.evaluation.sandbox import Limits, Verdict
from diffusion.evaluation.tasks import InfillTask, load_humaneval, parse_jsonl_tasks, spread, text_lines
from diffusion.progress import progress
from lsp_server.protocol import Settings


def policy_for(args: argparse.Namespace, settings: Settings) -> LengthPolicy:
    single = getattr(args, "subset", "multi-line") == "single-line"
    budget = settings.single_line_tokens if single else settings.multi_line_tokens
    mode = getattr(args, "length", "auto")
    if mode == "fixed":
        return LengthPolicy("fixed", args.k or budget)
    if mode == "oracle":
        return LengthPolicy("oracle", 0)
    return LengthPolicy("auto", args.k or budget, one_line=single)


def progress_bar(console: Console, measure: str):
    """The eval bar; `measure` names the running percentage it shows (pass, exact)."""
    return progress(
        console,
        "eval",
        MofNCompleteColumn(),
        TextColumn(measure + " {task.fields[rate]:.1f}%"),
        formats={"rate": measure + " {:.1f}%"},
    )


def result_row(result: TaskResult) -> str:
    row = {"task_id": result.task_id, "completion": result.completion, "status": result.verdict.status}
    return json.dumps({**row, "detail": result.verdict.detail, "steps": result.steps}) + "\n"


def replace_rows(path: Path, results: list[TaskResult]) -> None:
    """`path` holding exactly `results`' rows, written beside it and renamed over it: an
    interruption leaves the old file or the new one, never an empty one."""
    temporary = path.with_name(f".{path.name}.resume")
    with temporary.open("w", encoding="utf-8") as file:
        file.writelines(result_row(r) for r in results)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class ResumeError(ValueError):
    """A --resume file that is not what an earlier run wrote; it is left as it is."""


def read_results(path: Path) -> list[TaskResult]:
    """The tasks an earlier run wrote to `path` (none if it does not exist). Only the last line
    may be unreadable (an interruption cut it off; it is scored again): any other line that is
    not a row of ours means the file is something else, and ResumeError keeps it from being
    rewritten."""
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ResumeError(
            f"{path} is not a file an eval wrote (it is not UTF-8 text); not touching it"
        ) from None
    results = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            verdict = Verdict(row["status"], row.get("detail", ""))
            results.append(TaskResult(row["task_id"], row["completion"], verdict, row.get("steps", 0), 0.0))
        except (ValueError, KeyError, TypeError):
            if number < len(lines):
                raise ResumeError(
                    f"{path} line {number} is not a row an eval wrote; not touching the file "
                    "(name another --output, or drop --resume to overwrite it)"
                ) from None
    return results


def tracked(
    results: Iterator[TaskResult],
    total: int,
    console: Console,
    output: TextIO | None,
    done: list[TaskResult] | None = None,
) -> list[TaskResult]:
    """Collect `results` after those `done` already, under a progress bar, writing each new
    one to `output` as it arrives.

    Written as they come so that an interrupted run keeps what it scored.
    """
    done = list(done or [])
    with progress_bar(console, "pass") as bar:
        task = bar.add_task("eval", total=total, completed=len(done), rate=pass_at_1(done))
        for result in results:
            done.append(result)
            if output is not None:
                output.write(result_row(result))
                output.flush()
            bar.update(task, advance=1, rate=pass_at_1(done))
    return done


def load_engine(args: argparse.Namespace, tasks: list[InfillTask], policy: LengthPolicy):
    from diffusion.engine import Engine

    engine = Engine.load(args.model, args.device, args.dtype)
    from diffusion.engine import fast_path_changes

    changes = fast_path_changes(
        args.cache_refresh, args.cache_margin, args.no_cuda_graphs, args.fused_confidence, args.null_run_floor
    )
    if getattr(args, "no_cache", False):
        changes["cache_refresh"] = 0
    if getattr(args, "tau", None) is not None:
        changes["tau"] = args.tau
    if policy.mode == "oracle" and tasks:
        # The true length may exceed the trained span budget; the oracle gets it anyway.
        longest = max(engine.count_tokens(t.middle) for t in tasks)
        changes["max_span"] = max(engine.settings.max_span, longest)
    return engine.with_settings(**changes) if changes else engine


def output_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with --output / --resume, found before the model loads."""
    if args.resume and args.output is None:
        return "--resume needs --output FILE (the file an earlier run wrote)"
    if args.output is not None:
        if args.output.is_dir():
            return f"--output {args.output} is a directory; name a file"
        if not args.output.parent.is_dir():
            return f"--output {args.output}: the folder {args.output.parent} does not exist"
        if args.resume:
            try:
                read_results(args.output)
            except ResumeError as error:
                return f"--resume: {error}"
    return None


def run_humaneval(args: argparse.Namespace, out: TextIO) -> int:
    if problem := output_problem(args):
        print(f"unmask eval: {problem}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    tasks = spread(load_humaneval(args.subset), args.limit)
    policy = policy_for(args, Settings())
    engine = load_engine(args, tasks, policy)
    limits = Limits(seconds=args.timeout, memory_bytes=args.memory_mb << 20)
    began = time.perf_counter()
    wanted = {t.task_id for t in tasks}
    previous = read_results(args.output) if args.output and args.resume else []
    kept = [r for r in previous if r.task_id in wanted]
    scored_ids = {r.task_id for r in kept}
    left = [t for t in tasks if t.task_id not in scored_ids]
    if kept:
        console.print(
            f"resuming: {len(kept)} tasks kept from {args.output}, {len(left)} to score",
            highlight=False,
            soft_wrap=True,
        )
    scored = run_tests(left, engine_completer(engine, policy), limits, jobs=args.jobs)
    if args.output and args.resume:
        # Every row read stays, also those of tasks outside this run (another --limit); only
        # a line cut off by the interruption goes. Replaced in one step, then appended to.
        replace_rows(args.output, previous)
    mode = "a" if args.resume else "w"
    with args.output.open(mode, encoding="utf-8") if args.output else contextlib.nullcontext() as output:
        results = tracked(scored, len(tasks), console, output, kept)
    seconds = time.perf_counter() - began
    statuses = {
        s: sum(r.verdict.status == s for r in results)
        for s in ("passed", "failed", "timeout", "memory", "refused")
    }
    summary = {
        "benchmark": "humaneval-infilling",
        "subset": args.subset,
        "length": policy.mode,
        "k": policy.tokens if policy.mode != "oracle" else None,
        "cache": not args.no_cache and engine.settings.cache_refresh > 0,
        "cache_refresh": engine.settings.cache_refresh,
        "cache_margin": engine.settings.cache_margin,
        "tau": engine.settings.tau,
        "null_run_floor": engine.settings.null_run_floor,
        "tasks": len(results),
        "pass_at_1": round(pass_at_1(results), 2),
        "statuses": statuses,
        "mean_steps": round(sum(r.steps for r in results) / max(1, len(results)), 2),
        "seconds": round(seconds, 1),
        "model": args.model or "built-in",
    }
    if args.json:
        out.write(json.dumps(summary) + "\n")
    else:
        out.write(
            f"HumanEval-Infilling {args.subset}, length {policy.mode}: pass@1 {summary['pass_at_1']:.2f}% "
            f"({statuses['passed']}/{len(results)}) in {seconds:.0f} s; "
            + ", ".join(f"{count} {status}" for status, count in statuses.items() if count)
            + "\n"
        )
    return 0


def run_jsonl(args: argparse.Namespace, out: TextIO) -> int:
    try:
        tasks = parse_jsonl_tasks(text_lines(args.file.read_bytes(), str(args.file)), str(args.file))
        if not tasks:
            raise ValueError(f"{args.file} holds no tasks")
    except OSError as error:
        print(f"unmask eval jsonl: {args.file}: {error.strerror or error}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"unmask eval jsonl: {error}", file=sys.stderr)
        return 2
    policy = LengthPolicy("fixed", args.k or Settings().multi_line_tokens)
    engine = load_engine(args, tasks, policy)
    console = Console(stderr=True)
    results = []
    with progress_bar(console, "exact") as bar:
        task = bar.add_task("eval", total=len(tasks), rate=0.0)
        for result in score_text(tasks, engine_completer(engine, policy)):
            results.append(result)
            bar.update(task, advance=1, rate=text_summary(results)["exact_match"])
    summary = {k: round(v, 2) for k, v in text_summary(results).items()}
    if args.json:
        out.write(json.dumps(summary) + "\n")
    else:
        out.write(
            f"{summary['tasks']} tasks: exact match {summary['exact_match']:.2f}%, "
            f"parses {summary['parse_rate']:.2f}%, edit similarity {summary['edit_similarity']:.2f}%\n"
        )
    return 0


def run_eval(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    return run_humaneval(args, out) if args.benchmark == "humaneval-infilling" else run_jsonl(args, out)
