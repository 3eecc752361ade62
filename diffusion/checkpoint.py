"""Reading and writing Hugging Face-format model folders.

A folder holds `config.json`, one or more `*.safetensors` files (sharded
ones through `model.safetensors.index.json`) and `tokenizer.json`. Every
problem with a folder becomes a `CheckpointError` that names the file or
tensor at fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from diffusion.config import ModelConfig
from diffusion.model import DiffusionTransformer
from diffusion.tokenizer import SpecialIds, TextCodec

BUILTIN_MODEL_DIR = Path(__file__).parent / "builtin"


class CheckpointError(ValueError):
    """A model folder that cannot be loaded, with the reason."""


@dataclass(frozen=True)
class Checkpoint:
    config: ModelConfig
    model: DiffusionTransformer
    codec: TextCodec
    path: Path


def read_config(folder: Path) -> ModelConfig:
    path = folder / "config.json"
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{folder} has no config.json")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    try:
        return ModelConfig.from_hf_dict(raw)
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: {error}") from error


def weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        files = sorted({folder / name for name in weight_map.values()})
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(f"{index} names shards that are missing: {', '.join(absent)}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder} has no *.safetensors weights")
    return files


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        state.update(load_file(str(path)))
    return state


def read_special_ids(config: ModelConfig, codec_path: Path) -> SpecialIds:
    if config.mask_token_id is None:
        raise CheckpointError("config.json names no mask_token_id; a diffusion model needs one")
    return SpecialIds(
        mask=config.mask_token_id,
        bos=config.bos_token_id,
        eos=config.eos_token_id,
        pad=config.pad_token_id,
        null=config.null_token_id,
    )


def load_weights(model: DiffusionTransformer, state: dict[str, torch.Tensor]) -> None:
    """Copy `state` into `model`, naming any missing, unexpected or misshapen tensor."""
    expected = model.state_dict()
    tied = model.config.tie_word_embeddings
    missing = [k for k in expected if k not in state and not (tied and k == "lm_head.weight")]
    if missing:
        raise CheckpointError(f"checkpoint lacks tensors: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    for name, tensor in state.items():
        if name in expected and tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"tensor {name} has shape {tuple(tensor.shape)}, the config implies "
                f"{tuple(expected[name].shape)}"
            )
    unknown = [k for k in state if k not in expected]
    if unknown:
        raise CheckpointError(f"checkpoint has tensors this architecture does not use: {', '.join(unknown[:5])}")
    model.load_state_dict(state, strict=False)


def load_checkpoint(
    folder: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Checkpoint:
    folder = Path(folder)
    config = read_config(folder)
    tokenizer_path = folder / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise CheckpointError(f"{folder} has no tokenizer.json")
    specials = read_special_ids(config, tokenizer_path)
    codec = TextCodec.from_file(tokenizer_path, specials)
    if codec.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"tokenizer has {codec.vocab_size} tokens but the model only {config.vocab_size}"
        )
    with torch.device("meta"):
        model = DiffusionTransformer(config)
    model = model.to_empty(device="cpu")
    load_weights(model, read_state_dict(folder))
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model = model.to(device=device, dtype=dtype).eval()
    model.requires_grad_(False)
    return Checkpoint(config=config, model=model, codec=codec, path=folder)


def save_checkpoint(
    folder: Path,
    config: ModelConfig,
    model: DiffusionTransformer,
    codec: TextCodec,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Write config.json, model.safetensors and tokenizer.json into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().to("cpu", dtype).contiguous()
        for name, tensor in model.state_dict().items()
        if not (config.tie_word_embeddings and name == "lm_head.weight")
    }
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    config = config.replace(torch_dtype=str(dtype).removeprefix("torch."))
    (folder / "config.json").write_text(json.dumps(config.to_hf_dict(), indent=2) + "\n", encoding="utf-8")
    codec.save(folder / "tokenizer.json")
