"""How sure the model is at each masked position: pure functions of logits.

Each returns `(confidence, token)` for logits of shape (N, V): the token the
position would commit to and a score where higher means surer. They differ
only in the score (after Fast-dLLM and the Dream/LLaDA samplers: top-1
probability, top-1 minus top-2 margin, negative entropy).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Confidence = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def top1_probability(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    probs = logits.float().softmax(dim=-1)
    confidence, token = probs.max(dim=-1)
    return confidence, token


def margin(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    probs = logits.float().softmax(dim=-1)
    top = probs.topk(2, dim=-1)
    return top.values[:, 0] - top.values[:, 1], top.indices[:, 0]


def negative_entropy(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    log_probs = logits.float().log_softmax(dim=-1)
    entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
    return -entropy, log_probs.argmax(dim=-1)


CONFIDENCES: dict[str, Confidence] = {
    "top1": top1_probability,
    "margin": margin,
    "entropy": negative_entropy,
}


def log_probability(logits: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """log p(token) per row, the score a committed token adds to its candidate."""
    return logits.float().log_softmax(dim=-1).gather(-1, token[:, None])[:, 0]
