"""How many, and which, masked positions to commit at one step: pure commit rules.

A rule sees one candidate row at a time: the confidences of its still-masked
positions and how many steps are left in the budget, and returns the indices
(into that confidence vector) to commit. Every rule commits at least one
position per step, so a span of k tokens ends within k steps, and a rule with
a step budget commits enough to end within it.
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

    def choose(self, confidence: torch.Tensor, steps_left: int) -> torch.Tensor:
        remaining = confidence.numel()
        floor = max(1, math.ceil(remaining / max(1, steps_left)))
        order = confidence.argsort(descending=True)
        above = int((confidence >= self.tau).sum())
        return order[: max(floor, above)]


@dataclass(frozen=True)
class FixedCount:
    """Commit the `per_step` most confident positions each step (LLaDA's fixed schedule)."""

    per_step: int = 1

    def steps_for(self, span_length: int) -> int:
        return max(1, math.ceil(span_length / self.per_step))

    def choose(self, confidence: torch.Tensor, steps_left: int) -> torch.Tensor:
        return confidence.argsort(descending=True)[: self.per_step]


def one_per_step() -> FixedCount:
    """The "typewriter": one token per forward pass, the reference the benchmark compares against."""
    return FixedCount(per_step=1)


Schedule = Threshold | FixedCount
