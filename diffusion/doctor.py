"""`unmask doctor`: what this machine and a model folder look like to the engine."""

from __future__ import annotations

import argparse
import json
import platform

import torch

from diffusion.checkpoint import CheckpointError, load_checkpoint, read_family, read_raw_config
from diffusion.device import DeviceError, parse_device, pick_device
from diffusion.engine import Engine, is_diffusion_gemma, settings_for
from diffusion.hub import resolve_model
from diffusion.memory import free_bytes, gib


def report(model: str | None, device: str | None, dtype_name: str | None = None) -> dict[str, object]:
    facts: dict[str, object] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device or "auto",
    }
    problem: str | None = None
    if device:
        try:
            parse_device(device)
        except DeviceError as error:
            problem = str(error)
    if problem:
        return {**facts, "model": str(model or "built-in"), "error": problem}
    torch_device, dtype = pick_device(device, dtype_name)
    facts["device"] = str(torch_device)
    free = free_bytes(torch_device)
    facts.update(
        {
            "gpu": torch.cuda.get_device_name(torch_device) if torch_device.type == "cuda" else None,
            "free_memory": gib(free) if free is not None else "unknown",
            "dtype": str(dtype).removeprefix("torch."),
        }
    )
    try:
        import cuda.bindings  # noqa: F401

        facts["cuda_python"] = "installed"
    except ImportError:
        facts["cuda_python"] = "not installed (optional: pip install 'unmask[cuda]')"
    try:
        folder = resolve_model(model)
        if is_diffusion_gemma(folder):
            return {**facts, **gemma_facts(folder, torch_device, dtype)}
        raw = read_raw_config(folder)
        family = read_family(raw, folder)
        checkpoint = load_checkpoint(folder, torch_device, dtype)
    except CheckpointError as error:
        return {**facts, "model": str(model or "built-in"), "error": str(error)}
    config = checkpoint.config
    specials = checkpoint.codec.specials
    return {
        **facts,
        "model": str(folder),
        "family": family.name,
        "architecture": config.architecture,
        "parameters": checkpoint.model.num_parameters(),
        "mask_id": specials.mask,
        "null_id": specials.null,
        "expand_id": specials.expand,
        "bos_id": specials.bos,
        "eos_id": specials.eos,
        "shift_logits": config.shift_logits,
        "context_length": config.max_position_embeddings,
        "confidence_scorer": Engine(checkpoint, torch_device, settings_for(checkpoint))
        .scorer_choice()
        .reason,
    }


def gemma_facts(folder, device: torch.device, dtype: torch.dtype) -> dict[str, object]:
    """DiffusionGemma runs through transformers: its facts come from the loaded model."""
    from diffusion.gemma_adapter import load_gemma

    engine = load_gemma(folder, device, dtype)
    text = engine.model.config.get_text_config()
    return {
        "model": str(folder),
        "family": "diffusion_gemma (transformers DiffusionGemmaForBlockDiffusion)",
        "architecture": type(engine.model).__name__,
        "parameters": sum(p.numel() for p in engine.model.parameters()),
        "mask_id": None,  # block diffusion over noised tokens, no mask token
        "eos_id": engine.tokenizer.eos_token_id,
        "shift_logits": False,
        "context_length": getattr(text, "max_position_embeddings", None),
        "canvas_length": engine.canvas_length,
    }


def run_doctor(args: argparse.Namespace) -> int:
    facts = report(args.model, args.device, args.dtype)
    if args.json:
        print(json.dumps(facts))
    else:
        width = max(len(k) for k in facts)
        for key, value in facts.items():
            print(f"{key.replace('_', ' '):<{width}}  {worded(value)}")
    return 2 if "error" in facts else 0  # as every command says a model it cannot load


def worded(value: object) -> str:
    """A fact as a person reads it: `none` rather than Python's `None`, yes/no for flags."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
