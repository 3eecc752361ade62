"""The infill canvas: `[bos] prefix [MASK]*k suffix [eos]`, one row per span length k.

No fill-in-the-middle tokens are needed: the model is bidirectional and sees
the suffix natively. Rows with different k are right-padded to one length
and carry an attention mask so that one forward pass scores them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from diffusion.tokenizer import SpecialIds, TextCodec

# Characters per token is about 3.5 on code; slicing 8 per token before
# tokenizing keeps tokenization of a huge document cheap without cutting the window.
CHARS_PER_TOKEN_BOUND = 8


def prefix_window(codec: TextCodec, prefix: str, max_tokens: int) -> list[int]:
    """The last `max_tokens` tokens of the prefix."""
    if max_tokens <= 0 or not prefix:
        return []
    return codec.encode(prefix[-max_tokens * CHARS_PER_TOKEN_BOUND :])[-max_tokens:]


def suffix_window(codec: TextCodec, suffix: str, max_tokens: int) -> list[int]:
    """The first `max_tokens` tokens of the suffix."""
    if max_tokens <= 0 or not suffix:
        return []
    return codec.encode(suffix[: max_tokens * CHARS_PER_TOKEN_BOUND])[:max_tokens]


def head_ids(prefix: Sequence[int], specials: SpecialIds, needs_lead: bool) -> list[int]:
    """`[bos] prefix`. A model with shifted logits reads column i from the output at i - 1, so
    its span needs a column before it: with no bos and no prefix, the end-of-text id (the
    document separator in pretraining) stands first."""
    head = ([specials.bos] if specials.bos is not None else []) + list(prefix)
    if not head and needs_lead:
        lead = next((i for i in (specials.eos, specials.pad) if i is not None), specials.mask)
        head = [lead]
    return head


@dataclass(frozen=True)
class Canvas:
    ids: torch.Tensor  # (B, T) long; positions to generate hold the mask id
    masked: torch.Tensor  # (B, T) bool: the positions to generate
    attention: torch.Tensor | None  # (B, T) bool, None when no row is padded
    span_start: int  # first position of the region the caller reads back
    span_lengths: tuple[int, ...]  # region length per row (masked or kept tokens)


def build_canvas(
    prefix: Sequence[int],
    suffix: Sequence[int],
    span_lengths: Sequence[int],
    specials: SpecialIds,
    device: torch.device | str = "cpu",
    needs_lead: bool = False,
) -> Canvas:
    assert span_lengths and min(span_lengths) >= 1, f"span lengths must be >= 1, got {span_lengths}"
    head = head_ids(prefix, specials, needs_lead)
    tail = list(suffix) + ([specials.eos] if specials.eos is not None else [])
    rows = [head + [specials.mask] * k + tail for k in span_lengths]
    length = max(len(r) for r in rows)
    pad = specials.pad if specials.pad is not None else specials.mask
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention[i, : len(row)] = True
    padded = not bool(attention.all())
    columns = torch.arange(length)
    masked = (columns >= len(head)) & (columns < len(head) + torch.tensor(list(span_lengths))[:, None])
    return Canvas(
        ids=ids.to(device),
        masked=masked.to(device),
        attention=attention.to(device) if padded else None,
        span_start=len(head),
        span_lengths=tuple(span_lengths),
    )


def build_remask_canvas(
    prefix: Sequence[int],
    block: Sequence[int],
    suffix: Sequence[int],
    remask: Sequence[Sequence[bool]],
    specials: SpecialIds,
    device: torch.device | str = "cpu",
    needs_lead: bool = False,
) -> Canvas:
    """`[bos] prefix block suffix [eos]`, one row per remask pattern over the block.

    Used to score existing code (mask a subset, read the probability of the
    original tokens) and to re-denoise only the positions the model doubts.
    """
    head = head_ids(prefix, specials, needs_lead)
    tail = list(suffix) + ([specials.eos] if specials.eos is not None else [])
    base = torch.tensor(head + list(block) + tail, dtype=torch.long)
    masked = torch.zeros((len(remask), len(base)), dtype=torch.bool)
    for row, pattern in enumerate(remask):
        assert len(pattern) == len(block), f"pattern of {len(pattern)} for a block of {len(block)}"
        masked[row, len(head) : len(head) + len(block)] = torch.tensor(list(pattern), dtype=torch.bool)
    ids = torch.where(masked, torch.full_like(masked, specials.mask, dtype=torch.long), base)
    return Canvas(
        ids=ids.to(device),
        masked=masked.to(device),
        attention=None,
        span_start=len(head),
        span_lengths=(len(block),) * len(remask),
    )


def stack_canvases(
    canvases: Sequence[Canvas], pad: int, start: int = 0, length: int = 0
) -> tuple[Canvas, tuple[range, ...]]:
    """One canvas holding every row of `canvases` (requests of different documents), and the
    rows each came from.

    Rows are shifted right so that every span starts at the same column (at
    least `start`), then right-padded (to at least `length`); the padding is
    masked out of attention. Rotary attention depends only on the distance
    between positions, so a row shifted as a whole scores as it did alone: one
    forward pass serves every request, and a canvas padded to a fixed shape
    scores as it did unpadded.
    """
    assert canvases, "nothing to stack"
    start = max(start, *(c.span_start for c in canvases))
    length = max(length, *(start - c.span_start + c.ids.shape[1] for c in canvases))
    device = canvases[0].ids.device
    ids, masked, attention, rows, lengths = [], [], [], [], []
    for canvas in canvases:
        shift = start - canvas.span_start
        batch, width = canvas.ids.shape
        row_ids = torch.full((batch, length), pad, dtype=torch.long, device=device)
        row_masked = torch.zeros((batch, length), dtype=torch.bool, device=device)
        row_attention = torch.zeros((batch, length), dtype=torch.bool, device=device)
        row_ids[:, shift : shift + width] = canvas.ids
        row_masked[:, shift : shift + width] = canvas.masked
        row_attention[:, shift : shift + width] = canvas.attention if canvas.attention is not None else True
        first = sum(len(r) for r in rows)
        rows.append(range(first, first + batch))
        ids.append(row_ids)
        masked.append(row_masked)
        attention.append(row_attention)
        lengths.extend(canvas.span_lengths)
    attention_all = torch.cat(attention)
    stacked = Canvas(
        ids=torch.cat(ids),
        masked=torch.cat(masked),
        attention=None if bool(attention_all.all()) else attention_all,
        span_start=start,
        span_lengths=tuple(lengths),
    )
    return stacked, tuple(rows)
