"""The denoiser: a generator of immutable states, from all-masked to resolved.

Each step is one forward pass: confidences for every still-masked position,
then the schedule picks which to commit. The consumer sets the pace and
cancels by no longer iterating. How the logits are computed is a
`Predictor` passed in (full recomputation today; a cached-context strategy
plugs in the same way), so there is one loop for every strategy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from diffusion.canvas import Canvas
from diffusion.confidence import Confidence, log_probabilities, top1_probability
from diffusion.schedule import Schedule, most_confident

# (ids (B, T), select (B, T) bool, attention (B, T) bool | None) -> logits (N, V)
# for the N selected positions in row-major order.
Predictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass(frozen=True)
class DenoiseState:
    """One snapshot of the canvas. Tensors are never modified after the state is made."""

    ids: torch.Tensor  # (B, T) token ids; mask id where still masked
    masked: torch.Tensor  # (B, T) bool
    score: torch.Tensor  # (B,) summed log-probability of the tokens committed so far
    step: int  # forward passes consumed by this request so far
    steps: int  # step budget: the denoiser ends within this many steps
    forwards: int
    span_lengths: tuple[int, ...] = ()  # current region length per row (a length policy may change it)

    @property
    def remaining(self) -> torch.Tensor:
        return self.masked.sum(dim=1)

    @property
    def done(self) -> bool:
        return not bool(self.masked.any())

    def rows(self, start: int, stop: int) -> DenoiseState:
        """The state of rows start:stop alone (one request of a batch)."""
        return dataclasses.replace(
            self,
            ids=self.ids[start:stop],
            masked=self.masked[start:stop],
            score=self.score[start:stop],
            span_lengths=self.span_lengths[start:stop],
        )


def denoise(
    predict: Predictor,
    canvas: Canvas,
    schedule: Schedule,
    confidence: Confidence = top1_probability,
    banned_ids: Sequence[int] = (),
    resize: Callable[[DenoiseState], DenoiseState] | None = None,
    null_id: int | None = None,
) -> Iterator[DenoiseState]:
    """Yield the initial all-masked state, then one state per forward pass until no mask is left.

    `resize`, when given, is a length policy applied after each commit (DreamOn's
    expand and delete); it may grow or shrink the canvas of a single-row batch.
    """
    masked = canvas.masked
    budgets = torch.tensor([schedule.steps_for(n) for n in masked.sum(dim=1).tolist()], device=masked.device)
    state = DenoiseState(
        ids=canvas.ids,
        masked=masked,
        score=torch.zeros(masked.shape[0], device=masked.device),
        step=0,
        steps=int(budgets.max()),
        forwards=0,
        span_lengths=canvas.span_lengths,
    )
    yield state
    banned = torch.tensor(list(banned_ids), dtype=torch.long, device=masked.device)
    while not state.done:
        logits = predict(state.ids, state.masked, canvas.attention)  # (N, V)
        if banned.numel():
            logits = logits.index_fill(1, banned, float("-inf"))
        if null_id is not None:
            logits = restrict_null(logits, state, canvas.masked, null_id)
        log_probs = log_probabilities(logits)
        conf, token = confidence(log_probs)
        token_logp = log_probs.gather(-1, token[:, None])[:, 0]
        state = commit(state, schedule, conf, token, token_logp, budgets)
        if null_id is not None:
            state = fill_after_null(state, canvas.masked, null_id)
        if resize is not None:
            state = resize(state)
        yield state


def commit(
    state: DenoiseState,
    schedule: Schedule,
    conf: torch.Tensor,
    token: torch.Tensor,
    token_logp: torch.Tensor,
    budgets: torch.Tensor,
) -> DenoiseState:
    """The next state: the positions `schedule` picks, per row, take their predicted tokens.

    `conf`, `token` and `token_logp` hold one entry per masked position in
    row-major order; they are laid back on the (B, T) grid so every row is
    decided at once, without a host round trip (on a GPU each one would stall
    the step until the device drains).
    """
    masked = state.masked
    on_grid = torch.full(masked.shape, float("-inf"), device=masked.device).masked_scatter(
        masked, conf.float()
    )
    remaining = masked.sum(dim=1)
    steps_left = (budgets - state.step).clamp(min=1)
    chosen = masked & most_confident(on_grid, schedule.counts(on_grid, remaining, steps_left))
    predicted = state.ids.masked_scatter(masked, token)
    gained = torch.zeros(masked.shape, device=masked.device).masked_scatter(masked, token_logp.float())
    return DenoiseState(
        ids=torch.where(chosen, predicted, state.ids),
        masked=masked & ~chosen,
        score=state.score + (gained * chosen).sum(dim=1),
        step=state.step + 1,
        steps=state.steps,
        forwards=state.forwards + 1,
        span_lengths=state.span_lengths,
    )


def restrict_null(
    logits: torch.Tensor, state: DenoiseState, span: torch.Tensor, null_id: int
) -> torch.Tensor:
    """Null fills only the tail of a span, as in training, and never its first position.

    Without this, the confident nulls of a span's tail pull earlier positions
    to null too and the whole block collapses to nothing.
    """
    content = span & ~state.masked & (state.ids != null_id)
    # content_after[b, t]: some committed non-null token lies right of t in the span.
    content_after = (content.flip(1).cumsum(1).flip(1) - content.long()) > 0
    first = span & (span.long().cumsum(1) == 1)
    forbidden = (content_after | first)[state.masked]  # (N,), the order of the logits
    column = logits[:, null_id].masked_fill(forbidden, float("-inf"))
    return logits.index_copy(1, torch.tensor([null_id], device=logits.device), column[:, None])


def fill_after_null(state: DenoiseState, span: torch.Tensor, null_id: int) -> DenoiseState:
    """Once a null is committed, every still-masked position after it in the span is null too."""
    null = span & ~state.masked & (state.ids == null_id)
    after_null = (null.long().cumsum(1) > 0) & state.masked & span
    return dataclasses.replace(
        state,
        ids=state.ids.masked_fill(after_null, null_id),
        masked=state.masked & ~after_null,
    )
