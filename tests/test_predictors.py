"""The context cache is a strategy of the one denoising loop: same loop, fewer full passes."""

from __future__ import annotations

import itertools

import pytest
import torch

from diffusion.canvas import build_canvas, prefix_window, suffix_window
from diffusion.denoise import denoise
from diffusion.predictors import CachedContext, FirstPasses, full_recompute
from diffusion.schedule import Threshold

PREFIX = "import os\n\n\ndef list_files(root):\n    found = []\n    for name in os.listdir(root):\n        "
SUFFIX = "\n    return found\n"


def canvas_for(engine, span: int = 24):
    codec = engine.codec
    return build_canvas(
        prefix_window(codec, PREFIX, 192), suffix_window(codec, SUFFIX, 64), [span], codec.specials
    )


@pytest.mark.parametrize("margin", [0, 8])
def test_block_only_pass_right_after_a_refresh_equals_the_full_pass(engine, margin: int):
    model = engine.checkpoint.model
    canvas = canvas_for(engine)
    cached = CachedContext(model, refresh_every=100, margin=margin)
    window = (canvas.span_start, canvas.span_start + 24)
    first = cached(canvas.ids, window, canvas.attention)
    # Nothing changed since the refresh, so the spliced keys and values are exact.
    second = cached(canvas.ids, window, canvas.attention)
    assert cached.full_passes == 1
    assert first.shape == (1, 24, model.config.vocab_size)
    assert torch.allclose(first, second, atol=1e-4)
    assert torch.allclose(first, full_recompute(model)(canvas.ids, window, canvas.attention), atol=1e-4)


