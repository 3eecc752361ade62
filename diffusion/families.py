"""Checkpoint families: how each open diffusion model's folder maps onto our transformer.

A family reads its own `config.json` keys into `ModelConfig` and renames
its tensors onto the Qwen2 names `model.py` uses. Facts per family are from
the families' published configs and code (see docs: Dream's and Fast-dLLM's
`configuration_dream.py` / `modeling_dream.py`, LLaDA's `modeling_llada.py`),
gathered in the project's CHECKPOINTS notes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from diffusion.config import ModelConfig, flag, integer, number


class UnknownArchitecture(ValueError):
    """A config.json whose architecture no family here knows."""


@dataclass(frozen=True)
class Family:
    name: str
    config: Callable[[Mapping[str, Any]], ModelConfig]
    rename: Callable[[str], str]


def _qwen2_config(raw: Mapping[str, Any]) -> ModelConfig:
    # Every Qwen2-layout diffusion coder was initialised from an autoregressive
    # model and reads the token at i from output i-1 (Dream's generation_utils).
    return ModelConfig.from_hf_dict({**raw, "shift_logits": raw.get("shift_logits", True)})


def _unmask_config(raw: Mapping[str, Any]) -> ModelConfig:
    return ModelConfig.from_hf_dict(dict(raw))


def _identity(name: str) -> str:
    return name


LLADA_TENSORS = [
    (r"^model\.transformer\.wte\.weight$", "model.embed_tokens.weight"),
    (r"^model\.transformer\.ln_f\.weight$", "model.norm.weight"),
    (r"^model\.transformer\.ff_out\.weight$", "lm_head.weight"),
    (r"^model\.transformer\.blocks\.(\d+)\.attn_norm\.weight$", r"model.layers.\1.input_layernorm.weight"),
    (
        r"^model\.transformer\.blocks\.(\d+)\.ff_norm\.weight$",
        r"model.layers.\1.post_attention_layernorm.weight",
    ),
    (
        r"^model\.transformer\.blocks\.(\d+)\.(q|k|v)_proj\.weight$",
        r"model.layers.\1.self_attn.\2_proj.weight",
    ),
    (r"^model\.transformer\.blocks\.(\d+)\.attn_out\.weight$", r"model.layers.\1.self_attn.o_proj.weight"),
    # LLaDA's gate is ff_proj: act(ff_proj(x)) * up_proj(x), then ff_out.
    (r"^model\.transformer\.blocks\.(\d+)\.ff_proj\.weight$", r"model.layers.\1.mlp.gate_proj.weight"),
    (r"^model\.transformer\.blocks\.(\d+)\.up_proj\.weight$", r"model.layers.\1.mlp.up_proj.weight"),
    (r"^model\.transformer\.blocks\.(\d+)\.ff_out\.weight$", r"model.layers.\1.mlp.down_proj.weight"),
]
_LLADA_COMPILED = [(re.compile(p), r) for p, r in LLADA_TENSORS]


def llada_tensor_name(name: str) -> str:
    for pattern, replacement in _LLADA_COMPILED:
        if pattern.match(name):
            return pattern.sub(replacement, name)
    return name  # left as is: the loader names it as unexpected


def _llada_config(raw: Mapping[str, Any]) -> ModelConfig:
    missing = [k for k in ("d_model", "n_layers", "n_heads", "mlp_hidden_size") if k not in raw]
    if missing:
        raise ValueError(f"LLaDA config.json lacks {', '.join(missing)}")
    if raw.get("include_bias"):
        raise ValueError("LLaDA config with include_bias=true is not supported (released models have none)")
    heads = integer(raw, "n_heads")
    return ModelConfig(
        vocab_size=integer(raw, "embedding_size", None) or integer(raw, "vocab_size"),
        hidden_size=integer(raw, "d_model"),
        intermediate_size=integer(raw, "mlp_hidden_size"),
        num_hidden_layers=integer(raw, "n_layers"),
        num_attention_heads=heads,
        num_key_value_heads=integer(raw, "n_kv_heads", None) or heads,
        max_position_embeddings=integer(raw, "max_sequence_length", 4096),
        rms_norm_eps=number(raw, "rms_norm_eps", 1e-5),
        rope_theta=number(raw, "rope_theta", 10000.0),
        tie_word_embeddings=flag(raw, "weight_tying", False),
        attention_bias=False,
        shift_logits=False,  # LLaDA is trained as a masked model from scratch: no shift
        mask_token_id=integer(raw, "mask_token_id", None),
        bos_token_id=integer(raw, "bos_token_id", None),
        eos_token_id=integer(raw, "eos_token_id", None),
        pad_token_id=integer(raw, "pad_token_id", None),
        architecture="LLaDAModelLM",
        torch_dtype=str(raw.get("torch_dtype", "bfloat16")),
    )


FAMILIES = {
    "unmask": Family("unmask", _unmask_config, _identity),
    "qwen2": Family("qwen2", _qwen2_config, _identity),
    "llada": Family("llada", _llada_config, llada_tensor_name),
}
# DiffusionGemma runs through transformers' own implementation (diffusion/gemma_adapter.py).
GEMMA_ARCHITECTURES = ("DiffusionGemmaForBlockDiffusion",)


def family_name(raw: Mapping[str, Any]) -> str:
    architectures = tuple(raw.get("architectures") or ())
    model_type = str(raw.get("model_type", "")).lower()
    if model_type == "unmask" or "UnmaskModel" in architectures:
        return "unmask"
    if model_type == "llada" or any(a.startswith("LLaDA") for a in architectures):
        return "llada"
    if any(a in GEMMA_ARCHITECTURES for a in architectures) or model_type == "diffusion_gemma":
        return "diffusion_gemma"
    if model_type in ("dream", "qwen2") or any(
        a in ("DreamModel", "Qwen2ForCausalLM", "Qwen2Model") for a in architectures
    ):
        return "qwen2"
    raise UnknownArchitecture(
        f"unknown architecture {list(architectures) or model_type or '(none given)'}: unmask runs the Qwen2 "
        "family (Dream, Dream-Coder, DiffuCoder, DreamOn, Open-dCoder), LLaDA, DiffusionGemma and its own models"
    )
