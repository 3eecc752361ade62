"""A bidirectional Qwen2-style transformer: the denoising network.

Blocks are the Qwen2 layout (RMSNorm, rotary positions, grouped-query
attention with biases on q/k/v, SwiGLU), and attention goes through
`scaled_dot_product_attention` with no causal mask, so every position sees the
whole canvas. Module names follow the Hugging Face Qwen2 checkpoint layout
(`model.layers.N.self_attn.q_proj`, ...), so a state dict from that family
loads without renaming.

The model knows tensors only: no tokenizer, no file, no device policy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffusion.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch's own kernel (one launch on CUDA where the written-out form took eight). Its
        # variance is in float32, as the reference's; it rounds to bf16 at other points than the
        # reference, so bf16 outputs may differ from it in the last bit (float32 ones match).
        return F.rms_norm(x, self.weight.shape, self.weight, self.eps)


def rotary_tables(
    head_size: int, length: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin tables of shape (length, head_size) for rotate-half RoPE.

    The sin table's first half is negated: rotate-half multiplies the swapped halves
    (-x2, x1) by sin, which is (x2, x1) times the signed table, one kernel fewer."""
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_size, 2, device=device, dtype=torch.float32) / head_size)
    )
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    sin = angles.sin()
    return torch.cat([angles, angles], dim=-1).cos(), torch.cat([-sin, sin], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """x: (..., T, D); cos and the signed sin (`rotary_tables`): (T, D), broadcast over the
    leading dimensions, in x's dtype."""
    half = x.shape[-1] // 2
    swapped = torch.cat([x[..., half:], x[..., :half]], dim=-1)
    return torch.addcmul(x * cos, swapped, signed_sin)


def key_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) real-token flags as the (B, 1, 1, T) keys a query may see; None when all are real."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask[:, None, None, :]


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_size = config.head_size
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.heads * self.head_size, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_size, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.kv_heads * self.head_size, bias=bias)
        self.o_proj = nn.Linear(self.heads * self.head_size, config.hidden_size, bias=False)
        # q, k and v weights (and biases) as one matrix, once `fuse` has run: one matrix product
        # instead of three. The three projections' parameters are then views into it.
        self.qkv: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def fuse(self) -> None:
        projections = (self.q_proj, self.k_proj, self.v_proj)
        weight = torch.cat([p.weight for p in projections])
        bias = torch.cat([p.bias for p in projections]) if self.q_proj.bias is not None else None
        rows = 0
        for p in projections:
            size = p.weight.shape[0]
            p.weight = nn.Parameter(weight[rows : rows + size], requires_grad=False)
            if bias is not None:
                p.bias = nn.Parameter(bias[rows : rows + size], requires_grad=False)
            rows += size
        self.qkv = (weight, bias)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, C) -> q and k together (B, L, H + KV, D), v (B, L, KV, D)."""
        batch, length, _ = x.shape
        if self.qkv is not None:
            qkv = F.linear(x, *self.qkv)
        else:
            qkv = torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1)
        qkv = qkv.view(batch, length, self.heads + 2 * self.kv_heads, self.head_size)
        return qkv[:, :, : self.heads + self.kv_heads], qkv[:, :, self.heads + self.kv_heads :]

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None,
        cache: LayerCache | None = None,
    ) -> torch.Tensor:
        batch, length, _ = x.shape  # (B, L, C): the whole canvas, or only the block when reusing a cache
        qk, v = self.project(x)
        # q and k rotated together: one set of kernels for both. (L, 1, D) tables broadcast over heads.
        qk = apply_rotary(qk, cos[:, None], sin[:, None]).transpose(1, 2)  # (B, H + KV, L, D)
        q, k = qk[:, : self.heads], qk[:, self.heads :]
        v = v.transpose(1, 2)
        if cache is not None:
            k, v = cache.merge(k, v)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            is_causal=False,
            enable_gqa=self.kv_heads != self.heads,
        )  # (B, H, L, D)
        return self.o_proj(y.transpose(1, 2).reshape(batch, length, -1))


class LayerCache:
    """One layer's keys and values over the whole canvas, for approximate context caching.

    With `start` None it records the keys and values of a full forward pass;
    with `start` set it writes the freshly computed block keys and values
    (positions `start:start + L`) over the recorded ones, in place, so the block
    attends to a context computed at the last refresh (Fast-dLLM's dual cache).
    Writing in place is exact: every cached step recomputes the same block, so
    those positions are always overwritten before they are read, and the
    context's are never written.
    """

    def __init__(
        self, k: torch.Tensor | None = None, v: torch.Tensor | None = None, start: int | None = None
    ) -> None:
        self.k, self.v, self.start = k, v, start

    def merge(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.start is None:
            # Copies of their own: k and v are views into the step's q|k and q|k|v outputs,
            # which holding would keep alive whole (q alone is several times larger).
            self.k, self.v = k.contiguous(), v.contiguous()
            return k, v
        assert self.k is not None and self.v is not None, "reuse before capture"
        end = self.start + k.shape[2]
        self.k[:, :, self.start : end] = k
        self.v[:, :, self.start : end] = v
        return self.k, self.v


class SwiGLU(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.gate_up: torch.Tensor | None = None  # both weights as one matrix, once `fuse` has run

    def fuse(self) -> None:
        weight = torch.cat([self.gate_proj.weight, self.up_proj.weight])
        size = self.gate_proj.weight.shape[0]
        self.gate_proj.weight = nn.Parameter(weight[:size], requires_grad=False)
        self.up_proj.weight = nn.Parameter(weight[size:], requires_grad=False)
        self.gate_up = weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up is not None:
            gate, up = F.linear(x, self.gate_up).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x, cos, sin, attn_mask, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, attn_mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    """Embeddings, blocks and final norm: named `model` in the checkpoint."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)


class DiffusionTransformer(nn.Module):
    """Maps a canvas of token ids to per-position vocabulary logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init_weights)
        # cos and sin tables per (device, dtype), grown to a power of two: built once rather than
        # at every forward (a dozen small kernels each time), and never inside a CUDA graph capture.
        self._rotary: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}
        # Tables a longer canvas replaced. Kept alive: a captured CUDA graph reads the table it
        # was recorded with by address, and freed memory would be handed to other tensors.
        self._outgrown_rotary: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._fused = False

    @staticmethod
    def _init_weights(module: nn.Module, std: float = 0.02) -> None:
        # The Qwen2 initialiser: small normal weights, zero biases. PyTorch's
        # default N(0, 1) embedding makes tied logits explode at the start.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def hidden_states(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        caches: list[LayerCache] | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        """input_ids (B, L); attention_mask (B, T) bool, True where a real token is.

        Returns the final normed hidden states (B, L, C). With `caches` set to
        reuse, `input_ids` is only the block at positions `start:start + L` of a
        canvas of length T whose other keys and values the caches hold.
        """
        return self.masked_hidden_states(input_ids, key_mask(attention_mask), caches, start)

    def masked_hidden_states(
        self,
        input_ids: torch.Tensor,
        attn_mask: torch.Tensor | None,
        caches: list[LayerCache] | None = None,
        start: int = 0,
    ) -> torch.Tensor:
        """`hidden_states` with the (B, 1, 1, T) key mask already built: no host sync, so a
        CUDA graph can capture it."""
        length = input_ids.shape[1]
        assert start + length <= self.config.max_position_embeddings, (
            f"canvas of {start + length} tokens exceeds max_position_embeddings "
            f"{self.config.max_position_embeddings}"
        )
        x = self.model.embed_tokens(input_ids)
        cos, sin = self.rotary(start + length, x.device, x.dtype)
        cos, sin = cos[start : start + length], sin[start : start + length]
        for index, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, attn_mask, caches[index] if caches is not None else None)
        return self.model.norm(x)

    def rotary(
        self, length: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin tables (at least `length` rows) in `dtype` on `device`, computed in float32."""
        key = (device, dtype)
        tables = self._rotary.get(key)
        if tables is None or tables[0].shape[0] < length:
            if tables is not None:
                self._outgrown_rotary.append(tables)
            rows = min(self.config.max_position_embeddings, 1 << max(0, length - 1).bit_length())
            # Ordinary tensors even when the first forward runs under inference_mode: an
            # inference tensor could not be saved for backward if the model is trained later.
            with torch.inference_mode(False), torch.no_grad():
                cos, sin = rotary_tables(
                    self.config.head_size, max(rows, length), self.config.rope_theta, device
                )
                tables = self._rotary[key] = (cos.to(dtype), sin.to(dtype))
        return tables

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for every position (B, T, V), already aligned: row i predicts token i."""
        hidden = self.hidden_states(input_ids, attention_mask)
        logits = self.lm_head(hidden)
        if self.config.shift_logits:
            # Dream-style checkpoints predict token i at output i-1.
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits

    def logits_at(
        self,
        input_ids: torch.Tensor,
        select: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (N, V) for the N positions where `select` (B, T) is True, in row-major order.

        Only the selected rows go through the vocabulary head: on a small model
        the head is a large share of the cost.
        """
        return self.head_at(self.hidden_states(input_ids, attention_mask), select)

    def head_at(self, hidden: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        """The vocabulary head on the hidden states that predict the `select`ed positions."""
        if self.config.shift_logits:
            assert not bool(select[:, 0].any()), "the first position cannot be predicted when shifted"
            source = torch.zeros_like(select)
            source[:, :-1] = select[:, 1:]
            return self.lm_head(hidden[source])
        return self.lm_head(hidden[select])

    def window_logits(self, hidden: torch.Tensor, window: tuple[int, int], offset: int = 0) -> torch.Tensor:
        """Logits (B, stop - start, V) predicting canvas columns `window` = (start, stop), from
        hidden states (B, L, C) of columns offset .. offset + L.

        The window is known on the host, so the slice needs no device round trip and the
        output's shape depends only on the window (a boolean gather would wait for the device
        to count its rows).
        """
        start, stop = window
        first = start - (1 if self.config.shift_logits else 0) - offset
        assert first >= 0 and first + stop - start <= hidden.shape[1], (
            f"window {window} is not predicted by hidden columns {offset}..{offset + hidden.shape[1]}"
            + (" (logits are shifted: column start - 1 predicts start)" if self.config.shift_logits else "")
        )
        return self.lm_head(hidden[:, first : first + stop - start])

    @torch.no_grad()
    def fuse(self) -> DiffusionTransformer:
        """Merge each layer's q, k, v and its gate and up weights into single matrices, for
        inference: fewer, larger matrix products per layer. The original parameters become
        views into the merged ones: no second copy, the state dict unchanged, and an in-place
        `load_state_dict` writes through to the merged matrices.

        Moving the model (`.to`, `.half`, `.cuda`) fuses it again on arrival; `train()` undoes
        the fusion, since gradients reach the separate parameters only."""
        if not self._fused:
            for layer in self.model.layers:
                layer.self_attn.fuse()
                layer.mlp.fuse()
            self._fused = True
        return self

    def unfuse(self) -> DiffusionTransformer:
        """Run the separate projections again. Their parameters stay views into the merged
        storage until something replaces them (a move, an optimiser step is in place)."""
        for layer in self.model.layers:
            layer.self_attn.qkv = None
            layer.mlp.gate_up = None
        self._fused = False
        return self

    @property
    def fused(self) -> bool:
        return self._fused

    def _apply(self, fn, recurse=True):
        # Every move and cast comes through here. The merged matrices are plain attributes that
        # nn.Module would not convert, so they are dropped, the parameters converted, and the
        # merge rebuilt from them; the rotary tables belong to the old device or dtype.
        fused = self._fused
        self.unfuse()
        result = super()._apply(fn, recurse)
        self._rotary = {}
        self._outgrown_rotary = []
        if fused:
            self.fuse()
        return result

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # Copying in place writes through the views into the merged matrices; assigning
        # replaces the parameters, so the merge is rebuilt from the new ones.
        fused = self._fused and assign
        if fused:
            self.unfuse()
        result = super().load_state_dict(state_dict, strict=strict, assign=assign)
        if fused:
            self.fuse()
        return result

    def train(self, mode: bool = True) -> DiffusionTransformer:
        if mode and self._fused:
            self.unfuse()
        return super().train(mode)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
