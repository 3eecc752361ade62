"""Tiny random checkpoints written at test time in each family's exact folder format."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from diffusion.config import ModelConfig
from diffusion.model import DiffusionTransformer

CORPUS = [
    "def add(x, y):\n    return x + y\n",
    "for item in items:\n    print(item)\n",
    "class Point:\n    def __init__(self, x):\n        self.x = x\n",
    "import os\nvalue = os.path.join('a', 'b')\n",
] * 20
SHAPE = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2
)


def byte_level_tokenizer(specials: list[str], vocab_size: int = 300) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return tokenizer


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2), encoding="utf-8")


def random_qwen2_state(config: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = DiffusionTransformer(config)
    with torch.no_grad():
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.1)
    return {k: v.clone() for k, v in model.state_dict().items()}


def write_dream(
    folder: Path, *, dreamon: bool = False, sharded: bool = False, seed: int = 0, bos: bool = True
) -> Path:
    """A Dream / DiffuCoder / DreamOn-format folder: Qwen2 tensors, mask id in config.json, untied head."""
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|mask|>"] + (["<|expand|>"] if dreamon else [])
    tokenizer = byte_level_tokenizer(specials)
    tokenizer.save(str(folder / "tokenizer.json"))
    vocab = tokenizer.get_vocab_size() + 8  # a padded vocabulary, as released checkpoints have
    eos, mask = tokenizer.token_to_id("<|endoftext|>"), tokenizer.token_to_id("<|mask|>")
    raw = {
        "architectures": ["DreamModel"],
        "model_type": "Dream",
        "vocab_size": vocab,
        **SHAPE,
        "max_position_embeddings": 512,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "mask_token_id": mask,
        "pad_token_id": eos,
        "bos_token_id": eos if bos else None,
        "eos_token_id": eos,
        "torch_dtype": "bfloat16",
    }
    write_json(folder / "config.json", raw)
    write_json(folder / "tokenizer_config.json", {"mask_token": "<|mask|>", "eos_token": "<|endoftext|>"})
    config = ModelConfig.from_hf_dict(raw)
    state = {k: v.to(torch.bfloat16) for k, v in random_qwen2_state(config, seed).items()}
    if sharded:
        names = sorted(state)
        halves = {
            "model-00001-of-00002.safetensors": names[::2],
            "model-00002-of-00002.safetensors": names[1::2],
        }
        for file, keys in halves.items():
            save_file({k: state[k].contiguous() for k in keys}, str(folder / file), metadata={"format": "pt"})
        weight_map = {k: file for file, keys in halves.items() for k in keys}
        write_json(folder / "model.safetensors.index.json", {"metadata": {}, "weight_map": weight_map})
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


LLADA_NAMES = {
    "model.embed_tokens.weight": "model.transformer.wte.weight",
    "model.norm.weight": "model.transformer.ln_f.weight",
    "lm_head.weight": "model.transformer.ff_out.weight",
}
LLADA_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ff_norm.weight",
    "self_attn.q_proj.weight": "q_proj.weight",
    "self_attn.k_proj.weight": "k_proj.weight",
    "self_attn.v_proj.weight": "v_proj.weight",
    "self_attn.o_proj.weight": "attn_out.weight",
    "mlp.gate_proj.weight": "ff_proj.weight",
    "mlp.up_proj.weight": "up_proj.weight",
    "mlp.down_proj.weight": "ff_out.weight",
}


def to_llada_name(name: str) -> str:
    if name in LLADA_NAMES:
        return LLADA_NAMES[name]
    _, _, index, rest = name.split(".", 3)
    return f"model.transformer.blocks.{index}.{LLADA_LAYER[rest]}"


def write_llada(folder: Path, seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    """A LLaDA-format folder; returns it and the weights under Llama/Qwen2 names."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = byte_level_tokenizer(["<|endoftext|>", "<|eot_id|>", "<|mdm_mask|>"])
    tokenizer.save(str(folder / "tokenizer.json"))
    vocab = tokenizer.get_vocab_size() + 4
    raw = {
        "architectures": ["LLaDAModelLM"],
        "model_type": "llada",
        "d_model": SHAPE["hidden_size"],
        "n_layers": SHAPE["num_hidden_layers"],
        "n_heads": SHAPE["num_attention_heads"],
        "n_kv_heads": SHAPE["num_attention_heads"],
        "mlp_hidden_size": SHAPE["intermediate_size"],
        "vocab_size": vocab,
        "embedding_size": vocab,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
        "block_type": "llama",
        "activation_type": "silu",
        "include_bias": False,
        "weight_tying": False,
        "max_sequence_length": 512,
        "mask_token_id": tokenizer.token_to_id("<|mdm_mask|>"),
        "eos_token_id": tokenizer.token_to_id("<|endoftext|>"),
        "pad_token_id": tokenizer.token_to_id("<|endoftext|>"),
    }
    write_json(folder / "config.json", raw)
    config = ModelConfig(
        vocab_size=vocab,
        **{**SHAPE, "num_key_value_heads": SHAPE["num_attention_heads"]},
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        attention_bias=False,
    )
    torch.manual_seed(seed)
    state = DiffusionTransformer(config).state_dict()
    save_file({to_llada_name(k): v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder, state
