"""Published model shapes, built with random weights, for the benchmark.

Speed depends on the shape, not on the weights, so `unmask bench --shape`
measures the 0.5B and 7B shapes without their checkpoints. The shapes are
the `config.json` values of the released models:
- `0.5b`: Qwen2.5-Coder-0.5B (the base of DiffuCoder-0.5B-style and Open-dCoder-0.5B).
- `7b`: Dream-v0-Base-7B / Dream-Coder-v0-7B (the Qwen2.5-7B shape).
The built-in tokenizer supplies the text and the special ids (all below every
shape's vocabulary size), so the same inputs run through every shape.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from diffusion.checkpoint import BUILTIN_MODEL_DIR, Checkpoint, load_checkpoint
from diffusion.config import ModelConfig
from diffusion.memory import check_fits
from diffusion.model import DiffusionTransformer

SHAPES: dict[str, dict[str, Any]] = {
    "0.5b": dict(
        vocab_size=151936,
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        rope_theta=1_000_000.0,
        tie_word_embeddings=True,
        max_position_embeddings=32768,
    ),
    "7b": dict(
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        rope_theta=1_000_000.0,
        tie_word_embeddings=False,
        max_position_embeddings=131072,
    ),
}


def shape_config(base: ModelConfig, shape: str) -> ModelConfig:
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose builtin or one of {', '.join(SHAPES)}")
    return dataclasses.replace(base, **SHAPES[shape], attention_bias=True, shift_logits=False, head_dim=None)


def parameter_count(config: ModelConfig) -> int:
    with torch.device("meta"):
        return DiffusionTransformer(config).num_parameters()


def shaped_checkpoint(shape: str, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Checkpoint:
    """A random-weight model of `shape`, resident on `device`, with the built-in tokenizer."""
    if shape == "builtin":
        return load_checkpoint(BUILTIN_MODEL_DIR, device, dtype)
    builtin = load_checkpoint(BUILTIN_MODEL_DIR, "cpu")
    config = shape_config(builtin.config, shape)
    model = random_model(lambda: DiffusionTransformer(config), config, device, dtype, seed).fuse()
    return Checkpoint(config, model, builtin.codec, BUILTIN_MODEL_DIR, f"random {shape}")


def random_model(build, config: ModelConfig, device: torch.device, dtype: torch.dtype, seed: int):
    """`build()` made directly on `device` in `dtype`, after checking it fits, frozen for inference."""
    check_fits(parameter_count(config), dtype, device)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return build().eval().requires_grad_(False)
    finally:
        torch.set_default_dtype(previous)


def causal_twin(config: ModelConfig, device: torch.device, dtype: torch.dtype, seed: int = 0):
    """transformers' Qwen2 causal LM of the same shape (random weights): the autoregressive baseline."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    qwen = Qwen2Config(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        rms_norm_eps=config.rms_norm_eps,
        rope_theta=config.rope_theta,
        tie_word_embeddings=config.tie_word_embeddings,
    )
    return random_model(lambda: Qwen2ForCausalLM(qwen), config, device, dtype, seed)
