"""DiffusionGemma through transformers' own implementation, behind the `Engine` surface.

DiffusionGemma (`DiffusionGemmaForBlockDiffusion`) is an instruction-tuned
block-diffusion model: it writes an answer to a prompt one canvas of
`canvas_length` tokens at a time, each canvas denoised from uniform random
tokens (not masks). It has no native infill, so a request becomes a prompt
("fill in the code at <FILL>", the prefix, the marker, the suffix; through the
tokenizer's chat template when the folder has one) and the middle is taken
from its answer (`answer_bounds`: inside the first code fence, echoed context
lines dropped).

Streaming: `generate()` blocks and calls `streamer.put_draft(argmax canvas)`
once per denoising step. It runs on a helper thread whose streamer puts the
drafts on a queue; `infill` turns each into an `InfillSnapshot`. Closing the
iterator sets a flag, the streamer raises on its next call, `generate` aborts
and the thread is joined.

What "unresolved" means here: a draft position is unresolved while its token
differs from the one the previous draft held there (every position of a
canvas's first draft is unresolved); tokens of earlier, finished canvases and
every token of the final snapshot are resolved. The entropy-bound sampler's
own acceptance is per step (rejected positions are re-noised, accepted ones can
be re-drawn later) and is not handed to the streamer, so draft stability is
the signal that matches what the client sees. Positions can therefore go back
to unresolved when the model changes its mind.

Snapshot scores are NaN: the streamer gets argmax tokens, not logits (asking
for logits would copy canvas x vocabulary floats to the host every step).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
import math
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diffusion.checkpoint import CheckpointError, read_raw_config, weight_files
from diffusion.engine import Candidate, EngineSettings, InfillSnapshot, Segment
from diffusion.families import UnknownArchitecture, family_name
from diffusion.memory import InsufficientMemory, check_fits

log = logging.getLogger(__name__)

FAMILY = "diffusion_gemma"
FILL = "<FILL>"
# Answer tokens allowed on top of the requested span: the code fence lines around the middle.
ANSWER_OVERHEAD = 8
DEFAULT_CANVAS = 256
MAX_SPAN_BOUND = 1024
GEMMA_MAX_PREFIX = 1024
GEMMA_MAX_SUFFIX = 512
MAX_ROWS = 4  # alternatives sampled in one batch (rewrite mode asks for several span lengths)
CHARS_PER_TOKEN_BOUND = 8
# End-of-turn strings of the Gemma chat formats; only those the tokenizer knows are used.
END_OF_TURN_TOKENS = ("<end_of_turn>", "<turn|>", "<|turn_end|>", "<eos>")
# Stands in for the user turn while the chat template is rendered, so the template's own
# text (with its special tokens) and the user's code (read literally) are encoded apart.
CONTENT_SLOT = "\u0000unmask-user-turn\u0000"
SUGGEST_UNSUPPORTED = "suggest mode needs a masked model; DiffusionGemma corrupts with random tokens"


# ---------------------------------------------------------------- prompt and answer (pure functions)


def fence_for(*texts: str) -> str:
    """A code fence longer than any backtick run in the context, so the context cannot close it."""
    longest = max((len(run) for text in texts for run in re.findall(r"`{3,}", text)), default=0)
    return "`" * max(3, longest + 1)


def infill_instruction(prefix: str, suffix: str) -> str:
    """The user request: the code with the marker where the middle goes, in one fenced block."""
    fence = fence_for(prefix, suffix)
    return (
        f"Fill in the code at {FILL}. Reply with only the code that replaces {FILL}, "
        "in one fenced code block, without repeating the code around it and without explanation.\n\n"
        f"{fence}\n{prefix}{FILL}{suffix}\n{fence}"
    )


def plain_prompt(prefix: str, suffix: str) -> str:
    """The prompt for a folder without a chat template."""
    return infill_instruction(prefix, suffix) + "\n\nAnswer:\n"


def literal_ids(tokenizer: Any, text: str) -> list[int]:
    """`text`'s ids with any special-token string in it read as plain characters."""
    return tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)


