"""How many, and which, masked positions to commit at one step: pure commit rules.

A rule sees every row of the batch at once: the confidences on the canvas
grid (minus infinity where nothing is masked), how many positions each row
still has masked and how many steps each has left in its budget, and returns
how many to commit per row; `most_confident` then picks them. Every rule
commits at least one position per step in a row that still has one, so a
span of k tokens ends within k steps, and a rule with a step budget commits
enough to end within it. The rules are tensor arithmetic with no host
round trip, so a step never waits for the device to drain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Threshold:
    """Commit every position whose confidence reaches `tau` (Fast-dLLM's parallel rule).

    At least one per step, and at least `remaining / steps_left` so the span
    resolves within `max_steps`.
    """

    tau: float = 0.9
    max_steps: int = 16

    def steps_for(self, span_length: int) -> int:
        return max(1, min(self.max_steps, span_length))

    def counts(
        self, confidence: torch.Tensor, remaining: torch.Tensor, steps_left: torch.Tensor
    ) -> torch.Tensor:
        floor = torch.div(remaining + steps_left - 1, steps_left, rounding_mode="floor").clamp(min=1)
        above = (confidence >= self.tau).sum(dim=1)
        return torch.where(remaining > 0, torch.maximum(floor, above), 0)


@dataclass(frozen=True)
class FixedCount:
    """Commit the `per_step` most confident positions each step (LLaDA's fixed schedule)."""

    per_step: int = 1

    def steps_for(self, span_length: int) -> int:
        return max(1, math.ceil(span_length / self.per_step))

    def counts(
        self, confidence: torch.Tensor, remaining: torch.Tensor, steps_left: torch.Tensor
    ) -> torch.Tensor:
        return remaining.clamp(max=self.per_step)


def one_per_step() -> FixedCount:
    """The "typewriter": one token per forward pass, the reference the benchmark compares against."""
    return FixedCount(per_step=1)


Schedule = Threshold | FixedCount


def most_confident(confidence: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: the `counts[b]` most confident positions of each row b.

    Ties go to the leftmost position (a stable sort), so a run is reproducible.
    """
    order = confidence.argsort(dim=1, descending=True, stable=True)
    rank = order.argsort(dim=1)
    return rank < counts[:, None]
