"""Denoiser invariants, on the real built-in model denoising real tokens."""

from __future__ import annotations

import itertools

import pytest
import torch

from diffusion.canvas import build_canvas, prefix_window, suffix_window
from diffusion.confidence import CONFIDENCES, torch_scorer
from diffusion.denoise import denoise
from diffusion.schedule import FixedCount, Threshold, one_per_step

PREFIX = "def mean(values):\n    total = 0\n    for value in values:\n        total += value\n    return "
SUFFIX = "\n\n\nprint(mean([1, 2, 3]))\n"


def states_for(engine, schedule, lengths=(24,), confidence="top1"):
    codec = engine.codec
    canvas = build_canvas(
        prefix_window(codec, PREFIX, 192), suffix_window(codec, SUFFIX, 64), list(lengths), codec.specials
    )
    return canvas, list(
        denoise(engine.predict, canvas, schedule, torch_scorer(CONFIDENCES[confidence]), engine.banned_ids)
    )


@pytest.mark.parametrize(
    "schedule",
    [Threshold(tau=0.9, max_steps=16), Threshold(tau=0.5, max_steps=4), FixedCount(3), one_per_step()],
    ids=["threshold", "threshold-4-steps", "fixed-3", "one-per-step"],
)
@pytest.mark.parametrize("confidence", sorted(CONFIDENCES))
def test_invariants_hold_for_every_schedule(engine, schedule, confidence):
    canvas, states = states_for(engine, schedule, lengths=(16, 24), confidence=confidence)
    mask = engine.codec.specials.mask
    first = states[0]
    assert first.step == 0 and torch.equal(first.masked, canvas.masked)
    for before, after in itertools.pairwise(states):
        assert after.step == before.step + 1 and after.forwards == before.forwards + 1
        # The masked count never grows, and every row with masks commits at least one.
        shrink = before.remaining - after.remaining
        assert bool((shrink >= 0).all())
        assert bool((shrink[before.remaining > 0] >= 1).all())
        # A committed token never changes, and nothing outside the span moves.
        committed = ~before.masked
        assert torch.equal(after.ids[committed], before.ids[committed])
        assert not bool((after.masked & ~before.masked).any())
    last = states[-1]
    assert last.done and not bool((last.ids == mask).any())
    assert last.step <= last.steps
    assert not bool(torch.isin(last.ids[canvas.masked], torch.tensor(engine.banned_ids)).any())


def test_threshold_commits_every_confident_position_and_respects_its_budget(engine):
    _, states = states_for(engine, Threshold(tau=0.0, max_steps=16))
    # tau = 0: every masked position is above the threshold, so one step resolves all.
    assert len(states) == 2 and states[-1].done
    _, states = states_for(engine, Threshold(tau=1.01, max_steps=6))
    # tau above any probability: only the floor commits, ceil(remaining / steps left) per step.
    assert states[-1].step == 6
    remaining = [int(s.remaining[0]) for s in states]
    assert remaining[1] == 24 - 4  # ceil(24 / 6)


def test_one_per_step_takes_one_forward_per_token(engine):
    _, states = states_for(engine, one_per_step(), lengths=(12,))
    assert states[-1].forwards == 12
    assert all(int(b.remaining[0]) - int(a.remaining[0]) == 1 for b, a in itertools.pairwise(states))


def test_engine_snapshots_end_with_plain_text(engine):
    snapshots = list(engine.infill(PREFIX, SUFFIX, [24]))
    assert snapshots[0].best.unresolved == 24 and not snapshots[0].final
    final = snapshots[-1]
    assert final.final and final.best.unresolved == 0
    text = final.best.text
    assert "<|" not in text  # null, mask and other specials are stripped
    assert text == engine.codec.decode(engine.codec.encode(text))


def test_a_null_picked_left_of_content_in_the_same_step_waits():
    """Null fills only a span's tail: a confident null with content picked right of it in
    the same step stays masked, and nothing between them is forced to null."""
    from diffusion.tokenizer import SpecialIds

    mask, null, vocab = 9, 5, 12
    specials = SpecialIds(mask=mask, bos=0, eos=1, pad=None, null=null)

    def confident(ids, window, attention):  # span column 0 -> 6, 1 -> null, 3 -> 7, others unsure
        logits = torch.zeros(ids.shape[0], window[1] - window[0], vocab)
        logits[:, 0, 6] = logits[:, 1, null] = logits[:, 3, 7] = 20.0
        return logits

    canvas = build_canvas([10], [11], [5], specials)
    states = list(denoise(confident, canvas, Threshold(0.9, 16), banned_ids=(mask, 0, 1), null_id=null))
    span = slice(canvas.span_start, canvas.span_start + 5)
    first = states[1]
    assert first.ids[0, span].tolist()[0] == 6 and first.ids[0, span].tolist()[3] == 7
    assert first.masked[0, span].tolist() == [False, True, True, False, True]  # the null waited
    final = states[-1].ids[0, span].tolist()
    assert null not in final[:4]  # no null left of content