def _line_starts(text: str) -> list[int]:
    return [0, *(m.end() for m in re.finditer("\n", text))]


def _echoed_prefix(middle: str, prefix: str) -> int:
    """Characters at the start of `middle` that repeat the prefix's last lines, from a line start.

    The current (last) line counts even when it is only indentation; earlier
    starting points need some non-blank text, so a blank line is never taken
    for an echo.
    """
    if not prefix or not middle:
        return 0
    starts = _line_starts(prefix)
    current = starts[-1]
    for start in starts:  # earliest first: the longest echo wins
        tail = prefix[start:]
        if not tail or len(tail) > len(middle) or not middle.startswith(tail):
            continue
        if start == current or tail.strip():
            return len(tail)
    return 0


def _echoed_suffix(middle: str, suffix: str) -> int:
    """Characters at the end of `middle` that repeat the suffix's first lines (up to a line end).

    A short echo (one closing bracket) is too often legitimate code to drop, so
    it needs two non-blank characters or a line break.
    """
    if not suffix or not middle:
        return 0
    ends = [m.start() for m in re.finditer("\n", suffix)] + [len(suffix)]
    for end in reversed(ends):  # longest first
        head = suffix[:end]
        if not head or len(head) > len(middle) or not middle.endswith(head):
            continue
        visible = len("".join(head.split()))
        if visible >= 2 or (visible == 1 and "\n" in head):
            return len(head)
    return 0


def answer_bounds(answer: str, prefix: str, suffix: str) -> tuple[int, int]:
    """Where the middle lies in the model's answer, as a [start, end) character window.

    Inside the first code fence when there is one (to its closing fence or the
    end, while the answer is still streaming), else the whole answer; then
    without trailing line breaks (one is kept when the middle inserts whole
    lines before a suffix that starts mid-line), and without context the model
    echoed (see `_echoed_prefix`, `_echoed_suffix`).
    """
    start, end = 0, len(answer)
    opening = re.search(r"^[ \t]*(`{3,})[^`\n]*\n", answer, re.M)
    if opening:
        start = opening.end()
        closing = re.compile(r"^[ \t]*" + opening.group(1) + r"`*[ \t]*$", re.M).search(answer, start)
        if closing:
            end = closing.start()
    elif re.match(r"\s*`{3,}[^\n]*$", answer):
        return len(answer), len(answer)  # a fence line still being written: no code yet
    else:
        closing = re.search(r"^[ \t]*`{3,}[ \t]*$", answer, re.M)  # code, then a stray closing fence
        if closing:
            end = closing.start()
    middle = answer[start:end]
    trimmed = middle.rstrip("\r\n")
    line_insert = (not prefix or prefix.endswith("\n")) and suffix and not suffix.startswith(("\n", "\r\n"))
    if line_insert and len(trimmed) < len(middle) and trimmed:
        trimmed = middle[: len(trimmed) + (2 if middle[len(trimmed)] == "\r" else 1)]
    end = start + len(trimmed)
    start += _echoed_prefix(trimmed, prefix)
    end -= _echoed_suffix(answer[start:end], suffix)
    return start, max(start, end)


def extract_middle(answer: str, prefix: str, suffix: str) -> str:
    """The infill in `answer` (see `answer_bounds`)."""
    start, end = answer_bounds(answer, prefix, suffix)
    return answer[start:end]


def cut_answer(ids: Sequence[int], stop_ids: frozenset[int] | set[int], budget: int) -> list[int]:
    """Generated ids up to (not including) the first stop id, at most `budget` of them."""
    kept: list[int] = []
    for token in ids[:budget]:
        if token in stop_ids:
            break
        kept.append(int(token))
    return kept


