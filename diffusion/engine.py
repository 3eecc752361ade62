"""The resident engine: a loaded checkpoint turned into text-level infill streams.

Text in (prefix, suffix), snapshots out: each snapshot lists every candidate
span as segments of resolved text and unresolved token runs, so a client can
draw the block resolving in place. Knows nothing of editors or LSP.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from diffusion.canvas import (
    Canvas,
    build_canvas,
    build_remask_canvas,
    prefix_window,
    stack_canvases,
    suffix_window,
)
from diffusion.checkpoint import Checkpoint, load_checkpoint, read_raw_config
from diffusion.confidence import log_probability
from diffusion.denoise import DenoiseState, denoise
from diffusion.device import pick_device
from diffusion.families import UnknownArchitecture, family_name
from diffusion.fused_confidence import ScorerChoice, choose_scorer
from diffusion.hub import resolve_model
from diffusion.length import expand_delete, start_length
from diffusion.predictors import BlockGraphs, CachedContext, FirstPasses, full_recompute
from diffusion.schedule import Schedule, Threshold


@dataclass(frozen=True)
class EngineSettings:
    """Context windows and decoding defaults; the checkpoint's config may override the windows."""

    max_prefix: int = 192
    max_suffix: int = 64
    max_span: int = 64
    tau: float = 0.9
    max_steps: int = 16
    confidence: str = "top1"
    # Approximate context caching: a full pass every `cache_refresh` steps, block-only
    # passes in between; 0 recomputes the whole canvas every step.
    cache_refresh: int = 4
    # Context tokens on each side of the block recomputed with it at every cached step: the
    # context nearest the block goes stale fastest. On 80 HumanEval single-line tasks (oracle
    # length) 32 raised completions identical to uncached decoding from 64% to 93%, on 40
    # multi-line ones from 28% to 65%, for about 15% more time per cached step.
    cache_margin: int = 32
    # Replay the cached block forward from CUDA graphs (CUDA devices only).
    cuda_graphs: bool = True
    # Pad every canvas to the full window (prefix on the left to `max_prefix`, suffix on
    # the right to `max_suffix`) so that requests share shapes, and a CUDA graph captured
    # for one serves the next. None: exactly when CUDA graphs are in use (elsewhere the
    # padding is only extra arithmetic).
    fixed_shapes: bool | None = None
    # Score each step with the fused CUDA kernel (diffusion/fused_confidence.py). None: when a
    # race on this device, run once per resident model, says it agrees with the torch scorer
    # and is faster; True: always (an error where it cannot run); False: never.
    fused_confidence: bool | None = None
    # Hand each step's state out once the next step is launched, so that the snapshot's host
    # work overlaps the device's next step (`Engine._overlapped`). None: on CUDA only.
    overlap_steps: bool | None = None
    # Grow a span's committed null tail in one step by the positions next to it the model
    # reads as null with at least this probability (`denoise.null_run`), instead of a
    # position or two per step from the right, which kept most inline completions at the
    # full step budget. None: off. 0.7 rather than 0.5 (where null is already likelier than
    # all else): at 0.5 the README's own example ended at "return " instead of "return books".
    null_run_floor: float | None = 0.7

    def default_schedule(self) -> Schedule:
        return Threshold(tau=self.tau, max_steps=self.max_steps)


def fast_path_changes(
    refresh: int | None = None,
    margin: int | None = None,
    no_cuda_graphs: bool = False,
    fused_confidence: str = "auto",
    null_run_floor: float | None = None,
) -> dict:
    """`EngineSettings` changes for the fast-path flags a command was given (None: keep;
    a null-run floor of 0 turns null runs off)."""
    changes = {
        "cache_refresh": refresh,
        "cache_margin": margin,
        "cuda_graphs": False if no_cuda_graphs else None,
        "fused_confidence": {"on": True, "off": False}.get(fused_confidence),
    }
    kept = {key: value for key, value in changes.items() if value is not None}
    if null_run_floor is not None:
        kept["null_run_floor"] = null_run_floor or None
    return kept


# What a byte-level tokenizer decodes an incomplete UTF-8 sequence to.
REPLACEMENT = "\ufffd"


@dataclass(frozen=True)
class InfillAsk:
    """One infill request's part of a batch (`Engine.infill_many`)."""

    prefix: str
    suffix: str
    span_lengths: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Segment:
    """A run of span positions: decoded text when resolved, else a count of masked tokens."""

    text: str
    resolved: bool
    tokens: int


