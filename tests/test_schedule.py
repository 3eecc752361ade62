"""The commit rules on hand-made confidence grids: every row decided at once."""

from __future__ import annotations

import torch

from diffusion.denoise import DenoiseState, commit
from diffusion.schedule import FixedCount, Threshold, most_confident

INF = float("inf")


def grid(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_threshold_counts_the_confident_positions_with_a_floor_of_one_and_a_budget():
    confidence = grid(
        [0.95, 0.50, 0.92, -INF],  # two above tau
        [0.10, 0.20, 0.30, 0.40],  # none above: the floor of one
        [-INF, -INF, -INF, -INF],  # nothing masked: nothing to commit
        [0.10, 0.20, 0.30, 0.40],  # four left, two steps left: two now
    )
    remaining = torch.tensor([3, 4, 0, 4])
    steps_left = torch.tensor([8, 8, 8, 2])
    assert Threshold(tau=0.9).counts(confidence, remaining, steps_left).tolist() == [2, 1, 0, 2]


def test_fixed_count_never_commits_more_than_is_left():
    confidence = grid([0.1, 0.2, -INF], [0.3, -INF, -INF])
    counts = FixedCount(per_step=2).counts(confidence, torch.tensor([2, 1]), torch.tensor([1, 1]))
    assert counts.tolist() == [2, 1]


def test_most_confident_picks_the_top_of_each_row_and_breaks_ties_leftmost():
    confidence = grid([0.2, 0.9, 0.5, 0.9], [0.7, 0.7, 0.7, 0.7])
    chosen = most_confident(confidence, torch.tensor([2, 1]))
    assert chosen.tolist() == [[False, True, False, True], [True, False, False, False]]


def test_commit_takes_the_window_predictions_of_masked_positions_only():
    mask_id = 99
    ids = torch.tensor([[1, mask_id, mask_id, 2], [3, mask_id, 4, mask_id]])
    masked = ids == mask_id
    state = DenoiseState(ids=ids, masked=masked, score=torch.zeros(2), step=0, steps=4, forwards=0)
    # One entry per column of the window, columns 1..3; (0, 3) and (1, 2) are not masked,
    # so their predictions count for nothing, however confident.
    conf = torch.tensor([[0.95, 0.30, 0.99], [0.20, 0.99, 0.60]])
    token = torch.tensor([[10, 11, 12], [13, 14, 15]])
    logp = torch.tensor([[-0.1, -1.0, -0.01], [-2.0, -0.01, -0.5]])
    after = commit(state, (1, 4), Threshold(tau=0.9, max_steps=4), conf, token, logp, torch.tensor([4, 4]))
    assert after.ids.tolist() == [[1, 10, mask_id, 2], [3, mask_id, 4, 15]]
    assert after.masked.tolist() == [[False, False, True, False], [False, True, False, False]]
    assert torch.allclose(after.score, torch.tensor([-0.1, -0.5]))
    assert (after.step, after.forwards) == (1, 1)
    assert torch.equal(state.ids, ids) and torch.equal(state.masked, masked)  # the old state is untouched
