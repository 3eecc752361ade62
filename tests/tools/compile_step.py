"""Time the built-in model's cached block step eager and under `torch.compile`, on this machine.

    python tests/tools/compile_step.py [MODE]

MODE is a `torch.compile` mode (default: inductor's default). The step is the
one `unmask bench` times most: a 64-token block with 32 context tokens on each
side recomputed against the cached keys and values of a 1,024-token context.
Prints the eager and compiled milliseconds per step (means of 20 after a
warm-up), the compile time and the largest difference between the two outputs.
"""

from __future__ import annotations

import sys
import time

import torch

from diffusion.bench import bench_input
from diffusion.engine import Engine
from diffusion.predictors import CachedContext


def per_step_ms(step, repeats: int = 20) -> float:
    for _ in range(3):
        step()
    began = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - began) / repeats * 1000


def main(argv: list[str]) -> int:
    engine = Engine.load(None, "cpu").with_settings(max_prefix=768, max_suffix=256, fixed_shapes=True)
    model = engine.checkpoint.model
    prefix, suffix = bench_input()
    canvas, _ = engine._aligned([engine._infill_canvas(prefix, suffix, [64])])
    window = (canvas.span_start, canvas.span_start + 64)
    cached = CachedContext(model, refresh_every=1000, margin=32)
    with torch.inference_mode():
        cached(canvas.ids, window, canvas.attention)  # the full pass that fills the cache
        start, end = cached.region
        block = canvas.ids[:, start:end]

        def run(forward):
            return lambda: forward(block, cached.key_mask, cached.caches, start)

        eager = per_step_ms(run(model.masked_hidden_states))
        began = time.perf_counter()
        compiled_forward = torch.compile(
            model.masked_hidden_states, dynamic=False, mode=argv[0] if argv else None
        )
        run(compiled_forward)()
        compile_seconds = time.perf_counter() - began
        compiled = per_step_ms(run(compiled_forward))
        difference = float((run(compiled_forward)() - run(model.masked_hidden_states)()).abs().max())
    print(f"eager {eager:.1f} ms per step; compiled {compiled:.1f} ms ({eager / compiled:.2f}x)")
    print(f"compile {compile_seconds:.1f} s; largest output difference {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