@dataclass(frozen=True)
class Candidate:
    span_length: int
    segments: tuple[Segment, ...]
    score: float  # mean log-probability per committed position
    nulls: int = 0  # committed null positions: the span was longer than its text
    ids: tuple[int, ...] = ()  # the span's token ids (mask id where unresolved)

    @property
    def text(self) -> str:
        """The resolved text only (the final infill once nothing is masked)."""
        return "".join(s.text for s in self.segments if s.resolved)

    @property
    def unresolved(self) -> int:
        return sum(s.tokens for s in self.segments if not s.resolved)

    @property
    def rank(self) -> tuple[bool, float]:
        """Whole text first (no U+FFFD: bytes the model left without the rest of their
        character), then the score."""
        return (REPLACEMENT not in self.text, self.score)


@dataclass(frozen=True)
class InfillSnapshot:
    step: int
    steps: int
    forwards: int
    final: bool
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    @property
    def best(self) -> Candidate:
        return max(self.candidates, key=lambda c: c.rank)

    @property
    def previewed(self) -> Candidate:
        """The candidate a preview draws: while denoising, the longest span, whose masks only
        ever shrink (following the best one would jump between candidates); once final, the best."""
        return self.best if self.final else max(self.candidates, key=lambda c: c.span_length)

    def ranked(self) -> list[Candidate]:
        return sorted(self.candidates, key=lambda c: c.rank, reverse=True)