def token_pieces(decode: Callable[[list[int]], str], ids: list[int]) -> list[str]:
    """Each token's share of `decode(ids)`: the pieces concatenate to the decoded text exactly.

    One batched per-token decode when that reproduces the text; otherwise
    (byte-fallback tokens that only make a character together, tokenizers that
    strip spaces at the start) prefix decodes, quadratic but bounded by a canvas.
    """
    if not ids:
        return []
    full = decode(ids)
    pieces = [decode([i]) for i in ids]
    if "".join(pieces) == full:
        return pieces
    bounds = [0]
    for i in range(1, len(ids)):
        bounds.append(min(len(full), max(bounds[-1], len(decode(ids[:i])))))
    bounds.append(len(full))
    return [full[a:b] for a, b in itertools.pairwise(bounds)]


def answer_segments(
    pieces: Sequence[str], unresolved: Sequence[bool], prefix: str, suffix: str
) -> tuple[tuple[Segment, ...], int]:
    """Segments of the middle inside an answer given per token, and how many tokens the middle spans.

    Tokens are grouped into runs of equal resolution; a resolved run shows its
    text inside the middle's window, an unresolved run the count of its tokens
    that reach into the window.
    """
    answer = "".join(pieces)
    start, end = answer_bounds(answer, prefix, suffix)
    runs: list[Segment] = []
    spanned = 0
    position = 0
    run_text: list[str] = []
    run_tokens = 0
    run_state: bool | None = None

    def flush() -> None:
        if run_state is None or run_tokens == 0:
            return
        if run_state:
            runs.append(Segment("", False, run_tokens))
        elif text := "".join(run_text):
            runs.append(Segment(text, True, run_tokens))

    for piece, hidden in zip(pieces, unresolved, strict=True):
        a, b = position, position + len(piece)
        position = b
        inside = (max(a, start) < min(b, end)) or (a == b and start <= a < end)
        if not inside:
            continue
        spanned += 1
        if hidden != run_state:
            flush()
            run_state, run_text, run_tokens = hidden, [], 0
        run_text.append(answer[max(a, start) : min(b, end)])
        run_tokens += 1
    flush()
    return tuple(runs), spanned


def clip_context(
    tokenizer: Any, prefix: str, suffix: str, max_prefix: int, max_suffix: int
) -> tuple[str, str]:
    """The prefix's last `max_prefix` tokens and the suffix's first `max_suffix`, cut at whole lines."""
    return _clip(tokenizer, prefix, max_prefix, tail=True), _clip(tokenizer, suffix, max_suffix, tail=False)


def _clip(tokenizer: Any, text: str, max_tokens: int, tail: bool) -> str:
    if max_tokens <= 0 or not text:
        return ""
    window = max_tokens * CHARS_PER_TOKEN_BOUND
    piece = text[-window:] if tail else text[:window]
    try:
        offsets = tokenizer(
            piece, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True
        )["offset_mapping"]
    except (NotImplementedError, TypeError, ValueError, KeyError):
        offsets = None
    if offsets is None:  # a tokenizer without offsets: a character bound
        limit = max_tokens * 3
        cut = piece[-limit:] if tail else piece[:limit]
    elif len(offsets) <= max_tokens:
        cut = piece
    else:
        cut = piece[offsets[-max_tokens][0] :] if tail else piece[: offsets[max_tokens - 1][1]]
    if len(cut) == len(text):
        return text
    if tail and "\n" in cut:
        return cut[cut.index("\n") + 1 :]
    if not tail and "\n" in cut:
        return cut[: cut.rindex("\n") + 1]
    return cut


# ---------------------------------------------------------------- streaming generate on a thread


class GenerationStopped(Exception):
    """Raised inside `generate` (from the streamer) when the consumer stopped iterating."""


@dataclass(frozen=True)
class Draft:
    """Generated ids per row (finished canvases, then the current draft), cut at a stop id and the budget."""

    step: int
    steps: int
    ids: tuple[tuple[int, ...], ...]
    unresolved: tuple[tuple[bool, ...], ...]
    final: bool


