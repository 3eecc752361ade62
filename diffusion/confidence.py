"""How sure the model is at each masked position: pure functions of log-probabilities.

Each takes log-probabilities of shape (..., V) (one `log_softmax` per step,
shared with the score of the committed tokens) and returns
`(confidence, token)`: the token the position would commit to and a score
where higher means surer. They differ only in the score (after Fast-dLLM and
the Dream/LLaDA samplers: top-1 probability, top-1 minus top-2 margin,
negative entropy). A `Scorer` wraps one for the denoiser: logits in,
`(confidence, token, log p(token))` out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Confidence = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
# logits (..., V) -> (confidence, token, log p(token)), each (...)
Scorer = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def log_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """(..., V) log-probabilities in float32, whatever the model's dtype."""
    return logits.float().log_softmax(dim=-1)


def top1_probability(log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    best, token = log_probs.max(dim=-1)
    return best.exp(), token


def margin(log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    top = log_probs.topk(2, dim=-1)
    probs = top.values.exp()
    return probs[..., 0] - probs[..., 1], top.indices[..., 0]


def negative_entropy(log_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # A banned id's log-probability is minus infinity: it adds 0 (p log p -> 0), not 0 * -inf = NaN.
    terms = torch.where(torch.isneginf(log_probs), 0.0, log_probs.exp() * log_probs)
    return terms.sum(dim=-1), log_probs.argmax(dim=-1)


CONFIDENCES: dict[str, Confidence] = {
    "top1": top1_probability,
    "margin": margin,
    "entropy": negative_entropy,
}


def torch_scorer(confidence: Confidence) -> Scorer:
    """The reference scorer: one `log_softmax`, then `confidence` on it."""

    def score(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        log_probs = log_probabilities(logits)
        conf, token = confidence(log_probs)
        return conf, token, log_probs.gather(-1, token[..., None])[..., 0]

    return score


def log_probability(logits: torch.Tensor, token: torch.Tensor) -> torch.Tensor:
    """log p(token) at each position, the score a committed token adds to its candidate."""
    return log_probabilities(logits).gather(-1, token[..., None])[..., 0]
