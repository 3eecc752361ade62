"""Requests from different documents denoised in one batch, on the real built-in model."""

from __future__ import annotations

import torch

from diffusion.canvas import build_canvas, prefix_window, stack_canvases, suffix_window
from diffusion.engine import InfillAsk

ASKS = [
    InfillAsk("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n", (12,)),
    InfillAsk(
        "import os\n\n\ndef list_files(root):\n    found = []\n    for name in os.listdir(root):\n        ",
        "\n    return found\n",
        (20, 10),
    ),
]


def test_a_stacked_row_scores_as_it_does_alone(engine):
    # Rows are shifted so their spans line up; rotary attention only sees distances.
    codec, model = engine.codec, engine.checkpoint.model
    canvases = [
        build_canvas(
            prefix_window(codec, a.prefix, 192),
            suffix_window(codec, a.suffix, 64),
            a.span_lengths,
            codec.specials,
        )
        for a in ASKS
    ]
    stacked, rows = stack_canvases(canvases, codec.specials.pad)
    assert [list(r) for r in rows] == [[0], [1, 2]]
    assert canvases[0].span_start != canvases[1].span_start  # a real shift happened
    together = model.logits_at(stacked.ids, stacked.masked, stacked.attention)
    alone = torch.cat([model.logits_at(c.ids, c.masked, c.attention) for c in canvases])
    assert torch.allclose(together, alone, atol=1e-4)


def test_batched_requests_get_the_answers_they_get_alone(engine):
    exact = engine.with_settings(cache_refresh=0)
    alone = [[*exact.infill(a.prefix, a.suffix, a.span_lengths)][-1] for a in ASKS]
    steps = [*exact.infill_many(ASKS)]
    assert all(len(step) == len(ASKS) for step in steps)
    together = steps[-1]
    assert all(s.final for s in together)
    assert [[c.ids for c in s.candidates] for s in together] == [[c.ids for c in s.candidates] for s in alone]
    # One forward pass per step for both: as many as the slower request needs alone; each
    # request's own snapshot stops where it finished.
    assert len(steps) - 1 == max(s.forwards for s in alone)
    assert [s.forwards for s in together] == [s.forwards for s in alone]
    first_done = next(i for i, step in enumerate(steps) if step[0].final)
    assert all(step[0] == steps[first_done][0] for step in steps[first_done:])  # repeats its final


def test_a_batch_of_one_is_the_single_request(engine):
    ask = ASKS[0]
    alone = [*engine.infill(ask.prefix, ask.suffix, ask.span_lengths)]
    batched = [step[0] for step in engine.infill_many([ask])]
    assert batched == alone


def test_previews_follow_the_longest_candidate_until_the_best_is_known(engine):
    ask = ASKS[1]
    snapshots = [*engine.infill(ask.prefix, ask.suffix, (4, 12))]
    assert all(s.previewed.span_length == 12 for s in snapshots[:-1])
    assert snapshots[-1].final and snapshots[-1].previewed == snapshots[-1].best


def test_fixed_shapes_pad_every_request_to_one_canvas_and_keep_its_answer(engine):
    # Padding to the full window (so CUDA graphs are shared between requests) is masked out
    # of attention and shifts rows as a whole: the answer is the unpadded one.
    fixed = engine.with_settings(cache_refresh=0, fixed_shapes=True)
    plain = engine.with_settings(cache_refresh=0, fixed_shapes=False)
    canvases = [fixed._aligned([fixed._infill_canvas(a.prefix, a.suffix, (12,))])[0] for a in ASKS]
    settings = fixed.settings
    assert {c.span_start for c in canvases} == {1 + settings.max_prefix}
    assert {c.ids.shape for c in canvases} == {(1, 1 + settings.max_prefix + 12 + settings.max_suffix + 1)}
    for ask in ASKS:
        padded = [*fixed.infill(ask.prefix, ask.suffix, ask.span_lengths)][-1]
        alone = [*plain.infill(ask.prefix, ask.suffix, ask.span_lengths)][-1]
        assert [c.ids for c in padded.candidates] == [c.ids for c in alone.candidates]


