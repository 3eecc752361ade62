"""How the denoiser gets its logits: strategies passed to the one denoising loop.

`full_recompute` runs the whole canvas every step. `CachedContext` is the
approximate context cache (after Fast-dLLM's dual cache): a full pass every
`refresh_every` steps records every layer's keys and values; the steps in
between recompute only the block being generated, which attends to the
recorded prefix and suffix. The context's own states go slightly stale while
the block changes, which is the approximation; a refresh bounds it. `margin`
context tokens on each side of the block are recomputed with it: the context
nearest the block is what the block's tokens change most.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

import torch

from diffusion.denoise import Predictor
from diffusion.model import DiffusionTransformer, LayerCache, key_mask

_REFRESHES = itertools.count()  # process-wide, so a cycle number is never reused


def full_recompute(model: DiffusionTransformer) -> Predictor:
    @torch.inference_mode()
    def predict(ids, window, attention):
        return model.window_logits(model.hidden_states(ids, attention), window)

    return predict


class CachedContext:
    """A Predictor that reuses the context's keys and values between refreshes."""

    def __init__(
        self,
        model: DiffusionTransformer,
        refresh_every: int = 4,
        graphs: BlockGraphs | None = None,
        margin: int = 0,
        first_passes: FirstPasses | None = None,
    ) -> None:
        assert refresh_every >= 1, f"refresh_every must be >= 1, got {refresh_every}"
        assert margin >= 0, f"margin must be >= 0, got {margin}"
        self.model = model
        self.margin = margin
        self.first_passes = first_passes
        self.graphs = graphs
        self.refresh_every = refresh_every
        self.caches: list[LayerCache] = []
        self.key_mask: torch.Tensor | None = None
        self.region: tuple[int, int] = (0, 0)
        self.window: tuple[int, int] = (0, 0)
        self.shape: tuple[int, ...] = ()
        self.calls = 0
        self.full_passes = 0
        self.cycle = -1
        # When the caches are a full-pass graph's outputs: that graph and its replay count then.
        # Another decode replaying the same graph overwrites them, and this one must refresh.
        self.lease: tuple[_FullGraph, int] | None = None

    @torch.inference_mode()
    def __call__(self, ids, window, attention):
        if self.calls == 0 and self.first_passes is not None:
            hit = self.first_passes.find(ids, window, attention, self.margin)
            if hit is not None:  # the same canvas as a recent request's start: its pass is exact
                self.calls += 1
                self.caches, self.key_mask, self.region = hit.caches, hit.key_mask, hit.region
                self.lease = None
                self.shape, self.window = tuple(ids.shape), window
                self.cycle = next(_REFRESHES)
                return hit.logits.clone()  # the caller may write into it; the stored pass stays
        # A length policy that resizes the span changes the window, or the canvas's shape.
        refresh = (
            self.calls % self.refresh_every == 0
            or tuple(ids.shape) != self.shape
            or window != self.window
            or (self.lease is not None and self.lease[0].replays != self.lease[1])
        )
        self.calls += 1
        if refresh:
            return self._refresh(ids, window, attention)
        start, end = self.region
        block = ids[:, start:end]
        if self.graphs is not None:
            hidden = self.graphs.hidden(block, self.key_mask, self.caches, start, self.cycle)
        else:
            hidden = self.model.masked_hidden_states(block, self.key_mask, self.caches, start)
        return self.model.window_logits(hidden, window, start)

    def _refresh(self, ids, window, attention):
        self.full_passes += 1
        self.cycle = next(_REFRESHES)
        self.shape, self.window = tuple(ids.shape), window
        # The block: the window, one more column on the left when logits are shifted, and the margins.
        start = window[0] - (1 if self.model.config.shift_logits else 0) - self.margin
        self.region = (max(0, start), min(ids.shape[1], window[1] + self.margin))
        # The canvas's padding does not change between refreshes: build its mask once.
        self.key_mask = key_mask(attention)
        self.lease = None
        if self.graphs is not None:
            hidden, recorded, self.lease = self.graphs.full(ids, self.key_mask, self.cycle)
        else:
            recorded = [LayerCache() for _ in self.model.model.layers]
            hidden = self.model.masked_hidden_states(ids, self.key_mask, recorded)
        self.caches = [LayerCache(c.k, c.v, self.region[0]) for c in recorded]
        logits = self.model.window_logits(hidden, window)
        # Only a decode's very first pass sees the canvas fully masked; a later refresh (also
        # the first full pass of a decode that reused a stored one) would evict a real entry.
        if self.first_passes is not None and self.calls == 1:
            kept = self.caches
            if self.graphs is not None:  # a graph's outputs are overwritten by its next replay
                kept = [LayerCache(c.k.clone(), c.v.clone(), c.start) for c in kept]
            self.first_passes.remember(
                FirstPass(
                    ids, window, attention, self.margin, kept, self.key_mask, self.region, logits.clone()
                )
            )
        return logits


