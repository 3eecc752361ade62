"""How the denoiser gets its logits: strategies passed to the one denoising loop.

`full_recompute` runs the whole canvas every step. `CachedContext` is the
approximate context cache (after Fast-dLLM's dual cache): a full pass every
`refresh_every` steps records every layer's keys and values; the steps in
between recompute only the block being generated, which attends to the
recorded prefix and suffix. The context's own states go slightly stale while
the block changes, which is the approximation; a refresh bounds it.
"""

from __future__ import annotations

import torch

from diffusion.denoise import Predictor
from diffusion.model import DiffusionTransformer, LayerCache


def full_recompute(model: DiffusionTransformer) -> Predictor:
    @torch.inference_mode()
    def predict(ids, select, attention):
        return model.logits_at(ids, select, attention)

    return predict


class CachedContext:
    """A Predictor that reuses the context's keys and values between refreshes."""

    def __init__(self, model: DiffusionTransformer, refresh_every: int = 4) -> None:
        assert refresh_every >= 1, f"refresh_every must be >= 1, got {refresh_every}"
        self.model = model
        self.refresh_every = refresh_every
        self.caches: list[LayerCache] = []
        self.region: tuple[int, int] = (0, 0)
        self.shape: tuple[int, ...] = ()
        self.calls = 0
        self.full_passes = 0

    @torch.inference_mode()
    def __call__(self, ids, select, attention):
        refresh = self.calls % self.refresh_every == 0 or tuple(ids.shape) != self.shape
        self.calls += 1
        if refresh:
            return self._refresh(ids, select, attention)
        start, end = self.region
        hidden = self.model.hidden_states(ids[:, start:end], attention, self.caches, start)
        block_select = select[:, start:end]
        assert int(block_select.sum()) == int(select.sum()), "a masked position lies outside the cached block"
        return self.model.head_at(hidden, block_select)

    def _refresh(self, ids, select, attention):
        self.full_passes += 1
        self.shape = tuple(ids.shape)
        columns = select.any(dim=0).nonzero()[:, 0]
        # The block: every still-masked column; one more on the left when logits are shifted.
        start = int(columns.min()) - (1 if self.model.config.shift_logits else 0)
        self.region = (max(0, start), int(columns.max()) + 1)
        self.caches = [LayerCache() for _ in self.model.model.layers]
        hidden = self.model.hidden_states(ids, attention, self.caches)
        for cache in self.caches:
            cache.start = self.region[0]
        return self.model.head_at(hidden, select)
