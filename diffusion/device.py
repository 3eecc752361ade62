"""Where the model runs: CUDA when present, else CPU, and the dtype that suits it."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(
    requested: str | None = None, dtype_name: str | None = None
) -> tuple[torch.device, torch.dtype]:
    """The device to keep the model resident on and its compute dtype.

    bf16 on a GPU that supports it (half the memory, tensor cores); float32 on
    CPU, where bf16 matmuls are slower on most processors. `dtype_name` (a key
    of DTYPES) overrides the choice, e.g. float32 on a GPU to score a small
    model exactly as the CPU runs it.
    """
    if requested:
        device = torch.device(requested)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    if dtype_name:
        dtype = DTYPES[dtype_name]
    return device, dtype