@dataclass(frozen=True)
class FirstPass:
    """A request's first full pass: the canvas it saw and everything the cache kept of it."""

    ids: torch.Tensor
    window: tuple[int, int]
    attention: torch.Tensor | None
    margin: int
    caches: list[LayerCache]
    key_mask: torch.Tensor | None
    region: tuple[int, int]
    logits: torch.Tensor


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.shape == b.shape and bool(torch.equal(a, b))


class FirstPasses:
    """The newest first full passes, reused when a new request starts from the same canvas.

    A request's first pass sees the block fully masked, so two requests whose
    context tokens and span lengths agree start from identical canvases, even
    when the text the block replaces differs (a rewrite asked again after an
    edit inside the block, an infill asked again at the same place). Reusing
    that pass is exact, not an approximation: the second request skips its
    most expensive forward.
    """

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self.passes: list[FirstPass] = []
        self.hits = 0

    def find(self, ids, window, attention, margin: int) -> FirstPass | None:
        for entry in self.passes:
            if (
                entry.margin == margin
                and entry.window == window
                and _same(entry.ids, ids)
                and _same(entry.attention, attention)
            ):
                self.hits += 1
                return entry
        return None

    def remember(self, entry: FirstPass) -> None:
        self.passes = [entry, *self.passes][: self.capacity]

    def clear(self) -> None:
        self.passes = []


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    ids: torch.Tensor
    mask: torch.Tensor | None
    caches: list[LayerCache]
    output: torch.Tensor
    source: list[LayerCache] | None = None  # the caches last copied in

    def load(self, ids: torch.Tensor, mask: torch.Tensor | None, caches: list[LayerCache]) -> None:
        self.ids.copy_(ids)
        if mask is not None and self.mask is not None:
            self.mask.copy_(mask)
        if self.source is not caches:  # a refresh happened: its keys and values come in once
            for static, fresh in zip(self.caches, caches, strict=True):
                static.k.copy_(fresh.k)
                static.v.copy_(fresh.v)
            self.source = caches


