"""Where the model runs: CUDA when present, else CPU, and the dtype that suits it."""

from __future__ import annotations

import torch


def pick_device(requested: str | None = None) -> tuple[torch.device, torch.dtype]:
    """The device to keep the model resident on and its compute dtype.

    bf16 on a GPU that supports it (half the memory, tensor cores); float32 on
    CPU, where bf16 matmuls are slower on most processors.
    """
    if requested:
        device = torch.device(requested)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    return device, dtype