class Engine:
    """A model kept resident on one device, with its codec and decoding settings."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        device: torch.device,
        settings: EngineSettings,
        graphs: BlockGraphs | None = None,
        first_passes: FirstPasses | None = None,
        scorers: dict[tuple, ScorerChoice] | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        # The uncached Predictor: logits (B, W, V) of a window's columns from one full pass.
        self.predict = full_recompute(checkpoint.model)
        self.device = device
        self.settings = settings
        # Captured graphs belong to the resident model and outlive settings changes.
        if graphs is None and device.type == "cuda":
            graphs = BlockGraphs(checkpoint.model)
        self.graphs = graphs
        # The newest requests' first full passes, reused by a request that starts from the same canvas.
        self.first_passes = first_passes if first_passes is not None else FirstPasses()
        # Scorers chosen so far, per (confidence, fused_confidence setting): the race runs once.
        self.scorers = scorers if scorers is not None else {}
        specials = checkpoint.codec.specials
        # DreamOn-style checkpoints end a span by predicting end-of-text (delete) and
        # grow it by predicting expand; every other model must never commit those inside a span.
        self.length_control = specials.expand is not None and specials.eos is not None
        allowed = {specials.null} | ({specials.eos, specials.expand} if self.length_control else set())
        self.banned_ids = tuple(
            i
            for i in dict.fromkeys((specials.mask, specials.bos, specials.eos, specials.pad))
            if i is not None and i not in allowed
        )

    @classmethod
    def load(
        cls, model: str | Path | None = None, device: str | None = None, dtype: str | None = None
    ) -> Engine:
        folder = resolve_model(model)
        torch_device, dtype = pick_device(device, dtype)
        if is_diffusion_gemma(folder):
            from diffusion.gemma_adapter import load_gemma  # transformers' DiffusionGemma, imported only here

            return load_gemma(folder, torch_device, dtype)
        checkpoint = load_checkpoint(folder, torch_device, dtype)
        return cls(checkpoint, torch_device, settings_for(checkpoint))

    def with_settings(self, **changes) -> Engine:
        """The same resident model with other decoding settings (nothing is reloaded)."""
        return Engine(
            self.checkpoint,
            self.device,
            dataclasses.replace(self.settings, **changes),
            self.graphs,
            self.first_passes,
            self.scorers,
        )

    def scorer_choice(self) -> ScorerChoice:
        """The scorer this engine's steps use (chosen on first use, then kept)."""
        key = (self.settings.confidence, self.settings.fused_confidence)
        if key not in self.scorers:
            config = self.checkpoint.config
            self.scorers[key] = choose_scorer(
                self.settings.confidence,
                self.settings.fused_confidence,
                self.device,
                next(self.checkpoint.model.parameters()).dtype,
                config.vocab_size,
                rows=3,  # a single line's three candidate lengths
                window=self.settings.max_span,
            )
        return self.scorers[key]

    @property
    def codec(self):
        return self.checkpoint.codec

    @property
    def fixed_shapes(self) -> bool:
        if self.settings.fixed_shapes is not None:
            return self.settings.fixed_shapes
        # Fixed shapes serve the cached predictor's captured graphs; without the cache they
        # would only pad every uncached step to the full window.
        return (
            self.graphs is not None
            and self.settings.cuda_graphs
            and self.settings.cache_refresh > 0
            and self.device.type == "cuda"
        )

    def _aligned(self, canvases: Sequence[Canvas]) -> tuple[Canvas, tuple[range, ...]]:
        """`canvases` stacked into one (`stack_canvases`), padded to the full window when
        shapes are fixed."""
        specials = self.codec.specials
        pad = specials.pad if specials.pad is not None else specials.mask
        if not self.fixed_shapes:
            if len(canvases) == 1:
                return canvases[0], (range(canvases[0].ids.shape[0]),)
            return stack_canvases(canvases, pad)
        head = (specials.bos is not None) + self.settings.max_prefix
        tail = self.settings.max_suffix + (specials.eos is not None)
        longest = max(max(c.span_lengths) for c in canvases)
        return stack_canvases(canvases, pad, head, head + longest + tail)

    def _resizes(self, canvas: Canvas, exact_length: bool) -> bool:
        """Whether DreamOn's length control runs on `canvas` (a single row of free length)."""
        return self.length_control and not exact_length and canvas.ids.shape[0] == 1

    def default_span(self) -> int:
        return self.settings.max_span

    def infill(
        self,
        prefix: str,
        suffix: str,
        span_lengths: Sequence[int] | None = None,
        schedule: Schedule | None = None,
        exact_length: bool = False,
    ) -> Iterator[InfillSnapshot]:
        """Stream snapshots of the span(s) between `prefix` and `suffix`; the last is final.

        With `exact_length` every span position gets a real token (no null, no
        length control): the caller knows how long the middle is, as an oracle does.
        """
        if self.length_control and not exact_length and len(span_lengths or (None,)) == 1:
            # One row of free length: expand and delete run (_resizes), from half the budget.
            budget = (span_lengths or (self.settings.max_span,))[0]
            span_lengths = (start_length(min(max(1, budget), self.settings.max_span)),)
        yield from self._run(self._infill_canvas(prefix, suffix, span_lengths), schedule, exact_length)

    def infill_many(self, asks: Sequence[InfillAsk]) -> Iterator[tuple[InfillSnapshot, ...]]:
        """Several infill requests (other documents, other connections) denoised together: one
        forward pass per step serves them all. Yields one snapshot per ask at every step; an
        ask that finished early repeats its final snapshot."""
        if len(asks) == 1:  # alone it keeps everything a single request has (length control)
            ask = asks[0]
            for snapshot in self.infill(ask.prefix, ask.suffix, ask.span_lengths):
                yield (snapshot,)
            return
        stacked, rows = self._aligned([self._infill_canvas(a.prefix, a.suffix, a.span_lengths) for a in asks])
        finals: dict[int, InfillSnapshot] = {}  # asks already done: their snapshot stays as it was
        for state in self._overlapped(self._states(stacked, None)):
            step = []
            for index, r in enumerate(rows):
                snapshot = finals.get(index) or self.snapshot(
                    state.rows(r.start, r.stop), stacked.span_start, state.span_lengths[r.start : r.stop]
                )
                if snapshot.final:
                    finals[index] = snapshot
                step.append(snapshot)
            yield tuple(step)

    def _infill_canvas(self, prefix: str, suffix: str, span_lengths: Sequence[int] | None) -> Canvas:
        lengths = [min(max(1, k), self.settings.max_span) for k in (span_lengths or [self.settings.max_span])]
        codec = self.codec
        return build_canvas(
            prefix_window(codec, prefix, self.settings.max_prefix),
            suffix_window(codec, suffix, self.settings.max_suffix),
            lengths,
            codec.specials,
            self.device,
            needs_lead=self.checkpoint.config.shift_logits,
        )

    def count_tokens(self, text: str) -> int:
        return len(self.codec.encode(text))

    def block_tokens(self, block: str) -> list[int]:
        return self.codec.encode(block)

    def score_block(self, prefix: str, block: str, suffix: str, stride: int = 4) -> list[float]:
        """log p(original token) for every token of `block`, each read with it (and every
        `stride`-th neighbour) masked: masked re-prediction, `stride` rows in one forward pass."""
        canvas = self._block_canvas(
            prefix,
            block,
            suffix,
            [[i % stride == r for i in range(self.count_tokens(block))] for r in range(stride)],
        )
        start = canvas.span_start
        block_ids = canvas.ids.new_tensor(self.block_tokens(block))
        if not len(block_ids):
            return []
        window = (start, start + len(block_ids))
        logits = self.predict(canvas.ids, window, canvas.attention)  # (stride, W, V)
        scores = log_probability(logits, block_ids.expand(len(logits), -1))  # (stride, W)
        # Token i was masked in row i % stride: its score is read there.
        columns = torch.arange(len(block_ids), device=scores.device)
        return scores[columns % stride, columns].tolist()

    def repair(
        self, prefix: str, block: str, suffix: str, remask: list[bool], schedule: Schedule | None = None
    ) -> Iterator[InfillSnapshot]:
        """Re-denoise only the `remask` positions of `block`'s tokens, keeping the rest.

        Every remasked position gets a real token: the null rules speak of one contiguous
        span's tail, and remasked positions are scattered through kept code."""
        yield from self._run(self._block_canvas(prefix, block, suffix, [remask]), schedule, exact_length=True)

    def _block_canvas(self, prefix: str, block: str, suffix: str, patterns: list[list[bool]]) -> Canvas:
        codec = self.codec
        return build_remask_canvas(
            prefix_window(codec, prefix, self.settings.max_prefix),
            self.block_tokens(block),
            suffix_window(codec, suffix, self.settings.max_suffix),
            patterns,
            codec.specials,
            self.device,
            needs_lead=self.checkpoint.config.shift_logits,
        )

    def _run(
        self, canvas: Canvas, schedule: Schedule | None, exact_length: bool = False
    ) -> Iterator[InfillSnapshot]:
        if not self._resizes(canvas, exact_length):  # a resized canvas changes shape anyway
            canvas, _ = self._aligned([canvas])
        for state in self._overlapped(self._states(canvas, schedule, exact_length)):
            yield self.snapshot(state, canvas.span_start, state.span_lengths)

    def _overlapped(self, states: Iterator[DenoiseState]) -> Iterator[DenoiseState]:
        """`states`, each handed out once the step after it has been launched (on CUDA), as a
        copy on the host.

        Turning a state into a snapshot (decoding text, the client's preview) is host work;
        handed out a step late, it runs while the device computes the next step instead of
        leaving the device idle. The copy to the host is queued as soon as the state exists,
        before the next step's kernels: a copy queued after them would wait for them. On a
        CPU, where a step runs as it is launched, overlapping would only hold every preview
        back by a step, so states go out as they come. A consumer that stops early leaves
        at most one launched step unread.
        """
        if not self.overlap_steps:
            yield from states
            return
        pending = None
        for state in states:
            copied = to_host(state)  # queued before the next step is launched
            if pending is not None:
                yield pending.wait()
            pending = copied
        if pending is not None:
            yield pending.wait()

    @property
    def overlap_steps(self) -> bool:
        if self.settings.overlap_steps is not None:
            return self.settings.overlap_steps
        return self.device.type == "cuda"

    def _states(
        self, canvas: Canvas, schedule: Schedule | None, exact_length: bool = False
    ) -> Iterator[DenoiseState]:
        specials = self.codec.specials
        resize = None
        banned, null = self.banned_ids, specials.null
        if exact_length:
            length_ids = (specials.null, specials.expand, specials.eos)
            banned = tuple(dict.fromkeys((*banned, *(i for i in length_ids if i is not None))))
            null = None
        elif self._resizes(canvas, exact_length):
            resize = expand_delete(
                specials.expand, specials.eos, specials.mask, canvas.span_start, self.settings.max_span
            )
        elif self.length_control:  # several rows: no length policy runs, so nothing may ask to expand
            banned = (*banned, specials.expand)
        refresh = self.settings.cache_refresh
        graphs = self.graphs if self.settings.cuda_graphs else None
        predictor = (
            CachedContext(
                self.checkpoint.model,
                refresh,
                graphs,
                self.settings.cache_margin,
                self.first_passes,
            )
            if refresh
            else self.predict
        )
        return denoise(
            predictor,
            canvas,
            schedule or self.settings.default_schedule(),
            self.scorer_choice().scorer,
            banned,
            resize,
            null,
            self.settings.null_run_floor,
        )

    def snapshot(self, state: DenoiseState, span_start: int, lengths: Sequence[int]) -> InfillSnapshot:
        # Only the span's columns come back from the device, not the padded canvas.
        stop = span_start + max(lengths)
        ids = state.ids[:, span_start:stop].tolist()
        masked = state.masked[:, span_start:stop].tolist()
        candidates = []
        for row, k in enumerate(lengths):
            span_ids = ids[row][:k]
            span_masked = masked[row][:k]
            committed = k - sum(span_masked)
            score = float(state.score[row]) / committed if committed else -math.inf
            null = self.codec.specials.null
            nulls = sum(1 for i, m in zip(span_ids, span_masked, strict=True) if not m and i == null)
            segments = self.segments(span_ids, span_masked)
            candidates.append(Candidate(k, segments, score, nulls, tuple(span_ids)))
        return InfillSnapshot(
            step=state.step,
            steps=state.steps,
            forwards=state.forwards,
            final=not any(any(row) for row in masked),  # every mask lies in the span columns
            candidates=tuple(candidates),
        )

    def segments(self, span_ids: list[int], span_masked: list[bool]) -> tuple[Segment, ...]:
        """Group positions into runs; decode resolved runs whole so multi-byte text survives.

        A character whose bytes are split between a resolved run and a masked neighbour
        decodes to U+FFFD until the rest of it resolves: that piece is left out of the run
        (it is still masked, in effect) rather than drawn as a broken character.
        """
        runs: list[Segment] = []
        start = 0
        for i in range(1, len(span_ids) + 1):
            if i == len(span_ids) or span_masked[i] != span_masked[start]:
                if span_masked[start]:
                    runs.append(Segment("", False, i - start))
                else:
                    text = self.codec.decode(span_ids[start:i])
                    if start > 0:  # after a masked run
                        text = text.lstrip(REPLACEMENT)
                    if i < len(span_ids):  # before one
                        text = text.rstrip(REPLACEMENT)
                    runs.append(Segment(text, True, i - start))
                start = i
        return tuple(r for r in runs if r.text or not r.resolved)