class BlockGraphs:
    """CUDA graphs of the model's forward passes, one per shape, replayed instead of launched.

    Two kinds: the cached block-only step, and the full pass that refreshes the
    cache (its hidden states and every layer's keys and values are the graph's
    outputs). One replay launches a pass's hundreds of kernels at once: on an H100
    the 0.5B shape's 64-token request took 529 ms eager, 104 ms with its block
    steps replayed and 72 ms with the full pass replayed too (README, "The
    benchmark"). Each shape (batch, block, canvas, block start) is captured once
    and kept (the newest `capacity`); inputs are copied into the graph's static
    buffers before each replay.

    A capture costs about three eager passes, and a shape lasts only until the
    next refresh, so a shape is captured only when it comes back in a later
    refresh cycle (the same request repeated, or a refresh that left the block
    as it was); until then it runs eager. Capturing every new shape made a
    HumanEval run, where every task has its own shape, slower than eager. With
    `EngineSettings.fixed_shapes` every request of the same span lengths shares
    its shapes, so the graphs serve the next request too.
    """

    def __init__(self, model: DiffusionTransformer, capacity: int = 8, capture_after: int = 2) -> None:
        self.model = model
        self.capacity = capacity
        self.capture_after = capture_after
        self.graphs: OrderedDict[tuple, _Graph] = OrderedDict()
        self.full_graphs: OrderedDict[tuple, _FullGraph] = OrderedDict()
        # shape -> (refresh cycles it was seen in, the last of them)
        self.seen: OrderedDict[tuple, tuple[int, int]] = OrderedDict()

    def sighting(self, key: tuple, cycle: int) -> int:
        """Count `key` once per refresh cycle; returns how many cycles have seen it."""
        cycles, last = self.seen.pop(key, (0, -1))
        if last != cycle:
            cycles += 1
        self.seen[key] = (cycles, cycle)
        while len(self.seen) > 32 * self.capacity:
            self.seen.popitem(last=False)
        return cycles

    def hidden(self, block_ids, mask, caches: list[LayerCache], start: int, cycle: int) -> torch.Tensor:
        """Hidden states (B, L, C) of the block; valid until the next call. `cycle` names the
        refresh whose caches these are."""
        key = (
            tuple(block_ids.shape),
            tuple(caches[0].k.shape),
            start,
            None if mask is None else tuple(mask.shape),
        )
        entry = self.graphs.get(key)
        if entry is None:
            if self.sighting(key, cycle) < self.capture_after:
                return self.model.masked_hidden_states(block_ids, mask, caches, start)
            entry = self._capture(block_ids, mask, caches, start)
            self.graphs[key] = entry
            while len(self.graphs) > self.capacity:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        entry.load(block_ids, mask, caches)
        entry.graph.replay()
        return entry.output

    def full(
        self, ids, mask, cycle: int
    ) -> tuple[torch.Tensor, list[LayerCache], tuple[_FullGraph, int] | None]:
        """Hidden states (B, T, C) of a full pass over `ids`, every layer's recorded keys and
        values, and, when a graph computed them, the lease that says whether they still hold:
        (graph, its replay count), valid until the graph's next replay."""
        key = ("full", tuple(ids.shape), None if mask is None else tuple(mask.shape))
        entry = self.full_graphs.get(key)
        if entry is None:
            if self.sighting(key, cycle) < self.capture_after:
                recorded = [LayerCache() for _ in self.model.model.layers]
                return self.model.masked_hidden_states(ids, mask, recorded), recorded, None
            entry = self._capture_full(ids, mask)
            self.full_graphs[key] = entry
            while len(self.full_graphs) > self.capacity:
                self.full_graphs.popitem(last=False)
        self.full_graphs.move_to_end(key)
        entry.ids.copy_(ids)
        if mask is not None and entry.mask is not None:
            entry.mask.copy_(mask)
        entry.graph.replay()
        entry.replays += 1
        return entry.output, entry.caches, (entry, entry.replays)

    def _capture(self, block_ids, mask, caches: list[LayerCache], start: int) -> _Graph:
        ids = block_ids.clone()
        static_mask = None if mask is None else mask.clone()
        static = [LayerCache(c.k.clone(), c.v.clone(), start) for c in caches]
        graph, output = capture(lambda: self.model.masked_hidden_states(ids, static_mask, static, start))
        return _Graph(graph, ids, static_mask, static, output, source=caches)

    def _capture_full(self, ids, mask) -> _FullGraph:
        static_ids = ids.clone()
        static_mask = None if mask is None else mask.clone()
        recorded = [LayerCache() for _ in self.model.model.layers]

        def forward():
            for cache in recorded:  # each run records afresh: the capture's own keys and values stay
                cache.k = cache.v = cache.start = None
            return self.model.masked_hidden_states(static_ids, static_mask, recorded)

        graph, output = capture(forward)
        return _FullGraph(graph, static_ids, static_mask, recorded, output)


@dataclass
class _FullGraph:
    graph: torch.cuda.CUDAGraph
    ids: torch.Tensor
    mask: torch.Tensor | None
    caches: list[LayerCache]  # the keys and values the graph writes at every replay
    output: torch.Tensor
    replays: int = 0


def capture(forward) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """A CUDA graph of `forward()` and its static output, after two warm-up runs on a side
    stream (the allocator and the libraries' handles are set up outside the capture)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            forward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = forward()
    return graph, output