class QueueStreamer:
    """A `generate` streamer that forwards drafts and finished canvases to a queue, and stops on request."""

    def __init__(self, events: queue.SimpleQueue, stop: threading.Event) -> None:
        self.events = events
        self.stop = stop
        self._takes_logits = False
        self._prompt_seen = False

    def _check(self) -> None:
        if self.stop.is_set():
            raise GenerationStopped

    def put(self, value: torch.Tensor) -> None:
        self._check()
        if not self._prompt_seen:  # the first put is the prompt
            self._prompt_seen = True
            return
        self.events.put(("canvas", value.detach().to("cpu").reshape(-1, value.shape[-1]).tolist()))

    def put_draft(self, value: torch.Tensor, **_: Any) -> None:
        self._check()
        self.events.put(("draft", value.detach().to("cpu").reshape(-1, value.shape[-1]).tolist()))

    def end(self) -> None:
        pass


class DraftTracker:
    """Turns the streamer's events for one `generate` call into `Draft`s."""

    def __init__(
        self,
        rows: int,
        budgets: Sequence[int],
        stop_ids: frozenset[int],
        planned_steps: int,
    ) -> None:
        self.budgets = list(budgets)
        self.stop_ids = stop_ids
        self.committed: list[list[int]] = [[] for _ in range(rows)]
        self.previous: list[list[int]] | None = None
        self.step = 0
        self.steps = max(1, planned_steps)

    def draft(self, canvas: list[list[int]]) -> Draft:
        self.step += 1
        previous = self.previous
        self.previous = canvas
        ids, unresolved = [], []
        for row, tokens in enumerate(canvas):
            done = self.committed[row]
            kept = cut_answer(done + tokens, self.stop_ids, self.budgets[row])
            flags = [
                i >= len(done) and (previous is None or previous[row][i - len(done)] != kept[i])
                for i in range(len(kept))
            ]
            ids.append(tuple(kept))
            unresolved.append(tuple(flags))
        return Draft(self.step, max(self.steps, self.step), tuple(ids), tuple(unresolved), final=False)

    def commit(self, canvas: list[list[int]]) -> None:
        for row, tokens in enumerate(canvas):
            self.committed[row].extend(tokens)
        self.previous = None

    def final(self, sequences: list[list[int]]) -> Draft:
        ids = tuple(
            tuple(cut_answer(row, self.stop_ids, b)) for row, b in zip(sequences, self.budgets, strict=True)
        )
        return Draft(self.step, self.step, ids, tuple((False,) * len(r) for r in ids), final=True)


# ---------------------------------------------------------------- the engine


class GemmaCodec:
    """Text <-> ids for callers that use `engine.codec`."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def encode(self, text: str) -> list[int]:
        return literal_ids(self.tokenizer, text) if text else []

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True) if len(ids) else ""


@dataclass(frozen=True)
class GemmaCheckpoint:
    model: Any  # DiffusionGemmaForBlockDiffusion: `num_parameters()` comes from PreTrainedModel
    tokenizer: Any
    path: Path
    family: str = FAMILY


def stop_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence and end-of-turn ids from the generation config, the model config and the tokenizer."""
    found: set[int] = set()

    def add(value: Any) -> None:
        if value is None:
            return
        if isinstance(value, (list, tuple)):
            for item in value:
                add(item)
        else:
            found.add(int(value))

    add(getattr(getattr(model, "generation_config", None), "eos_token_id", None))
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    add(getattr(text_config, "eos_token_id", None))
    add(getattr(tokenizer, "eos_token_id", None))
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        add(vocab.get(token))
    return frozenset(found)


