"""`unmask bench`: threshold decoding against one token per step, on fixed inputs.

For each block length: seconds to the first preview (the first denoising
step), seconds to the final block, forward passes, and committed tokens per
second, for three decoders of the same model on the same prefix and suffix:
confidence-threshold decoding with the context cache, the same without it,
and the one-token-per-step typewriter. Medians over repeats; `--json` prints
one row per (mode, block) with the ratios against the typewriter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from diffusion.canvas import prefix_window, suffix_window
from diffusion.engine import Engine
from diffusion.schedule import one_per_step

BENCH_SOURCE = Path(__file__).parent / "bench_input.py"
MODES = ("threshold", "threshold_nocache", "one_per_step")


@dataclass(frozen=True)
class BenchRow:
    mode: str
    block_tokens: int
    context_tokens: int
    forwards: int
    seconds_to_first_preview: float
    seconds_to_final: float
    tokens_per_second: float
    forwards_vs_one_per_step: float | None = None
    speedup_vs_one_per_step: float | None = None


def bench_input() -> tuple[str, str]:
    """A fixed prefix and suffix: a function body cut out of a shipped source file."""
    text = BENCH_SOURCE.read_text(encoding="utf-8")
    cut = text.index("    return sorted(")
    return text[:cut] + "    ", text[cut:]


def decoder(engine: Engine, mode: str) -> tuple[Engine, object]:
    if mode == "threshold":
        return engine, None
    if mode == "threshold_nocache":
        return engine.with_settings(cache_refresh=0), None
    return engine.with_settings(cache_refresh=0), one_per_step()


def measure(engine: Engine, schedule, prefix: str, suffix: str, block: int, repeats: int):
    firsts, finals, forwards = [], [], 0
    for repeat in range(repeats):
        torch.manual_seed(repeat)
        began = time.perf_counter()
        first = None
        for snapshot in engine.infill(prefix, suffix, [block], schedule):
            if snapshot.step == 1:
                first = time.perf_counter() - began
            forwards = snapshot.forwards
        finals.append(time.perf_counter() - began)
        firsts.append(first if first is not None else finals[-1])
    return forwards, statistics.median(firsts), statistics.median(finals)


def run_rows(engine: Engine, blocks: list[int], repeats: int) -> list[BenchRow]:
    prefix, suffix = bench_input()
    settings = engine.settings
    context = len(prefix_window(engine.codec, prefix, settings.max_prefix))
    context += len(suffix_window(engine.codec, suffix, settings.max_suffix))
    for _ in engine.infill(prefix, suffix, [8]):  # warm-up: first-call allocations
        pass
    rows: list[BenchRow] = []
    for block in blocks:
        measured = {}
        for mode in MODES:
            variant, schedule = decoder(engine, mode)
            forwards, first, final = measure(variant, schedule, prefix, suffix, block, repeats)
            measured[mode] = BenchRow(
                mode, block, context, forwards, round(first, 4), round(final, 4), round(block / final, 1)
            )
        base = measured["one_per_step"]
        for mode in MODES[:2]:
            row = measured[mode]
            rows.append(
                BenchRow(
                    **{
                        **asdict(row),
                        "forwards_vs_one_per_step": round(row.forwards / base.forwards, 3),
                        "speedup_vs_one_per_step": round(base.seconds_to_final / row.seconds_to_final, 2),
                    }
                )
            )
        rows.append(base)
    return rows


def run_bench(args: argparse.Namespace) -> int:
    engine = Engine.load(args.model, args.device)
    if args.context:
        engine = engine.with_settings(max_prefix=args.context * 3 // 4, max_suffix=args.context // 4)
    blocks = [min(int(b), engine.settings.max_span) for b in args.blocks.split(",")]
    rows = run_rows(engine, blocks, args.repeats)
    if args.json:
        for row in rows:
            print(json.dumps({"device": str(engine.device), **asdict(row)}))
        return 0
    from rich.console import Console
    from rich.table import Table

    parameters = engine.checkpoint.model.num_parameters()
    table = Table(title=f"unmask bench on {engine.device} ({parameters:,} parameters)")
    for column in (
        "mode",
        "block",
        "context",
        "forwards",
        "first preview s",
        "final s",
        "tokens/s",
        "forwards ratio",
        "speed-up",
    ):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r.mode,
            str(r.block_tokens),
            str(r.context_tokens),
            str(r.forwards),
            f"{r.seconds_to_first_preview:.3f}",
            f"{r.seconds_to_final:.3f}",
            f"{r.tokens_per_second:.0f}",
            "" if r.forwards_vs_one_per_step is None else f"{r.forwards_vs_one_per_step:.2f}",
            "" if r.speedup_vs_one_per_step is None else f"{r.speedup_vs_one_per_step:.1f}x",
        )
    Console().print(table)
    return 0
