"""Model hyper-parameters and special token ids, read from a Hugging Face `config.json`.

The config is the only place a token id lives: the denoiser, the trainer and
the server ask it for the mask, null, bos, eos and pad ids instead of knowing
them by heart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# The architectures this module knows how to build. Other families arrive as
# adapters that map their own names onto these fields.
QWEN2_ARCHITECTURES = ("Qwen2ForCausalLM", "Qwen2Model", "DreamModel", "UnmaskModel")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a Qwen2-style bidirectional transformer plus its special ids."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    head_dim: int | None = None
    tie_word_embeddings: bool = True
    attention_bias: bool = True  # Qwen2 puts biases on q/k/v only
    # Masked-diffusion specifics.
    shift_logits: bool = False  # True: the token at i is read from output i-1 (Dream family)
    mask_token_id: int | None = None
    null_token_id: int | None = None  # fills unused span positions; stripped from output
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    pad_token_id: int | None = None
    # Context windows the model was trained for (the built-in model's canvas).
    infill_max_prefix: int | None = None
    infill_max_suffix: int | None = None
    infill_max_span: int | None = None
    architecture: str = "UnmaskModel"
    torch_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads {self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads {self.num_key_value_heads}"
            )

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        """Build from a `config.json` mapping; unknown keys are ignored."""
        missing = [
            key
            for key in (
                "vocab_size",
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
            )
            if key not in raw
        ]
        if missing:
            raise ValueError(f"config.json lacks required keys: {', '.join(missing)}")
        architectures = raw.get("architectures") or ["UnmaskModel"]
        rope = raw.get("rope_parameters") or {}
        rope_theta = raw.get("rope_theta", rope.get("rope_theta", 10000.0))
        eos = raw.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=int(raw["hidden_size"]),
            intermediate_size=int(raw["intermediate_size"]),
            num_hidden_layers=int(raw["num_hidden_layers"]),
            num_attention_heads=int(raw["num_attention_heads"]),
            num_key_value_heads=int(raw.get("num_key_value_heads", raw["num_attention_heads"])),
            max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope_theta),
            head_dim=raw.get("head_dim"),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", True)),
            attention_bias=bool(raw.get("attention_bias", True)),
            shift_logits=bool(raw.get("shift_logits", False)),
            mask_token_id=raw.get("mask_token_id"),
            null_token_id=raw.get("null_token_id"),
            bos_token_id=raw.get("bos_token_id"),
            eos_token_id=eos,
            pad_token_id=raw.get("pad_token_id"),
            infill_max_prefix=raw.get("infill_max_prefix"),
            infill_max_suffix=raw.get("infill_max_suffix"),
            infill_max_span=raw.get("infill_max_span"),
            architecture=str(architectures[0]),
            torch_dtype=str(raw.get("torch_dtype", raw.get("dtype", "float32"))),
        )

    def to_hf_dict(self) -> dict[str, Any]:
        """The `config.json` mapping; round-trips through `from_hf_dict`."""
        raw = dataclasses.asdict(self)
        raw["architectures"] = [raw.pop("architecture")]
        raw["model_type"] = "unmask"
        raw["rope_parameters"] = {"rope_type": "default", "rope_theta": self.rope_theta}
        return raw

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)
