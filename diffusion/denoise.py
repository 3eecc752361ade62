"""The denoiser: a generator of immutable states, from all-masked to resolved.

Each step is one forward pass over the span's window of columns: confidences
for every position in it, then the schedule picks which still-masked ones to
commit. The consumer sets the pace and cancels by no longer iterating. How
the logits are computed is a `Predictor` passed in (full recomputation, or
the cached context of `predictors.py`), and how sure each position is, a
`Scorer`: there is one loop for every strategy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from diffusion.canvas import Canvas
from diffusion.confidence import Scorer, top1_probability, torch_scorer
from diffusion.schedule import Schedule, most_confident

TOP1 = torch_scorer(top1_probability)

# (ids (B, T), window (start, stop), attention (B, T) bool | None) -> logits (B, stop - start, V)
# predicting columns start..stop. The window is plain ints known on the host, so no step
# waits for the device to size its output. The caller may modify the logits in place.
Predictor = Callable[[torch.Tensor, tuple[int, int], torch.Tensor | None], torch.Tensor]


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


class LengthPolicy(Protocol):
    """Grows or shrinks a single-row canvas's span after each commit (DreamOn's expand and delete).

    A policy may also have `banned(state) -> tuple[int, ...]`: ids the next step may not
    predict in that state (expand, once the span is full)."""

    def __call__(self, state: DenoiseState) -> DenoiseState: ...


def denoise(
    predict: Predictor,
    canvas: Canvas,
    schedule: Schedule,
    score: Scorer = TOP1,
    banned_ids: Sequence[int] = (),
    resize: LengthPolicy | None = None,
    null_id: int | None = None,
    null_run_floor: float | None = None,
) -> Iterator[DenoiseState]:
    """Yield the initial all-masked state, then one state per forward pass until no mask is left.

    Every step predicts the window of span columns, `canvas.span_start` plus the longest
    span, committed or not: its shape is known before the step runs. `resize`, when given,
    is a length policy applied after each commit (DreamOn's expand and delete); it may grow
    or shrink the canvas of a single-row batch, and its span with it. With `null_run_floor`,
    a null tail once started takes at once the positions the model reads as null, with at
    least that probability, up to it (`null_run`).
    """
    masked = canvas.masked
    start = canvas.span_start
    assert not bool(masked[:, :start].any() or masked[:, start + max(canvas.span_lengths) :].any()), (
        "masked positions outside the canvas's spans"
    )
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
    banned_by_length = getattr(resize, "banned", None)
    span = canvas.masked
    span_first = span & (span.long().cumsum(1) == 1)  # the same at every step
    while not state.done:
        window = (start, start + max(state.span_lengths))
        # Per step, not around the loop: the mode must not stay on while the consumer runs.
        with torch.inference_mode():
            logits = predict(state.ids, window, canvas.attention)  # (B, W, V)
            if banned.numel():
                logits.index_fill_(-1, banned, float("-inf"))
            if banned_by_length is not None and (full := banned_by_length(state)):
                logits[..., list(full)] = float("-inf")
            if null_id is not None:
                restrict_null(logits, state, span, span_first, window, null_id)
            conf, token, token_logp = score(logits)
            tail = (span, null_id) if null_id is not None else None
            state = commit(state, window, schedule, conf, token, token_logp, budgets, tail, null_run_floor)
            if null_id is not None:
                state = fill_after_null(state, span, null_id)
            if resize is not None:
                state = resize(state)
        if state.step >= state.steps and not state.done:
            # A null deferred at the last planned step (content was picked right of it) takes
            # one more: the count a preview shows ("step 2 of 1") must not fall behind.
            state = dataclasses.replace(state, steps=state.step + 1)
        yield state


def commit(
    state: DenoiseState,
    window: tuple[int, int],
    schedule: Schedule,
    conf: torch.Tensor,
    token: torch.Tensor,
    token_logp: torch.Tensor,
    budgets: torch.Tensor,
    null_tail: tuple[torch.Tensor, int] | None = None,
    null_run_floor: float | None = None,
) -> DenoiseState:
    """The next state: the positions `schedule` picks, per row, take their predicted tokens.

    `conf`, `token` and `token_logp` are (B, W), one entry per column of `window`, which
    holds every masked position. Every row is decided at once, without a host round trip
    (on a GPU each one would stall the step until the device drains). With `null_tail`
    (the span (B, T), the null id), a null picked left of content picked in the same
    step waits: null only ever fills a span's tail; with `null_run_floor` too, the tail
    grows by every position `null_run` finds.
    """
    start, stop = window
    masked = state.masked[:, start:stop]
    on_grid = conf.float().masked_fill(~masked, float("-inf"))
    remaining = masked.sum(dim=1)
    steps_left = (budgets - state.step).clamp(min=1)
    chosen = masked & most_confident(on_grid, schedule.counts(on_grid, remaining, steps_left))
    if null_tail is not None:
        span, null_id = null_tail
        chosen = chosen & ~nulls_before_content(state, window, span[:, start:stop], chosen, token, null_id)
        if null_run_floor is not None:
            run = null_run(
                state, window, span[:, start:stop], chosen, token, token_logp, null_id, null_run_floor
            )
            chosen = chosen | run
    ids = state.ids.clone()
    ids[:, start:stop] = torch.where(chosen, token, ids[:, start:stop])
    still_masked = state.masked.clone()
    still_masked[:, start:stop] = masked & ~chosen
    gained = torch.where(chosen, token_logp.float(), 0.0).sum(dim=1)
    return DenoiseState(
        ids=ids,
        masked=still_masked,
        score=state.score + gained,
        step=state.step + 1,
        steps=state.steps,
        forwards=state.forwards + 1,
        span_lengths=state.span_lengths,
    )


def restrict_null(
    logits: torch.Tensor,
    state: DenoiseState,
    span: torch.Tensor,
    span_first: torch.Tensor,
    window: tuple[int, int],
    null_id: int,
) -> None:
    """Null fills only the tail of a span, as in training, and never its first position.

    Without this, the confident nulls of a span's tail pull earlier positions
    to null too and the whole block collapses to nothing. Changes `logits`
    (B, W, V) of the `window` columns in place.
    """
    content = span & ~state.masked & (state.ids != null_id)
    # content_after[b, t]: some committed non-null token lies right of t in the span.
    content_after = (content.flip(1).cumsum(1).flip(1) - content.long()) > 0
    start, stop = window
    logits[..., null_id].masked_fill_((content_after | span_first)[:, start:stop], float("-inf"))


def nulls_before_content(
    state: DenoiseState,
    window: tuple[int, int],
    span: torch.Tensor,
    chosen: torch.Tensor,
    token: torch.Tensor,
    null_id: int,
) -> torch.Tensor:
    """(B, W): chosen nulls with content to their right once this step's picks are in.

    `restrict_null` rules out a null left of content committed in earlier steps; this
    covers content picked in the same step. The row keeps that content, so it still
    commits at least one position.
    """
    start, stop = window
    ids = torch.where(chosen, token, state.ids[:, start:stop])
    resolved = span & ~(state.masked[:, start:stop] & ~chosen)
    content = resolved & (ids != null_id)
    content_after = (content.flip(1).cumsum(1).flip(1) - content.long()) > 0
    return chosen & (token == null_id) & content_after


def null_run(
    state: DenoiseState,
    window: tuple[int, int],
    span: torch.Tensor,
    chosen: torch.Tensor,
    token: torch.Tensor,
    token_logp: torch.Tensor,
    null_id: int,
    floor: float,
) -> torch.Tensor:
    """(B, W): still-masked positions whose top choice is null with probability at least
    `floor`, joined without a gap to a null tail committed before or in this step.

    The model is surest of a span's last positions, so a tail of nulls clears the threshold
    a position or two per step from the right, and a one-token answer in a 24-token span
    took 16 steps. Past a `floor` of at least 0.5 null is likelier than every other token
    together, and a null there makes the rest of the span null anyway (a null tail is the
    only place nulls go), so the run is committed in one step. `span` is the window's span columns
    (B, W); columns past a row's span count as its end.
    """
    start, stop = window
    masked = state.masked[:, start:stop]
    # Only the span's own nulls: a null id that is also the eos or pad id past the span is no tail.
    committed = ((~masked & (state.ids[:, start:stop] == null_id)) | (chosen & (token == null_id))) & span
    predicted = masked & ~chosen & (token == null_id) & (token_logp >= math.log(floor))
    nullish = committed | predicted | ~span
    to_the_end = nullish.flip(1).long().cumprod(1).flip(1).bool()  # every column from t on is nullish
    return predicted & to_the_end & committed.any(dim=1, keepdim=True)


def fill_after_null(state: DenoiseState, span: torch.Tensor, null_id: int) -> DenoiseState:
    """Once a null is committed, every still-masked position after it in the span is null too."""
    null = span & ~state.masked & (state.ids == null_id)
    after_null = (null.long().cumsum(1) > 0) & state.masked & span
    return dataclasses.replace(
        state,
        ids=state.ids.masked_fill(after_null, null_id),
        masked=state.masked & ~after_null,
    )