@dataclass(frozen=True)
class HostCopy:
    """A state's copy on the host, in flight until `wait` returns it."""

    state: DenoiseState
    done: torch.cuda.Event | None

    def wait(self) -> DenoiseState:
        if self.done is not None:
            self.done.synchronize()
        return self.state


def to_host(state: DenoiseState) -> HostCopy:
    """Queue copies of a state's tensors to the host without waiting for the device (into
    pinned memory on CUDA); `HostCopy.wait` hands the copy over once it has landed."""
    copy = dataclasses.replace(
        state,
        ids=state.ids.to("cpu", non_blocking=True),
        masked=state.masked.to("cpu", non_blocking=True),
        score=state.score.to("cpu", non_blocking=True),
    )
    if not state.ids.is_cuda:
        return HostCopy(copy, None)
    done = torch.cuda.Event()
    done.record()
    return HostCopy(copy, done)


def is_diffusion_gemma(folder: Path) -> bool:
    """Whether `folder` holds a DiffusionGemma checkpoint (run by transformers, not our transformer)."""
    if not (folder / "config.json").is_file():
        return False  # load_checkpoint names what is missing
    try:
        return family_name(read_raw_config(folder)) == "diffusion_gemma"
    except (UnknownArchitecture, ValueError):
        return False  # load_checkpoint reports it with the file's name


def settings_for(checkpoint: Checkpoint) -> EngineSettings:
    """Windows the checkpoint was trained for (config keys `infill_max_*`), else defaults."""
    config = checkpoint.config
    defaults = EngineSettings()
    limit = config.max_position_embeddings
    # Checkpoints of other families were trained on long sequences: give them a wide window.
    return EngineSettings(
        max_prefix=config.infill_max_prefix or min(1024, limit // 2),
        max_suffix=config.infill_max_suffix or min(256, limit // 4),
        max_span=config.infill_max_span or min(defaults.max_span, limit // 4),
    )
