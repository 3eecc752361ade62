"""The masked-diffusion objective on infill canvases, as pure tensor functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from diffusion.model import DiffusionTransformer
from diffusion.train.examples import Example


@dataclass(frozen=True)
class Batch:
    clean: torch.Tensor  # (B, T) target ids
    noisy: torch.Tensor  # (B, T) ids with masked span positions
    masked: torch.Tensor  # (B, T) bool: positions whose loss counts
    attention: torch.Tensor  # (B, T) bool: real tokens


def collate(
    examples: Sequence[Example],
    pad_id: int,
    mask_id: int,
    generator: torch.Generator,
    whole_canvas_fraction: float = 0.0,
) -> Batch:
    """Pad to the longest example and mask each span at a random rate t ~ U(0, 1].

    Every span position, null padding included, can be masked: predicting
    where the middle ends is part of the task. In a `whole_canvas_fraction`
    of rows the prefix and suffix are masked at the same rate too (the plain
    masked-diffusion objective over the whole canvas): an infill row teaches
    only its span, so these rows give the small model many more supervised
    tokens per forward pass.
    """
    length = max(len(e.ids) for e in examples)
    clean = torch.full((len(examples), length), pad_id, dtype=torch.long)
    in_span = torch.zeros_like(clean, dtype=torch.bool)
    attention = torch.zeros_like(clean, dtype=torch.bool)
    for row, example in enumerate(examples):
        clean[row, : len(example.ids)] = torch.tensor(example.ids)
        attention[row, : len(example.ids)] = True
        in_span[row, example.span_start : example.span_start + example.span_length] = True
    rate = torch.rand(len(examples), 1, generator=generator).clamp_min(1e-3)
    whole = torch.rand(len(examples), 1, generator=generator) < whole_canvas_fraction
    maskable = in_span | (whole & attention)
    maskable[:, 0] = False  # bos stays: it anchors position 0 for shifted-logit variants
    masked = (torch.rand(clean.shape, generator=generator) < rate) & maskable
    # At least one masked position per row, so every row teaches something.
    first = in_span.float().argmax(dim=1)
    masked[torch.arange(len(examples)), first] |= ~masked.any(dim=1)
    noisy = torch.where(masked, torch.full_like(clean, mask_id), clean)
    return Batch(clean=clean, noisy=noisy, masked=masked, attention=attention)


def masked_loss(model: DiffusionTransformer, batch: Batch) -> torch.Tensor:
    """Mean cross-entropy over masked positions (logits computed only there)."""
    logits = model.logits_at(batch.noisy, batch.masked, batch.attention)
    return F.cross_entropy(logits.float(), batch.clean[batch.masked])