def test_cached_decoding_refreshes_on_schedule_and_mostly_agrees(engine):
    model = engine.checkpoint.model
    canvas = canvas_for(engine, 32)
    schedule = Threshold(tau=0.9, max_steps=16)
    *_, exact = denoise(full_recompute(model), canvas, schedule, banned_ids=engine.banned_ids)
    cached = CachedContext(model, refresh_every=4)
    *_, approximate = denoise(cached, canvas, schedule, banned_ids=engine.banned_ids)
    assert approximate.done
    assert cached.full_passes == -(-cached.calls // 4)
    agreement = float((approximate.ids == exact.ids)[canvas.masked].float().mean())
    assert agreement >= 0.5, agreement


def test_a_margin_covering_the_canvas_makes_cached_decoding_exact(engine):
    # Everything is recomputed at every step, so nothing can go stale.
    model = engine.checkpoint.model
    canvas = canvas_for(engine, 32)
    schedule = Threshold(tau=0.9, max_steps=16)
    *_, exact = denoise(full_recompute(model), canvas, schedule, banned_ids=engine.banned_ids)
    cached = CachedContext(model, refresh_every=100, margin=canvas.ids.shape[1])
    *_, whole = denoise(cached, canvas, schedule, banned_ids=engine.banned_ids)
    assert cached.full_passes == 1 and cached.calls > 1
    assert cached.region == (0, canvas.ids.shape[1])
    assert torch.equal(whole.ids, exact.ids)


def test_a_request_starting_from_a_known_canvas_reuses_its_first_pass_exactly(engine):
    model = engine.checkpoint.model
    canvas = canvas_for(engine, 32)
    schedule = Threshold(tau=0.9, max_steps=16)
    store = FirstPasses()
    first = CachedContext(model, refresh_every=4, margin=8, first_passes=store)
    *_, a = denoise(first, canvas, schedule, banned_ids=engine.banned_ids)
    again = CachedContext(model, refresh_every=4, margin=8, first_passes=store)
    *_, b = denoise(again, canvas, schedule, banned_ids=engine.banned_ids)
    assert store.hits == 1
    assert again.full_passes == first.full_passes - 1  # its first step ran no forward at all
    assert torch.equal(a.ids, b.ids)  # and nothing was approximated by it
    # The reusing decode's later refreshes saw partly committed canvases: none was stored.
    assert len(store.passes) == 1 and store.passes[0].ids.equal(canvas.ids)
    for _ in range(3):  # so the same request keeps hitting
        [*denoise(CachedContext(model, refresh_every=4, margin=8, first_passes=store), canvas, schedule)]
    assert store.hits == 4

    other = canvas_for(engine, 24)  # another span length: another canvas, no reuse
    fresh = CachedContext(model, refresh_every=4, margin=8, first_passes=store)
    [*itertools.islice(denoise(fresh, other, schedule, banned_ids=engine.banned_ids), 2)]  # one step
    assert store.hits == 4 and fresh.full_passes == 1
    wider = CachedContext(model, refresh_every=4, margin=16, first_passes=store)  # another region
    [*itertools.islice(denoise(wider, canvas, schedule, banned_ids=engine.banned_ids), 2)]
    assert store.hits == 4 and wider.full_passes == 1


def test_engine_requests_share_first_passes_across_settings(engine):
    cached = engine.with_settings(cache_refresh=4)
    hits = cached.first_passes.hits
    one = [*cached.infill(PREFIX, SUFFIX, [16])][-1].best.ids
    two = [*cached.with_settings(tau=0.9).infill(PREFIX, SUFFIX, [16])][-1].best.ids
    assert cached.first_passes.hits == hits + 1
    assert one == two


class SharedRecording:
    """Stands in for `BlockGraphs` on the CPU: every full pass, like a graph's replay, writes
    the one set of recorded keys and values all decodes are handed, and counts itself; with
    `leases` off it hands out no lease, as the code did before leases."""

    def __init__(self, model, leases: bool = True) -> None:
        self.model, self.leases = model, leases
        self.replays, self.recorded = 0, None

    def full(self, ids, mask, cycle):
        from diffusion.model import LayerCache

        fresh = [LayerCache() for _ in self.model.model.layers]
        hidden = self.model.masked_hidden_states(ids, mask, fresh)
        if self.recorded is None:
            self.recorded = fresh
        for static, new in zip(self.recorded, fresh, strict=True):
            static.k.copy_(new.k)
            static.v.copy_(new.v)
        self.replays += 1
        return hidden, self.recorded, ((self, self.replays) if self.leases else None)

    def hidden(self, block, mask, caches, start, cycle):
        return self.model.masked_hidden_states(block, mask, caches, start)


@pytest.mark.parametrize("leases", [True, False])
def test_a_decode_whose_recorded_keys_another_overwrote_refreshes(engine, leases):
    from diffusion.schedule import one_per_step

    model = engine.checkpoint.model
    padded = engine.with_settings(fixed_shapes=True)  # two requests, one canvas shape
    canvases = [
        padded._aligned([padded._infill_canvas(prefix, suffix, [10])])[0]
        for prefix, suffix in ((PREFIX, SUFFIX), ("def mean(values):\n    total = ", "\n    return total\n"))
    ]
    assert canvases[0].ids.shape == canvases[1].ids.shape

    def decode(canvas, predict):
        return denoise(predict, canvas, one_per_step(), banned_ids=engine.banned_ids)

    # Each decode's steps alternate with the other's full passes: with leases, each step finds
    # its recording overwritten and refreshes, which is a full pass at every step.
    expected = [[*decode(c, CachedContext(model, refresh_every=1))][-1].ids for c in canvases]
    shared = SharedRecording(model, leases)
    one, two = (decode(c, CachedContext(model, refresh_every=100, graphs=shared)) for c in canvases)
    finals = [None, None]
    for a, b in zip(one, two, strict=True):
        finals = [a, b]
    same = [torch.equal(final.ids, want) for final, want in zip(finals, expected, strict=True)]
    # Without leases a decode reads the other's keys: the check above must be able to fail.
    assert same == [True, True] if leases else not all(same)


def test_graphs_capture_a_shape_only_when_a_later_refresh_cycle_brings_it_back(engine):
    # The policy alone (capturing needs CUDA): counts are per refresh cycle, not per step.
    from diffusion.predictors import BlockGraphs

    graphs = BlockGraphs(engine.checkpoint.model, capture_after=2)
    key = ((1, 40), (1, 1, 300, 64), 100, None)
    assert [graphs.sighting(key, cycle=7) for _ in range(3)] == [1, 1, 1]
    assert graphs.sighting(key, cycle=8) == 2
    assert graphs.sighting(("other",), cycle=8) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graph_steps_commit_the_same_tokens_as_eager_ones():
    from diffusion.checkpoint import BUILTIN_MODEL_DIR, load_checkpoint
    from diffusion.engine import Engine, settings_for

    device = torch.device("cuda")
    checkpoint = load_checkpoint(BUILTIN_MODEL_DIR, device, torch.bfloat16)
    graphed = Engine(checkpoint, device, settings_for(checkpoint))

    def final_ids(engine):
        return [*engine.infill(PREFIX, SUFFIX, [32], exact_length=True)][-1].best.ids

    # The graphed engine pads every canvas to the full window (fixed shapes); so must the eager
    # one, or bf16 sums over other shapes differ in the last bit and pick other tokens.
    eager = final_ids(graphed.with_settings(cuda_graphs=False, fixed_shapes=True))
    for _ in range(3):  # eager steps until a shape comes back in a later refresh cycle, then graphs
        graphed.first_passes.clear()  # the full pass computed, not taken from the store
        assert final_ids(graphed) == eager
    captured = len(graphed.graphs.graphs), len(graphed.graphs.full_graphs)
    assert captured >= (1, 1)
    graphed.first_passes.clear()
    assert final_ids(graphed) == eager
    assert (len(graphed.graphs.graphs), len(graphed.graphs.full_graphs)) == captured  # replayed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_interleaved_decodes_of_one_shape_never_read_each_others_recorded_keys():
    # Both decodes replay the same full-pass graph, whose outputs are the recorded keys and
    # values: each replay overwrites the other decode's recording, so each of its steps must
    # refresh (a full pass), never read the other's keys. Step for step, that is decoding with
    # a full pass at every step.
    from diffusion.checkpoint import BUILTIN_MODEL_DIR, load_checkpoint
    from diffusion.engine import Engine, settings_for
    from diffusion.schedule import one_per_step

    device = torch.device("cuda")
    checkpoint = load_checkpoint(BUILTIN_MODEL_DIR, device, torch.bfloat16)
    engine = Engine(checkpoint, device, settings_for(checkpoint)).with_settings(cache_refresh=100)
    asks = [(PREFIX, SUFFIX), ("def mean(values):\n    total = ", "\n    return total / len(values)\n")]

    def decode(engine, ask):
        engine.first_passes.clear()
        return engine.infill(*ask, [12], one_per_step(), exact_length=True)  # 12 steps each

    for _ in range(3):  # until the full pass's shape is captured
        for ask in asks:
            [*decode(engine, ask)]
    assert engine.graphs.full_graphs
    expected = [[*decode(engine.with_settings(cache_refresh=1), ask)][-1].best.ids for ask in asks]
    one, two = decode(engine, asks[0]), decode(engine, asks[1])
    finals = [None, None]
    for a, b in zip(one, two, strict=True):
        finals = [a, b]
    assert [f.best.ids for f in finals] == expected


def test_a_span_that_grows_mid_decode_refreshes_the_cache_on_its_new_window(engine):
    # A length policy (DreamOn's expand) may lengthen the span between steps: the next step's
    # window is wider, so the block the cache recomputes must be re-cut by a full pass.
    import dataclasses

    model = engine.checkpoint.model
    canvas = canvas_for(engine, 8)
    mask = engine.codec.specials.mask
    end = canvas.span_start + 8
    grown = []

    def grow_once(state):
        if grown:
            return state
        grown.append(state.step)
        ids = torch.cat([state.ids[:, :end], torch.tensor([[mask]]), state.ids[:, end:]], dim=1)
        masked = torch.cat([state.masked[:, :end], torch.tensor([[True]]), state.masked[:, end:]], dim=1)
        return dataclasses.replace(state, ids=ids, masked=masked, span_lengths=(9,))

    cached = CachedContext(model, refresh_every=100, margin=4)
    states = [
        *denoise(
            cached, canvas, Threshold(tau=0.9, max_steps=16), banned_ids=engine.banned_ids, resize=grow_once
        )
    ]
    assert grown == [1] and states[-1].done
    assert states[-1].span_lengths == (9,) and cached.window == (canvas.span_start, end + 1)
    assert cached.full_passes == 2  # the first step's, and the one the wider window forced
    assert not bool((states[-1].ids[:, canvas.span_start : end + 1] == mask).any())
