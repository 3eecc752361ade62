"""Will the model fit? Free memory on the target device, checked before any weight moves.

GPU facts come from cuda-python (the optional `unmask[cuda]` extra) when it is
installed, else from torch; host memory from /proc/meminfo. Everything here
works, and answers "unknown", on a machine with neither.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)
# Room kept for activations, the CUDA context and allocator slack.
HEADROOM_FRACTION = 0.10
HEADROOM_BYTES = 512 * 1024**2


class InsufficientMemory(RuntimeError):
    """The model does not fit in the free memory of the chosen device."""


def gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


def cuda_free_bytes(index: int) -> int | None:
    try:
        from cuda.bindings import runtime as cudart

        cudart.cudaSetDevice(index)
        status, free, _total = cudart.cudaMemGetInfo()
        if int(status) == 0:
            return int(free)
    except Exception:  # no cuda-python, or no driver: fall back to torch
        pass
    try:
        free, _total = torch.cuda.mem_get_info(index)
        return int(free)
    except Exception:
        return None


def host_available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def free_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return cuda_free_bytes(device.index or 0)
    if device.type == "cpu":
        return host_available_bytes()
    return None


def needed_bytes(parameters: int, dtype: torch.dtype) -> int:
    weights = parameters * torch.finfo(dtype).bits // 8 if dtype.is_floating_point else parameters * 4
    return int(weights * (1 + HEADROOM_FRACTION)) + HEADROOM_BYTES


def check_fits(parameters: int, dtype: torch.dtype, device: torch.device) -> None:
    need = needed_bytes(parameters, dtype)
    free = free_bytes(device)
    if free is None:
        log.info("free memory on %s unknown; loading %s of weights", device, gib(need))
        return
    if need > free:
        raise InsufficientMemory(
            f"the model needs about {gib(need)} on {device} ({parameters / 1e9:.2f}B parameters in "
            f"{str(dtype).removeprefix('torch.')}), but only {gib(free)} is free"
        )