def test_overlapped_steps_hand_out_the_same_snapshots(engine):
    # On CUDA each state is handed out a step late, so its snapshot overlaps the next step;
    # forced on here, the stream must be the one a CPU run gives, in the same order.
    ask = ASKS[1]
    plain = [*engine.with_settings(overlap_steps=False).infill(ask.prefix, ask.suffix, ask.span_lengths)]
    overlapped = [*engine.with_settings(overlap_steps=True).infill(ask.prefix, ask.suffix, ask.span_lengths)]
    assert overlapped == plain
    assert [s.step for s in plain] == list(range(len(plain))) and plain[-1].final
    batched = [*engine.with_settings(overlap_steps=True).infill_many(ASKS)]
    assert batched == [*engine.with_settings(overlap_steps=False).infill_many(ASKS)]


def test_overlap_hands_a_state_out_only_after_the_next_step_is_launched(engine):
    from diffusion.denoise import DenoiseState

    launched = []

    def steps():
        for n in range(4):
            launched.append(n)  # a step's work is launched when its state is produced
            yield DenoiseState(
                ids=torch.tensor([[n]]),
                masked=torch.tensor([[n < 3]]),
                score=torch.zeros(1),
                step=n,
                steps=3,
                forwards=n,
            )

    seen = [(s.step, len(launched)) for s in engine.with_settings(overlap_steps=True)._overlapped(steps())]
    assert seen == [(0, 2), (1, 3), (2, 4), (3, 4)]  # the last one as soon as the stream ends
    seen = [(s.step, len(launched)) for s in engine.with_settings(overlap_steps=False)._overlapped(steps())]
    assert seen == [(0, 5), (1, 6), (2, 7), (3, 8)]  # off: each as it comes


def test_only_the_cached_predictor_pads_to_fixed_shapes(engine):
    """The padding serves the cached path's CUDA graphs; uncached steps run unpadded."""
    from diffusion.engine import Engine

    on_cuda = Engine(engine.checkpoint, torch.device("cuda"), engine.settings)  # read, never run
    assert on_cuda.with_settings(cache_refresh=4).fixed_shapes
    assert not on_cuda.with_settings(cache_refresh=0).fixed_shapes
    assert not on_cuda.with_settings(cache_refresh=4, cuda_graphs=False).fixed_shapes


def test_a_character_split_by_a_mask_is_not_drawn_broken(engine):
    ids = engine.codec.encode("a 😀 b")
    pieces = [engine.codec.decode([i]) for i in ids]
    split = [i for i, piece in enumerate(pieces) if "\ufffd" in piece]
    assert len(split) >= 2, "the test needs a character spread over several tokens"
    # The emoji's first byte token resolved, the rest still masked, then resolved text again.
    masked = [i in split[1:] for i in range(len(ids))]
    segments = engine.segments(ids, masked)
    assert all("\ufffd" not in s.text for s in segments), segments
    assert [s.resolved for s in segments] == [True, False, True]
    assert segments[0].text == "a " and segments[-1].text == " b"
    # Once every byte is in, the character is whole.
    (whole,) = engine.segments(ids, [False] * len(ids))
    assert whole.text == "a 😀 b"


def test_a_whole_candidate_beats_a_better_scored_one_with_a_broken_character():
    from diffusion.engine import Candidate, InfillSnapshot, Segment

    broken = Candidate(4, (Segment('"h\ufffd"', True, 4),), score=-0.1)
    whole = Candidate(4, (Segment('"hé"', True, 4),), score=-0.9)
    snapshot = InfillSnapshot(step=3, steps=3, forwards=3, final=True, candidates=(broken, whole))
    assert snapshot.best is whole and snapshot.previewed is whole
    assert snapshot.ranked() == [whole, broken]
