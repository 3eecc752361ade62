"""Infill-shaped training examples: prefix, a middle padded with null tokens, suffix.

The split points mimic what an editor sends: the rest of a line after the
cursor (single-line infill), or whole lines after an indent (multi-line
infill), or nothing at all. The middle is followed by null tokens up to the
span length k, so the model learns how long the middle is; the canvas layout
is exactly the one the denoiser builds at inference (`[bos] prefix span
suffix [eos]`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from diffusion.tokenizer import TextCodec


@dataclass(frozen=True)
class CanvasLimits:
    """Token budgets of one training canvas; the engine uses the same shape."""

    max_prefix: int = 192
    max_suffix: int = 64
    max_span: int = 64

    @property
    def length(self) -> int:
        return 1 + self.max_prefix + self.max_span + self.max_suffix + 1


@dataclass(frozen=True)
class TextSplit:
    prefix: str
    middle: str
    suffix: str


@dataclass(frozen=True)
class Example:
    ids: tuple[int, ...]  # the clean canvas
    span_start: int
    span_length: int  # k: middle tokens plus nulls


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def split_single_line(lines: list[str], rng: random.Random) -> TextSplit | None:
    candidates = [i for i, line in enumerate(lines) if line.strip()]
    if not candidates:
        return None
    i = rng.choice(candidates)
    line = lines[i]
    if rng.random() < 0.3:
        # The whole line, indent and newline included: the shape of a line-level
        # infill benchmark (HumanEval-Infilling) and of a cursor at column 0.
        return TextSplit("".join(lines[:i]), line, "".join(lines[i + 1 :]))
    body = line.rstrip("\r\n")
    start = rng.randint(indent_of(body), max(indent_of(body), len(body) - 1))
    # Mostly the rest of the line (typing at its end); sometimes a piece inside it.
    end = len(body) if rng.random() < 0.75 else rng.randint(start, len(body))
    before = "".join(lines[:i]) + body[:start]
    return TextSplit(before, body[start:end], body[end:] + line[len(body) :] + "".join(lines[i + 1 :]))


def split_multi_line(lines: list[str], rng: random.Random) -> TextSplit | None:
    if len(lines) < 2:
        return None
    i = rng.randrange(len(lines))
    j = min(len(lines), i + rng.randint(1, 8))
    first = lines[i]
    # An editor's cursor on a fresh line sits after the indent.
    start = indent_of(first) if rng.random() < 0.5 else 0
    middle = first[start:] + "".join(lines[i + 1 : j])
    if rng.random() < 0.5 and middle.endswith("\n"):
        middle = middle[:-1]  # the cursor line already ends; the suffix holds its newline
        suffix = "\n" + "".join(lines[j:])
    else:
        suffix = "".join(lines[j:])
    return TextSplit("".join(lines[:i]) + first[:start], middle, suffix)


def split_text(text: str, rng: random.Random) -> TextSplit | None:
    lines = text.splitlines(keepends=True)
    roll = rng.random()
    if roll < 0.02:
        cut = rng.randint(0, len(text))
        return TextSplit(text[:cut], "", text[cut:])
    if roll < 0.5:
        return split_single_line(lines, rng)
    return split_multi_line(lines, rng)


def padded_length(middle_tokens: int, max_span: int, rng: random.Random) -> int:
    """Span length k for a middle: half the time a few nulls past it (a length guess
    that is nearly right), half the time anywhere up to the budget. Uniform slack
    alone makes null the majority target, and the model learned to end spans early."""
    low = max(1, middle_tokens)
    if rng.random() < 0.5:
        return min(max_span, low + rng.randint(0, 4))
    return rng.randint(low, max_span)


def build_example(
    text: str, codec: TextCodec, limits: CanvasLimits, rng: random.Random, tries: int = 8
) -> Example | None:
    """One infill example from a source file, or None when none fits the limits."""
    specials = codec.specials
    assert specials.null is not None and specials.bos is not None and specials.eos is not None
    for _ in range(tries):
        split = split_text(text, rng)
        if split is None:
            return None
        middle = codec.encode(split.middle)
        if len(middle) > limits.max_span:
            continue
        # Context windows of varied size, so short files and file edges are seen too.
        prefix_budget = limits.max_prefix if rng.random() < 0.8 else rng.randint(0, limits.max_prefix)
        suffix_budget = limits.max_suffix if rng.random() < 0.8 else rng.randint(0, limits.max_suffix)
        prefix = codec.encode(split.prefix[-prefix_budget * 8 :])[-prefix_budget:] if prefix_budget else []
        suffix = codec.encode(split.suffix[: suffix_budget * 8])[:suffix_budget] if suffix_budget else []
        span_length = padded_length(len(middle), limits.max_span, rng)
        span = middle + [specials.null] * (span_length - len(middle))
        ids = (specials.bos, *prefix, *span, *suffix, specials.eos)
        return Example(ids=ids, span_start=1 + len(prefix), span_length=span_length)
    return None