class GemmaEngine:
    """A DiffusionGemma model kept resident on one device, streaming infill as `InfillSnapshot`s."""

    supports_suggest = False  # score_block/repair need a masked model

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: torch.device,
        path: Path | None = None,
        seed: int | None = 0,
        denoising_steps: int | None = None,
    ) -> None:
        self.checkpoint = GemmaCheckpoint(model, tokenizer, Path(path) if path else Path("."))
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.seed = seed
        self.denoising_steps = denoising_steps
        self.codec = GemmaCodec(tokenizer)
        self.stop_ids = stop_token_ids(model, tokenizer)
        self.canvas_length = int(getattr(model.config, "canvas_length", None) or DEFAULT_CANVAS)
        self.settings = gemma_settings(model, self.canvas_length, self.steps_per_canvas())
        self._lock = threading.Lock()  # one generate at a time on this model

    # -- the Engine surface

    def default_span(self) -> int:
        return self.settings.max_span

    def with_settings(self, **changes: Any) -> GemmaEngine:
        """A view of this engine (same model) with some settings replaced."""
        other = copy.copy(self)
        other.settings = dataclasses.replace(self.settings, **changes)
        return other

    def count_tokens(self, text: str) -> int:
        return len(self.codec.encode(text))

    def block_tokens(self, block: str) -> list[int]:
        return self.codec.encode(block)

    def score_block(self, prefix: str, block: str, suffix: str, stride: int = 4) -> list[float]:
        raise NotImplementedError(SUGGEST_UNSUPPORTED)

    def repair(self, prefix: str, block: str, suffix: str, remask: list[bool], schedule: Any = None):
        raise NotImplementedError(SUGGEST_UNSUPPORTED)

    def infill(
        self,
        prefix: str,
        suffix: str,
        span_lengths: Sequence[int] | None = None,
        schedule: Any = None,
        exact_length: bool = False,
    ) -> Iterator[InfillSnapshot]:
        """Snapshots of the middle between `prefix` and `suffix`: step 0, then one per denoising step.

        Like `Engine.infill`, the first snapshot (step 0, before any forward
        pass) shows every candidate as unresolved, and the last is final. One
        candidate per span length (at most `MAX_ROWS`, sampled together in one
        batch); a length bounds that candidate's answer to about that many
        tokens. `schedule` (the masked engine's commit rule) has no meaning
        here and is ignored: the checkpoint's generation config (or
        `denoising_steps`) decides the steps. `exact_length` cannot be honoured
        (the answer is free text) and is ignored too: a length only bounds it.
        """
        lengths = [
            min(max(1, int(k)), self.settings.max_span) for k in (span_lengths or [self.settings.max_span])
        ]
        lengths = lengths[:MAX_ROWS]
        budgets = [k + ANSWER_OVERHEAD for k in lengths]
        yield InfillSnapshot(
            step=0,
            steps=self.planned_steps(budgets),
            forwards=0,
            final=False,
            candidates=tuple(Candidate(k, (Segment("", False, k),), math.nan) for k in lengths),
        )
        prefix, suffix = clip_context(
            self.tokenizer, prefix, suffix, self.settings.max_prefix, self.settings.max_suffix
        )
        prompt = self.prompt_ids(prefix, suffix)
        for draft in self.drafts(prompt, budgets):
            yield self.snapshot(draft, prefix, suffix)

    # -- prompt, generation, snapshots

    def prompt_ids(self, prefix: str, suffix: str) -> list[int]:
        """The prompt's ids: the chat template's user turn when the tokenizer has one, else plain text.

        The user's code is always encoded as text: a special-token string in it
        (`<end_of_turn>` in a Gemma tokenizer's own source, say) must not end
        the turn or start a new one.
        """
        request = infill_instruction(prefix, suffix)
        if not getattr(self.tokenizer, "chat_template", None):
            text = plain_prompt(prefix, suffix)
            return self.tokenizer.encode(text, add_special_tokens=True, split_special_tokens=True)
        template = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": CONTENT_SLOT}], tokenize=False, add_generation_prompt=True
        )
        if template.count(CONTENT_SLOT) != 1:  # a template that rewrites the content: take its text whole
            messages = [{"role": "user", "content": request}]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return self.tokenizer.encode(text, add_special_tokens=False)
        before, after = template.split(CONTENT_SLOT)
        return (
            self.tokenizer.encode(before, add_special_tokens=False)
            + literal_ids(self.tokenizer, request)
            + self.tokenizer.encode(after, add_special_tokens=False)
        )

    def steps_per_canvas(self) -> int:
        if self.denoising_steps:
            return int(self.denoising_steps)
        configured = getattr(getattr(self.model, "generation_config", None), "max_denoising_steps", None)
        return int(configured or 48)  # 48: DiffusionGemmaGenerationConfig's own default

    def planned_steps(self, budgets: Sequence[int]) -> int:
        """Denoising steps if no canvas stops early: steps per canvas times the canvases the budget needs."""
        return self.steps_per_canvas() * math.ceil(max(budgets) / self.canvas_length)

    def generation_kwargs(self, max_new_tokens: int) -> dict[str, Any]:
        """What `drafts` passes to `generate` besides the prompt and the streamer."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": int(max_new_tokens),
            "max_length": None,  # else a max_length in the checkpoint's config could override max_new_tokens
            "eos_token_id": sorted(self.stop_ids) or None,
            "return_dict_in_generate": True,
        }
        pad = getattr(self.tokenizer, "pad_token_id", None)
        if pad is not None:
            kwargs["pad_token_id"] = int(pad)
        if self.denoising_steps:
            kwargs["max_denoising_steps"] = int(self.denoising_steps)
        return kwargs

    def drafts(self, prompt: Sequence[int], budgets: Sequence[int]) -> Iterator[Draft]:
        """Run `generate` for `len(budgets)` rows of `prompt` on a thread; a `Draft` per denoising step.

        Each draft is yielded once the next event shows it was not the last; the
        last step comes out as the final draft, built from what `generate`
        returned. Closing this iterator stops `generate` at its next step.
        """
        rows = len(budgets)
        max_new = max(budgets)
        tracker = DraftTracker(rows, budgets, self.stop_ids, self.planned_steps(budgets))
        events: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()
        input_ids = torch.tensor([list(prompt)] * rows, dtype=torch.long, device=self.device)
        kwargs = self.generation_kwargs(max_new)

        def work() -> None:
            try:
                with self._lock:
                    sequences = self._generate(input_ids, QueueStreamer(events, stop), kwargs)
                events.put(("done", sequences[:, input_ids.shape[1] :].tolist()))
            except GenerationStopped:
                events.put(("stopped", None))
            except BaseException as error:  # handed to the consumer, which re-raises it
                events.put(("error", error))

        thread = threading.Thread(target=work, name="unmask-gemma-generate", daemon=True)
        thread.start()
        held: Draft | None = None
        try:
            while True:
                kind, payload = events.get()
                if kind == "draft":
                    if held is not None:
                        yield held
                    held = tracker.draft(payload)
                elif kind == "canvas":
                    tracker.commit(payload)
                elif kind == "done":
                    yield tracker.final(payload)
                    return
                elif kind == "error":
                    raise payload
                else:
                    return
        finally:
            stop.set()
            thread.join()

    def _generate(
        self, input_ids: torch.Tensor, streamer: QueueStreamer, kwargs: dict[str, Any]
    ) -> torch.Tensor:
        if self.seed is None:
            return self.model.generate(input_ids, streamer=streamer, **kwargs).sequences
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            return self.model.generate(input_ids, streamer=streamer, **kwargs).sequences

    def snapshot(self, draft: Draft, prefix: str, suffix: str) -> InfillSnapshot:
        candidates = []
        for ids, unresolved in zip(draft.ids, draft.unresolved, strict=True):
            pieces = token_pieces(self.codec.decode, list(ids))
            segments, spanned = answer_segments(pieces, unresolved, prefix, suffix)
            candidates.append(Candidate(spanned, segments, math.nan))
        return InfillSnapshot(
            step=draft.step,
            steps=draft.steps,
            forwards=draft.step,
            final=draft.final,
            candidates=tuple(candidates),
        )


def gemma_settings(model: Any, canvas_length: int, steps: int) -> EngineSettings:
    """Windows for the prompt and the longest span: a canvas less the fence lines, within the context."""
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    context = int(getattr(text_config, "max_position_embeddings", 0) or 8192)
    span = canvas_length - ANSWER_OVERHEAD if canvas_length > 2 * ANSWER_OVERHEAD else canvas_length
    return EngineSettings(
        max_prefix=min(GEMMA_MAX_PREFIX, context // 2),
        max_suffix=min(GEMMA_MAX_SUFFIX, context // 4),
        max_span=max(1, min(span, MAX_SPAN_BOUND)),
        max_steps=steps,
    )


def count_parameters(folder: Path) -> int:
    """Parameters in the folder's safetensors files, read from their headers (no weights loaded)."""
    from safetensors import SafetensorError, safe_open

    total = 0
    for path in weight_files(folder):
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    total += math.prod(handle.get_slice(name).get_shape())
        except (OSError, SafetensorError) as error:
            raise CheckpointError(f"{path} is not a readable safetensors file: {error}") from error
    return total


