"""Reading and writing Hugging Face-format model folders.

A folder holds `config.json`, one or more `*.safetensors` files (sharded
ones through `model.safetensors.index.json`) and `tokenizer.json`. The
folder's family (see `families.py`) decides how its config and tensor names
map onto our transformer. Every problem with a folder becomes a
`CheckpointError` that names the file or tensor at fault.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from diffusion.config import ModelConfig
from diffusion.families import FAMILIES, Family, UnknownArchitecture, family_name
from diffusion.memory import InsufficientMemory, check_fits
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
    family: str


LFS_POINTER = b"version https://git-lfs"


def lfs_pointer(path: Path) -> bool:
    """Whether `path` is a git-lfs pointer file: a clone made without git-lfs holds these."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(LFS_POINTER)) == LFS_POINTER
    except OSError:
        return False


def lfs_error(path: Path) -> CheckpointError:
    return CheckpointError(
        f"{path} is a git-lfs pointer, not the file itself: run `git lfs pull` in {path.parent}"
    )


def read_json(path: Path) -> dict[str, Any]:
    if lfs_pointer(path):
        raise lfs_error(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    except OSError as error:
        raise CheckpointError(f"{path} cannot be read: {error}") from error
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} should hold a JSON object")
    return raw


def read_raw_config(folder: Path) -> dict[str, Any]:
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(
            f"{folder} is a file; --model takes a model folder (config.json, *.safetensors)"
        )
    if not folder.is_dir():
        raise CheckpointError(f"model folder {folder} does not exist")
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder} has no config.json")
    return read_json(path)


def read_family(raw: dict[str, Any], folder: Path) -> Family:
    try:
        name = family_name(raw)
    except UnknownArchitecture as error:
        raise CheckpointError(f"{folder / 'config.json'}: {error}") from None
    if name not in FAMILIES:
        raise CheckpointError(f"{folder}: the {name} family loads through its own adapter")
    return FAMILIES[name]


def read_config(folder: Path) -> ModelConfig:
    raw = read_raw_config(folder)
    try:
        return read_family(raw, folder).config(raw)
    except (ValueError, TypeError, KeyError, ArithmeticError) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{folder / 'config.json'}: {error}") from error


def weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{index}: weight_map should be an object of tensor name to file name")
        for tensor, name in weight_map.items():
            if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
                raise CheckpointError(
                    f"{index}: weight_map[{tensor!r}] is {name!r}, not a file name in the folder"
                )
        files = sorted({folder / name for name in weight_map.values()})
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(f"{index} names shards that are missing: {', '.join(absent)}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"{folder} has no *.safetensors weights")
    return files


# Buffers the model computes from its config; older transformers exports of Qwen2 and Llama
# saved them (transformers skipped them on load with `_keys_to_ignore_on_load_unexpected`).
COMPUTED_BUFFERS = ("rotary_emb.inv_freq",)


def read_state_dict(
    folder: Path,
    rename=lambda name: name,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, torch.Tensor]:
    """Tensors under our names, moved one at a time to `device` in `dtype` (no full copy on the host)."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        if lfs_pointer(path):
            raise lfs_error(path)
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    if name.endswith(COMPUTED_BUFFERS):
                        continue
                    tensor = handle.get_tensor(name)
                    if dtype is not None and tensor.is_floating_point():
                        tensor = tensor.to(dtype)
                    state[rename(name)] = tensor.to(device)
        except (OSError, RuntimeError, SafetensorError) as error:
            if isinstance(error, torch.cuda.OutOfMemoryError):
                raise
            raise CheckpointError(f"{path} is not a readable safetensors file: {error}") from error
    return state


def tokenizer_special(folder: Path, key: str) -> str | None:
    """A special token's string from tokenizer_config.json or special_tokens_map.json."""
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / name
        if path.is_file():
            value = read_json(path).get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                return value
    return None


def read_special_ids(config: ModelConfig, codec: TextCodec, folder: Path) -> SpecialIds:
    """Ids from config.json first, then the tokenizer files; never from constants."""

    def lookup(config_id: int | None, key: str, *fallback_tokens: str) -> int | None:
        if config_id is not None:
            return int(config_id)
        for token in (tokenizer_special(folder, key), *fallback_tokens):
            if token is not None and (found := codec.token_id(token)) is not None:
                return found
        return None

    mask = lookup(config.mask_token_id, "mask_token", "<|mask|>", "[MASK]", "<mask>")
    if mask is None:
        raise CheckpointError(f"{folder}: neither config.json nor the tokenizer names a mask token")
    return SpecialIds(
        mask=mask,
        bos=lookup(config.bos_token_id, "bos_token"),
        eos=lookup(config.eos_token_id, "eos_token"),
        pad=lookup(config.pad_token_id, "pad_token"),
        null=config.null_token_id,
        expand=codec.token_id("<|expand|>"),  # DreamOn's length-control token, when the tokenizer has it
    )


def read_tokenizer(path: Path, specials: SpecialIds) -> TextCodec:
    if lfs_pointer(path):
        raise lfs_error(path)
    try:
        return TextCodec.from_file(path, specials)
    except Exception as error:  # the tokenizers library raises a bare Exception for a bad file
        raise CheckpointError(f"{path} is not a readable tokenizer: {error}") from error


def check_tensors(model: DiffusionTransformer, state: dict[str, torch.Tensor]) -> None:
    """Name any missing, unexpected or misshapen tensor."""
    expected = {name: p.shape for name, p in model.state_dict(keep_vars=True).items()}
    tied = model.config.tie_word_embeddings
    missing = [k for k in expected if k not in state and not (tied and k == "lm_head.weight")]
    if missing:
        more = " ..." if len(missing) > 5 else ""
        raise CheckpointError(f"checkpoint lacks tensors: {', '.join(missing[:5])}{more}")
    for name, tensor in state.items():
        if name in expected and tuple(tensor.shape) != tuple(expected[name]):
            raise CheckpointError(
                f"tensor {name} has shape {tuple(tensor.shape)}, the config implies {tuple(expected[name])}"
            )
    unknown = [k for k in state if k not in expected]
    if unknown:
        raise CheckpointError(
            f"checkpoint has tensors this architecture does not use: {', '.join(unknown[:5])}"
        )


def load_checkpoint(
    folder: Path, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Checkpoint:
    folder = Path(folder)
    raw = read_raw_config(folder)
    family = read_family(raw, folder)
    config = read_config(folder)
    tokenizer_path = folder / "tokenizer.json"
    if not tokenizer_path.is_file():
        raise CheckpointError(f"{folder} has no tokenizer.json")
    codec = read_tokenizer(tokenizer_path, SpecialIds(mask=-1, bos=None, eos=None, pad=None, null=None))
    codec = read_tokenizer(tokenizer_path, read_special_ids(config, codec, folder))
    if codec.vocab_size > config.vocab_size:
        raise CheckpointError(
            f"tokenizer has {codec.vocab_size} tokens but the model only {config.vocab_size}"
        )
    device = torch.device(device)
    with torch.device("meta"):
        model = DiffusionTransformer(config)
    try:
        check_fits(model.num_parameters(), dtype, device)
    except InsufficientMemory as error:
        raise CheckpointError(str(error)) from None
    state = read_state_dict(folder, family.rename, device, dtype)
    check_tensors(model, state)
    model.load_state_dict(state, strict=False, assign=True)
    del state  # the model holds the tensors now; fusing copies them, and the peak is one model
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.eval().requires_grad_(False).fuse()
    return Checkpoint(config=config, model=model, codec=codec, path=folder, family=family.name)


def alone(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` with storage of its own: a fused model's projections are views into one matrix,
    and safetensors refuses tensors that share memory. Only those are copied."""
    if tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size():
        return tensor.clone()
    return tensor


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
        name: alone(tensor.detach().to("cpu", dtype))
        for name, tensor in model.state_dict().items()
        if not (config.tie_word_embeddings and name == "lm_head.weight")
    }
    weights = folder / "model.safetensors"
    save_file(state, str(weights), metadata={"format": "pt"})
    # safetensors creates the file owner-only (0600); the folder's other files follow the umask,
    # and so must the weights, or a daemon running as another user cannot read the model.
    umask = os.umask(0)
    os.umask(umask)
    weights.chmod(0o666 & ~umask)
    config = config.replace(torch_dtype=str(dtype).removeprefix("torch."))
    (folder / "config.json").write_text(json.dumps(config.to_hf_dict(), indent=2) + "\n", encoding="utf-8")
    codec.save(folder / "tokenizer.json")
