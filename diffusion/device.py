"""Where the model runs: CUDA when present, else CPU, and the dtype that suits it."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
RUNS_ON = ("cpu", "cuda", "mps")  # device types that hold real tensors the engine can compute on


class DeviceError(ValueError):
    """A device the model cannot run on, with the reason."""


def device_problem(device: torch.device) -> str | None:
    """Why `device` cannot run the model, or None when it can."""
    if device.type not in RUNS_ON:
        return f"{device} cannot run a model: use one of {', '.join(RUNS_ON)}"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                return f"CUDA is not available: this torch ({torch.__version__}) is built without CUDA"
            return "CUDA is not available: no GPU is visible (check the driver and CUDA_VISIBLE_DEVICES)"
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            return f"there is no {device}: this machine has {count} CUDA device(s)"
    elif device.type == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available on this machine"
    return None


def parse_device(requested: str) -> torch.device:
    """`requested` as a device the model can run on, or DeviceError saying why not."""
    try:
        device = torch.device(requested)
    except RuntimeError:  # a string torch cannot parse
        raise DeviceError(f"{requested} is not a device torch knows (try cpu or cuda)") from None
    problem = device_problem(device)
    if problem:
        raise DeviceError(problem)
    return device


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
        device = parse_device(requested)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    if dtype_name:
        dtype = DTYPES[dtype_name]
    return device, dtype