def load_gemma(
    folder: str | Path,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int | None = 0,
    denoising_steps: int | None = None,
) -> GemmaEngine:
    """Load a DiffusionGemma folder (no download, no remote code); every failure is a `CheckpointError`."""
    folder = Path(folder)
    device = torch.device(device)
    raw = read_raw_config(folder)
    try:
        family = family_name(raw)
    except UnknownArchitecture as error:
        raise CheckpointError(f"{folder / 'config.json'}: {error}") from None
    if family != FAMILY:
        raise CheckpointError(f"{folder} is a {family} checkpoint, not DiffusionGemma")
    try:
        import transformers
        from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion
    except ImportError as error:
        raise CheckpointError(
            f"{folder} is a DiffusionGemma checkpoint, which needs a transformers release that ships "
            f"DiffusionGemmaForBlockDiffusion (5.23 or later): {error}"
        ) from None
    from transformers.utils import is_accelerate_available

    parameters = count_parameters(folder)
    # Without accelerate the weights load on the host, then move: both must hold them.
    direct = device.type != "cpu" and is_accelerate_available()
    places = [device] if direct or device.type == "cpu" else [device, torch.device("cpu")]
    try:
        for place in places:
            check_fits(parameters, dtype, place)
    except InsufficientMemory as error:
        raise CheckpointError(str(error)) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as error:  # transformers raises OSError, ValueError, KeyError... by cause
        raise CheckpointError(f"{folder}: the tokenizer failed to load: {error}") from error
    try:
        extra = {"device_map": {"": device}} if direct else {}
        model = DiffusionGemmaForBlockDiffusion.from_pretrained(
            str(folder), dtype=dtype, local_files_only=True, **extra
        )
        if not direct:
            model = model.to(device)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as error:
        raise CheckpointError(
            f"{folder}: DiffusionGemma failed to load with transformers {transformers.__version__}: {error}"
        ) from error
    model.eval().requires_grad_(False)
    log.info("DiffusionGemma loaded from %s: %s parameters on %s", folder, f"{parameters:,}", device)
    if len(tokenizer) > model.config.get_text_config().vocab_size:
        raise CheckpointError(
            f"{folder}: the tokenizer has {len(tokenizer)} tokens but the model only "
            f"{model.config.get_text_config().vocab_size}"
        )
    return GemmaEngine(model, tokenizer, device, folder, seed=seed, denoising_steps=denoising_steps)
