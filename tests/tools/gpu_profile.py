"""Where a cached threshold decode spends its time on a GPU: per-step wall clock and a profile.

    python tests/tools/gpu_profile.py [--shape 0.5b] [--block 64] [--context 1024] [--out DIR]

Builds the shape with random weights (as `unmask bench --shape` does), runs the bench's
request until its graphs are captured, then times `--repeats` cold requests (no reused
first pass) and prints, per variant (every graph, block-step graphs only, eager): the
median seconds to final, the median gap between snapshots, and from one profiled request
the host time of each part of a step (the forward, the scorer, the commit, the snapshot)
and the count of kernel launches, graph replays and host synchronisations. The full
profiler tables go to DIR.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

import diffusion.denoise as denoise_module
import diffusion.engine as engine_module
from diffusion.bench import bench_input, synchronize
from diffusion.device import pick_device
from diffusion.engine import Engine, settings_for
from diffusion.model import LayerCache
from diffusion.predictors import BlockGraphs, CachedContext
from diffusion.shapes import shaped_checkpoint

HOST_EVENTS = (
    "cudaLaunchKernel",
    "cudaGraphLaunch",
    "cudaStreamSynchronize",
    "cudaEventSynchronize",
    "cudaMemcpyAsync",
)


def labelled(name: str, function):
    def run(*args, **kwargs):
        with record_function(name):
            return function(*args, **kwargs)

    return run


@contextlib.contextmanager
def labels(engine: Engine):
    """Name the parts of a step in the profile (restored afterwards)."""
    saved = (denoise_module.commit, CachedContext.__call__, Engine.snapshot, engine_module.to_host)
    choice = engine.scorer_choice()
    key = (engine.settings.confidence, engine.settings.fused_confidence)
    denoise_module.commit = labelled("step.commit", saved[0])
    CachedContext.__call__ = labelled("step.forward", saved[1])
    Engine.snapshot = labelled("step.snapshot", saved[2])
    engine_module.to_host = labelled("step.to_host", saved[3])
    engine.scorers[key] = dataclasses.replace(choice, scorer=labelled("step.score", choice.scorer))
    try:
        yield
    finally:
        denoise_module.commit, CachedContext.__call__, Engine.snapshot, engine_module.to_host = saved
        engine.scorers[key] = choice


def busy_ms(intervals) -> float:
    """Milliseconds covered by the union of (start, end) microsecond intervals: the time the
    device was running something (kernels overlap their annotations and each other)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total / 1000


def request(engine: Engine, prefix: str, suffix: str, block: int) -> tuple[list[float], tuple[int, ...]]:
    """Seconds from the start to each snapshot of one cold request, and its final ids."""
    engine.first_passes.clear()
    synchronize(engine.device)
    began = time.perf_counter()
    stamps, ids = [], ()
    for snapshot in engine.infill(prefix, suffix, [block], exact_length=True):
        stamps.append(time.perf_counter() - began)
        ids = snapshot.best.ids
    synchronize(engine.device)
    stamps.append(time.perf_counter() - began)
    return stamps, ids


def variant(engine: Engine, name: str, prefix: str, suffix: str, block: int, repeats: int, out: Path):
    warm = []
    for _ in range(3):  # captures (a shape is captured when a later request brings it back)
        began = time.perf_counter()
        request(engine, prefix, suffix, block)
        warm.append(time.perf_counter() - began)
    runs = [request(engine, prefix, suffix, block) for _ in range(repeats)]
    finals = [stamps[-1] for stamps, _ in runs]
    gaps = [b - a for stamps, _ in runs for a, b in itertools.pairwise(stamps[1:-1])]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if engine.device.type == "cuda" else [])
    with labels(engine), profile(activities=activities) as prof:
        stamps, _ = request(engine, prefix, suffix, block)
    table = prof.key_averages()
    by_name = {e.key: e for e in table}
    (out / f"{name}.cpu.txt").write_text(table.table(sort_by="cpu_time_total", row_limit=60))
    if engine.device.type == "cuda":
        (out / f"{name}.cuda.txt").write_text(table.table(sort_by="self_device_time_total", row_limit=40))
    steps = len(stamps) - 2
    events = prof.events()
    host = {}  # label -> host milliseconds (the label's CPU-side range, not its GPU annotation)
    for event in events:
        if event.name.startswith("step.") and event.device_type == DeviceType.CPU:
            host[event.name] = host.get(event.name, 0.0) + event.cpu_time_total / 1000
    parts = " ".join(
        f"{label.removeprefix('step.')} {host[label] / max(1, steps):.2f}"
        for label in ("step.forward", "step.score", "step.commit", "step.to_host", "step.snapshot")
        if label in host
    )
    counts = " ".join(f"{e}={by_name[e].count}" for e in HOST_EVENTS if e in by_name)
    device_ms = busy_ms(
        (e.time_range.start, e.time_range.end)
        for e in events
        if e.device_type == DeviceType.CUDA and not e.name.startswith("step.")
    )
    print(
        f"{name:<14} final {statistics.median(finals) * 1000:7.1f} ms  step gap {statistics.median(gaps) * 1000:6.2f} ms"
        f"  steps {steps}  device busy {device_ms:6.1f} ms  warm-up s {' '.join(f'{w:.2f}' for w in warm)}"
    )
    print(f"{'':14} host ms/step: {parts}")
    print(f"{'':14} per request: {counts}")
    return runs[-1][1]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="0.5b")
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--refresh", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("runs/gpu-profile"))
    parser.add_argument("--variants", default="graphs,block-graphs,eager")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    device, dtype = pick_device()
    checkpoint = shaped_checkpoint(args.shape, device, dtype)
    engine = Engine(checkpoint, device, settings_for(checkpoint)).with_settings(
        cache_refresh=args.refresh,
        max_span=max(args.block, 64),
        max_prefix=args.context * 3 // 4,
        max_suffix=args.context // 4,
    )
    print(
        f"{args.shape} on {device} ({dtype}), block {args.block}, context {args.context}, {engine.scorer_choice().reason}"
    )
    prefix, suffix = bench_input()
    results = {}
    for name in args.variants.split(","):
        if name == "eager":
            run = engine.with_settings(cuda_graphs=False, fixed_shapes=True)
        else:
            run = engine.with_settings(cuda_graphs=True)
            if engine.graphs is not None:
                engine.graphs.graphs.clear()
                engine.graphs.full_graphs.clear()
                engine.graphs.seen.clear()
        if name == "compiled":  # torch.compile's kernels, captured in the same graphs
            model = engine.checkpoint.model
            model.masked_hidden_states = torch.compile(model.masked_hidden_states, dynamic=False)
            try:
                results[name] = variant(run, name, prefix, suffix, args.block, args.repeats, args.out)
            finally:
                del model.masked_hidden_states
        elif name == "block-graphs" and engine.graphs is not None:
            eager_full = BlockGraphs.full

            def no_full_graph(self, ids, mask, cycle):
                recorded = [LayerCache() for _ in self.model.model.layers]
                return self.model.masked_hidden_states(ids, mask, recorded), recorded, None

            BlockGraphs.full = no_full_graph
            try:
                results[name] = variant(run, name, prefix, suffix, args.block, args.repeats, args.out)
            finally:
                BlockGraphs.full = eager_full
        else:
            results[name] = variant(run, name, prefix, suffix, args.block, args.repeats, args.out)
    first = next(iter(results.values()))
    same = {name: ids == first for name, ids in results.items()}
    print("same final tokens as the first variant:", same)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
