"""Two infill requests denoised as one batch (`Engine.infill_many`) against one after the other.

What `serve --batch` weighs: a batch runs one forward pass per step for all its requests, with
every row padded to the longest canvas. On a GPU with room to spare the rows come nearly free;
on a CPU a step costs in proportion to rows times length, so a short request batched with a
long one waits for it.

    python tests/tools/batch_vs_serial.py [--model FOLDER] [--threads N] [--repeats N]

Prints, per repeat, when each request finished in the batch and alone, in seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from diffusion.engine import Engine, InfillAsk

SOURCE = Path(__file__).resolve().parents[2] / "diffusion" / "bench_input.py"


def finish_times(steps, count: int) -> list[float]:
    """Seconds from the start until each of `count` asks' final snapshot."""
    started = time.perf_counter()
    done: list[float | None] = [None] * count
    for step in steps:
        for index, snapshot in enumerate(step):
            if snapshot.final and done[index] is None:
                done[index] = time.perf_counter() - started
    return [d for d in done if d is not None]


def alone(engine: Engine, ask: InfillAsk) -> float:
    started = time.perf_counter()
    for _ in engine.infill(ask.prefix, ask.suffix, ask.span_lengths):
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: built-in)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    engine = Engine.load(args.model)
    text = SOURCE.read_text()
    cut = text.index("    return sorted(")
    long_ask = InfillAsk(text[:cut] + "    ", text[cut:], (8, 16, 24))  # about 1,000 tokens around
    short_ask = InfillAsk("def add(a, b):\n    return ", "\n", (8, 16, 24))  # a few tokens around
    for _ in engine.infill("x = ", "\n", [8]):  # warm-up
        pass
    print(f"device {engine.device}, {torch.get_num_threads()} threads")
    for repeat in range(1, args.repeats + 1):
        engine.first_passes.clear()  # no request may reuse another's first pass
        long_done, short_done = finish_times(engine.infill_many([long_ask, short_ask]), 2)
        engine.first_passes.clear()
        short_alone = alone(engine, short_ask)
        long_alone = alone(engine, long_ask)
        print(
            f"repeat {repeat}: batched: short done {short_done:.2f} s, long done {long_done:.2f} s; "
            f"one after the other: short {short_alone:.2f} s, then long done at {short_alone + long_alone:.2f} s"
        )


if __name__ == "__main__":
    main()
