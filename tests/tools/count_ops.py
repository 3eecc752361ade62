"""Count the tensor operations of one denoising step: what a GPU launches a kernel for.

    python tests/tools/count_ops.py

On a GPU a small model's step is a few hundred tiny kernels of a few microseconds
each, so their number, not the arithmetic, sets its time (the 0.5B shape's
cached step on an H100 was about 700 of them, `tests/tools/gpu_profile.py`).
This counts them on any machine: every operation dispatched to a backend
kernel, views and allocations excluded, for the built-in model's full pass and
cached block step (the bench's 64-token block with 1,024 tokens of context) and
for the denoising loop's own work between two forwards.
"""

from __future__ import annotations

import collections
import sys

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import diffusion.predictors as predictors
from diffusion.bench import bench_input
from diffusion.engine import Engine
from diffusion.predictors import CachedContext

# Operations that only re-describe or allocate memory: no kernel runs for them.
NO_KERNEL = {
    "alias", "as_strided", "chunk", "detach", "empty", "empty_strided", "expand", "lift_fresh",
    "permute", "reshape", "select", "slice", "split", "split_with_sizes", "squeeze", "t",
    "transpose", "unbind", "unsqueeze", "view", "_reshape_alias", "_unsafe_view",
}  # fmt: skip


class OpCounter(TorchDispatchMode):
    """Counts dispatched operations by name while `counting` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self.counting = True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._overloadpacket.__name__
        if self.counting and name not in NO_KERNEL:
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def main() -> int:
    engine = Engine.load(None, "cpu").with_settings(
        max_prefix=768, max_suffix=256, fixed_shapes=True, cache_refresh=16, overlap_steps=True
    )
    model = engine.checkpoint.model
    layers = len(model.model.layers)
    prefix, suffix = bench_input()
    canvas, _ = engine._aligned([engine._infill_canvas(prefix, suffix, [64])])
    window = (canvas.span_start, canvas.span_start + 64)
    cached = CachedContext(model, refresh_every=1000, margin=engine.settings.cache_margin)
    with torch.inference_mode():
        with OpCounter() as full:
            cached(canvas.ids, window, canvas.attention)
        with OpCounter() as step:
            cached(canvas.ids, window, canvas.attention)
    print(f"full pass: {full.total} operations ({full.total / layers:.1f} per layer, {layers} layers)")
    print(f"cached block step: {step.total} operations ({step.total / layers:.1f} per layer)")
    print("  ", dict(step.counts.most_common()))

    loop = OpCounter()
    forward = predictors.CachedContext.__call__

    def uncounted(self, *args):
        loop.counting = False
        try:
            return forward(self, *args)
        finally:
            loop.counting = True

    predictors.CachedContext.__call__ = uncounted
    try:
        steps = engine.infill(prefix, suffix, [64], exact_length=True)
        for _ in range(3):  # past the first steps, into the steady state
            next(steps)
        with loop:
            next(steps)
        steps.close()
    finally:
        predictors.CachedContext.__call__ = forward
    print(f"denoising loop outside the forward, per step: {loop.total} operations")
    print("  ", dict(loop.counts.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
