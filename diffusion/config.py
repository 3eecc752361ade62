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


POSITIVE_INTS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
)
OPTIONAL_POSITIVE_INTS = ("head_dim", "infill_max_prefix", "infill_max_suffix", "infill_max_span")
TOKEN_IDS = ("mask_token_id", "null_token_id", "bos_token_id", "eos_token_id", "pad_token_id")
BOOLS = ("tie_word_embeddings", "attention_bias", "shift_logits")


def require_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {value}")


def integer(raw: dict[str, Any], key: str, default: Any = ...) -> Any:
    """raw[key] as an int (a whole float such as 64.0 passes); absent or null gives `default`."""
    value = raw.get(key)
    if value is None:
        if default is ...:
            raise ValueError(f"{key} is missing")
        value = default
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer, not {value!r}")
    return value


def number(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number, not {value!r}")
    return float(value)


def flag(raw: dict[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, not {value!r}")
    return value


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
        # Checked here, not only in from_hf_dict, so every family's adapter gets the same errors.
        for name in POSITIVE_INTS:
            require_int(name, getattr(self, name), minimum=1)
        for name in OPTIONAL_POSITIVE_INTS:
            if getattr(self, name) is not None:
                require_int(name, getattr(self, name), minimum=1)
        for name in TOKEN_IDS:
            if getattr(self, name) is not None:
                require_int(name, getattr(self, name), minimum=0)
        for name in ("mask_token_id", "null_token_id"):
            value = getattr(self, name)
            if value is not None and value >= self.vocab_size:
                raise ValueError(f"{name} {value} is outside the vocabulary (vocab_size {self.vocab_size})")
        for name in ("rms_norm_eps", "rope_theta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number, not {value!r}")
        for name in BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")
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
        if self.head_size % 2:
            raise ValueError(f"the head size {self.head_size} is odd; rotary embeddings need an even one")

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
        if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
            raise ValueError(f"architectures must be a list of names, not {architectures!r}")
        rope = raw.get("rope_parameters") or {}
        if not isinstance(rope, dict):
            raise ValueError(f"rope_parameters must be an object, not {rope!r}")
        rope_theta = number(raw, "rope_theta", number(rope, "rope_theta", 10000.0))
        eos = raw.get("eos_token_id")
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        pad = raw.get("pad_token_id")
        if isinstance(pad, int) and not isinstance(pad, bool) and pad < 0:
            pad = None  # -1 is an old Hugging Face spelling of "no pad token"
        return cls(
            vocab_size=integer(raw, "vocab_size"),
            hidden_size=integer(raw, "hidden_size"),
            intermediate_size=integer(raw, "intermediate_size"),
            num_hidden_layers=integer(raw, "num_hidden_layers"),
            num_attention_heads=integer(raw, "num_attention_heads"),
            num_key_value_heads=integer(raw, "num_key_value_heads", raw["num_attention_heads"]),
            max_position_embeddings=integer(raw, "max_position_embeddings", 2048),
            rms_norm_eps=number(raw, "rms_norm_eps", 1e-6),
            rope_theta=rope_theta,
            head_dim=integer(raw, "head_dim", None),
            tie_word_embeddings=flag(raw, "tie_word_embeddings", True),
            attention_bias=flag(raw, "attention_bias", True),
            shift_logits=flag(raw, "shift_logits", False),
            mask_token_id=integer(raw, "mask_token_id", None),
            null_token_id=integer(raw, "null_token_id", None),
            bos_token_id=integer(raw, "bos_token_id", None),
            eos_token_id=integer({"eos_token_id": eos}, "eos_token_id", None),
            pad_token_id=integer({"pad_token_id": pad}, "pad_token_id", None),
            infill_max_prefix=integer(raw, "infill_max_prefix", None),
            infill_max_suffix=integer(raw, "infill_max_suffix", None),
            infill_max_span=integer(raw, "infill_max_span", None),
            architecture=architectures[0],
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