def test_a_null_that_waits_at_the_last_planned_step_adds_a_step_to_the_count():
    from diffusion.tokenizer import SpecialIds

    mask, null, vocab = 2, 3, 10
    specials = SpecialIds(mask=mask, bos=0, eos=1, pad=4, null=null)

    def predict(ids, window, attention):  # span column 0 -> 5, 1 -> null, 2 -> 7: all sure
        logits = torch.zeros(ids.shape[0], window[1] - window[0], vocab)
        logits[:, 0, 5] = logits[:, 1, null] = logits[:, 2, 7] = 9.0
        return logits

    canvas = build_canvas([5], [6], [3], specials)
    states = list(denoise(predict, canvas, Threshold(0.9, max_steps=1), null_id=null))
    assert states[-1].done and len(states) == 3  # the null waited one step
    assert all(s.step <= s.steps for s in states), [(s.step, s.steps) for s in states]
    assert states[-1].steps == states[-1].step == 2


def test_repair_gives_every_remasked_position_a_real_token(engine):
    null = engine.codec.specials.null

    def favour_null(ids, window, attention):
        logits = engine.predict(ids, window, attention).clone()
        logits[..., null] += 50.0
        return logits

    block = "    total = 0\n    for x in items:\n        total += x\n    return total\n"
    count = engine.count_tokens(block)
    remask = [i in (2, 3, count - 3, count - 2) for i in range(count)]
    nulling = engine.with_settings(cache_refresh=0)
    nulling.predict = favour_null
    final = list(nulling.repair("def f(items):\n", block, "\n", remask))[-1].best
    assert final.unresolved == 0 and null not in final.ids and len(final.ids) == count
    kept = [t for t, m in zip(engine.block_tokens(block), remask, strict=True) if not m]
    assert [t for t, m in zip(final.ids, remask, strict=True) if not m] == kept


def test_literal_special_token_strings_in_code_are_plain_text(engine):
    block = "    assert '<|mask|>' not in text and '<|null|>' != text\n"
    ids = engine.block_tokens(block)
    specials = engine.codec.specials
    assert not {specials.mask, specials.null, specials.bos, specials.eos} & set(ids)
    assert engine.codec.decode(ids) == block


def _run(ids, masked, chosen, token, p, span_length=None, floor=0.5, null=5):
    """`null_run` on one row whose window is the whole canvas (its span, then anything past it)."""
    import math

    from diffusion.denoise import DenoiseState, null_run

    width = len(ids)
    span = torch.tensor([[i < (span_length or width) for i in range(width)]])
    state = DenoiseState(torch.tensor([ids]), torch.tensor([masked]), torch.zeros(1), 1, 16, 1, (width,))
    logp = torch.tensor([[math.log(q) for q in p]])
    return null_run(
        state, (0, width), span, torch.tensor([chosen]), torch.tensor([token]), logp, null, floor
    )[0].tolist()


M, N, C = 9, 5, 7  # mask, null, some content token
F, T = False, True


@pytest.mark.parametrize(
    ("ids", "masked", "chosen", "token", "p", "span_length", "expected"),
    [
        # a committed null at the end: the null-read positions next to it join, content stops the run
        ([M, M, M, M, N], [T, T, T, T, F], [F] * 5, [C, C, N, N, N], [0.9] * 5, None, [F, F, T, T, F]),
        # a gap (a position read as content) keeps the positions left of it out
        ([M, M, M, M, N], [T, T, T, T, F], [F] * 5, [N, N, C, N, N], [0.9] * 5, None, [F, F, F, T, F]),
        # below the floor: that position, and all left of it, wait
        (
            [M, M, M, M, N],
            [T, T, T, T, F],
            [F] * 5,
            [C, N, N, N, N],
            [0.9, 0.9, 0.9, 0.4, 0.9],
            None,
            [F] * 5,
        ),
        # no tail started: nothing joins, however sure
        ([M, M, M, M, M], [T] * 5, [F] * 5, [C, N, N, N, N], [0.99] * 5, None, [F] * 5),
        # a null chosen in this very step starts the tail
        ([M, M, M, M, M], [T] * 5, [F, F, F, F, T], [C, C, N, N, N], [0.9] * 5, None, [F, F, T, T, F]),
        # a null id past the span (a checkpoint whose null is also its eos) starts no tail
        ([M, M, M, N], [T, T, T, F], [F] * 4, [C, N, N, N], [0.6] * 4, 3, [F] * 4),
        # a row shorter than the window: the columns past its span are its end
        ([M, M, N, 3, 4], [T, T, F, F, F], [F] * 5, [N, N, 3, 4, 4], [0.9] * 5, 3, [T, T, F, F, F]),
    ],
)
def test_a_started_null_tail_takes_the_positions_read_as_null_next_to_it(
    ids, masked, chosen, token, p, span_length, expected
):
    assert _run(ids, masked, chosen, token, p, span_length) == expected


def test_null_runs_never_take_longer_and_keep_nulls_in_the_tail(engine):
    """On the real model: never more steps than without, and the null tail stays a tail."""
    prefix = "def mean(values):\n    total = sum(values)\n    return "
    suffix = "\n\n\nprint(mean([1, 2, 3]))\n"
    with_runs = list(engine.infill(prefix, suffix, (8, 16, 24)))
    without = list(engine.with_settings(null_run_floor=None).infill(prefix, suffix, (8, 16, 24)))
    assert with_runs[-1].step <= without[-1].step
    null = engine.codec.specials.null
    for candidate in with_runs[-1].candidates:
        ids = list(candidate.ids)
        if null in ids:
            assert all(i == null for i in ids[ids.index(null) :])
