"""`unmask bench`: diffusion decoding against the typewriter and autoregressive baselines, in one run.

For each context size and block length, on fixed inputs cut from a shipped
source file, the same model decodes the block four ways: confidence-
threshold decoding with the context cache, the same without it, one token
per step (the typewriter), and transformers' autoregressive `generate()`
with its KV cache on a Qwen2 causal model of the same shape (random
weights: speed depends on the shape, not the weights). Each row has
seconds to the first preview (first step, or first generated token),
seconds to final, forward passes and committed tokens per second (medians
over repeats), and the ratios against the typewriter and autoregressive
rows. The cached row also reports how many positions it committed to the
same token as the uncached decoder: the approximation's cost in agreement.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from diffusion.canvas import prefix_window, suffix_window
from diffusion.device import pick_device
from diffusion.engine import Engine, fast_path_changes, settings_for
from diffusion.schedule import one_per_step
from diffusion.shapes import causal_twin, shaped_checkpoint

BENCH_SOURCE = Path(__file__).parent / "bench_input.py"
DIFFUSION_MODES = ("threshold", "threshold_nocache", "one_per_step")
AR_MODE = "ar_generate"


@dataclass(frozen=True)
class BenchRow:
    shape: str
    mode: str
    block_tokens: int
    context_tokens: int
    forwards: int
    seconds_to_first_preview: float
    seconds_to_final: float
    tokens_per_second: float
    forwards_vs_one_per_step: float | None = None
    speedup_vs_one_per_step: float | None = None
    speedup_vs_ar: float | None = None
    agreement_with_nocache: float | None = None  # fraction of span positions with the same token


@dataclass(frozen=True)
class Timing:
    forwards: int
    first: float
    final: float
    ids: tuple[int, ...] = ()


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(engine: Engine, schedule, prefix: str, suffix: str, block: int, repeats: int) -> Timing:
    firsts, finals, forwards, ids = [], [], 0, ()
    graphs = getattr(engine, "graphs", None)  # DiffusionGemma's engine has none
    if graphs is not None and engine.settings.cuda_graphs and engine.settings.cache_refresh:
        # Untimed runs until this request's block shapes are captured (a shape is captured
        # when a later refresh cycle brings it back): the rows are the steady state of a
        # repeated request; a request of a new shape runs its steps eager.
        for _ in range(graphs.capture_after):
            for _ in engine.infill(prefix, suffix, [block], schedule, exact_length=True):
                pass
    for repeat in range(repeats):
        torch.manual_seed(repeat)
        # Every timed request starts cold: a repeated canvas would reuse the last first pass.
        first_passes = getattr(engine, "first_passes", None)
        if first_passes is not None:
            first_passes.clear()
        synchronize(engine.device)
        began = time.perf_counter()
        first = None
        for snapshot in engine.infill(prefix, suffix, [block], schedule, exact_length=True):
            if snapshot.step == 1:
                # A snapshot is host data already (its tokens were copied back to make it). No
                # synchronize here: with overlapped steps it would also wait for step 2, which
                # is already launched when step 1 is handed out.
                first = time.perf_counter() - began
            forwards, ids = snapshot.forwards, snapshot.best.ids
        synchronize(engine.device)
        finals.append(time.perf_counter() - began)
        firsts.append(first if first is not None else finals[-1])
    return Timing(forwards, statistics.median(firsts), statistics.median(finals), ids)


class FirstTokenClock:
    """A `generate()` streamer that notes when the first new token arrives."""

    def __init__(self) -> None:
        self.began = time.perf_counter()
        self.first: float | None = None
        self.calls = 0

    def put(self, value) -> None:
        self.calls += 1  # the first call carries the prompt
        if self.calls == 2 and self.first is None:
            self.first = time.perf_counter() - self.began

    def end(self) -> None:
        pass


def measure_generate(model, context_ids: list[int], block: int, repeats: int, device: torch.device) -> Timing:
    inputs = torch.tensor([context_ids], device=device)
    firsts, finals = [], []
    for _ in range(repeats):
        synchronize(device)
        clock = FirstTokenClock()
        with torch.inference_mode():
            model.generate(
                inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=block,
                min_new_tokens=block,
                do_sample=False,
                use_cache=True,
                pad_token_id=0,
                streamer=clock,
            )
        synchronize(device)
        finals.append(time.perf_counter() - clock.began)
        firsts.append(clock.first if clock.first is not None else finals[-1])
    return Timing(block, statistics.median(firsts), statistics.median(finals))


def agreement(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=False)) / max(1, len(a))


def context_ids(engine: Engine, prefix: str, suffix: str) -> tuple[list[int], list[int]]:
    settings = engine.settings
    return (
        prefix_window(engine.codec, prefix, settings.max_prefix),
        suffix_window(engine.codec, suffix, settings.max_suffix),
    )


def run_rows(
    engine: Engine,
    shape: str,
    blocks: list[int],
    repeats: int,
    causal=None,
    modes: tuple[str, ...] = DIFFUSION_MODES,
) -> list[BenchRow]:
    """All rows for one context size: three diffusion decoders and, with `causal`, `generate()`."""
    prefix, suffix = bench_input()
    before, after = context_ids(engine, prefix, suffix)
    context = len(before) + len(after)
    for _ in engine.infill(prefix, suffix, [8]):  # warm-up: first-call allocations
        pass
    if causal is not None:
        measure_generate(causal, before + after, 2, 1, engine.device)
    rows: list[BenchRow] = []
    for block in blocks:
        timings = {mode: measure(*decoder(engine, mode), prefix, suffix, block, repeats) for mode in modes}
        if causal is not None:
            # The same number of context tokens, all before the cursor: generate() has no suffix.
            timings[AR_MODE] = measure_generate(causal, before + after, block, repeats, engine.device)
        base, ar = timings.get("one_per_step"), timings.get(AR_MODE)
        for mode, t in timings.items():
            row = BenchRow(
                shape,
                mode,
                block,
                context,
                t.forwards,
                round(t.first, 4),
                round(t.final, 4),
                round(block / t.final, 1),
            )
            if mode in DIFFUSION_MODES[:2] and base is not None:
                row = replace(
                    row,
                    forwards_vs_one_per_step=round(t.forwards / base.forwards, 3),
                    speedup_vs_one_per_step=round(base.final / t.final, 2),
                )
            if ar is not None and mode != AR_MODE:
                row = replace(row, speedup_vs_ar=round(ar.final / t.final, 2))
            if mode == "threshold" and "threshold_nocache" in timings:
                row = replace(
                    row, agreement_with_nocache=round(agreement(t.ids, timings["threshold_nocache"].ids), 3)
                )
            rows.append(row)
    return rows


def load_engine(args: argparse.Namespace) -> tuple[Engine, str]:
    if args.model:
        return Engine.load(args.model, args.device, args.dtype), "model"
    device, dtype = pick_device(args.device, args.dtype)
    checkpoint = shaped_checkpoint(args.shape, device, dtype)
    return Engine(checkpoint, device, settings_for(checkpoint)), args.shape


def parse_sizes(text: str | None) -> list[int | None]:
    return [int(part) for part in text.split(",")] if text else [None]


def run_bench(args: argparse.Namespace) -> int:
    engine, shape = load_engine(args)
    engine = engine.with_settings(
        **fast_path_changes(
            args.cache_refresh,
            args.cache_margin,
            args.no_cuda_graphs,
            args.fused_confidence,
            args.null_run_floor,
        )
    )
    modes = tuple(args.modes.split(",")) if args.modes else DIFFUSION_MODES
    unknown = set(modes) - set(DIFFUSION_MODES)
    if unknown:
        raise SystemExit(f"unmask bench: unknown mode(s) {', '.join(sorted(unknown))}")
    blocks = [int(b) for b in args.blocks.split(",")]
    positions = engine.checkpoint.config.max_position_embeddings
    for context in parse_sizes(args.context):
        # [bos] context block [eos]: the canvas must fit the model's positions.
        longest = (context or engine.settings.max_prefix + engine.settings.max_suffix) + max(blocks) + 2
        if longest > positions:
            raise SystemExit(
                f"unmask bench: a {max(blocks)}-token block with {context or 'the default'} context makes a "
                f"canvas of {longest} positions; this model has {positions}"
            )
    causal = None
    if not args.no_ar:
        config = engine.checkpoint.config
        causal = causal_twin(config, engine.device, next(engine.checkpoint.model.parameters()).dtype)
    rows: list[BenchRow] = []
    for context in parse_sizes(args.context):
        sized = engine.with_settings(max_span=max([*blocks, engine.settings.max_span]))
        if context:
            sized = sized.with_settings(max_prefix=context * 3 // 4, max_suffix=context // 4)
        rows += run_rows(sized, shape, blocks, args.repeats, causal, modes)
    scorer = scorer_reason(engine)
    if args.json:
        for row in rows:
            print(json.dumps({"device": str(engine.device), "scorer": scorer, **asdict(row)}))
        return 0
    print_table(rows, engine)
    if scorer:
        print(f"steps scored by the {scorer}")
    return 0


def scorer_reason(engine: Engine) -> str | None:
    """Which scorer the diffusion rows ran with, and the race that chose it (None for engines
    that score inside transformers, as DiffusionGemma's does)."""
    choice = getattr(engine, "scorer_choice", None)
    return choice().reason if choice is not None else None


def print_table(rows: list[BenchRow], engine: Engine) -> None:
    from rich.console import Console
    from rich.table import Table

    parameters = engine.checkpoint.model.num_parameters()
    table = Table(title=f"unmask bench on {engine.device} ({parameters:,} parameters)")
    columns = ("shape", "mode", "block", "context", "forwards", "first preview s", "final s", "tokens/s")
    for column in (*columns, "vs one per step", "vs AR", "agree"):
        # The numbers never wrap; names fold rather than being cut to "thres…".
        numeric = column not in ("shape", "mode")
        table.add_column(
            column, justify="right", no_wrap=numeric, overflow="fold", min_width=len(column) // 2
        )

    def ratio(value: float | None) -> str:
        return "" if value is None else f"{value:.1f}x"

    for r in rows:
        table.add_row(
            r.shape,
            r.mode,
            str(r.block_tokens),
            str(r.context_tokens),
            str(r.forwards),
            f"{r.seconds_to_first_preview:.3f}",
            f"{r.seconds_to_final:.3f}",
            f"{r.tokens_per_second:.0f}" if r.tokens_per_second >= 100 else f"{r.tokens_per_second:.3g}",
            ratio(r.speedup_vs_one_per_step),
            ratio(r.speedup_vs_ar),
            "" if r.agreement_with_nocache is None else f"{100 * r.agreement_with_nocache:.0f}%",
        )
    console = Console()
    if not console.is_terminal:  # piped or logged: no screen to fit, so the full width
        console = Console(width=180)
    console.print(table)
