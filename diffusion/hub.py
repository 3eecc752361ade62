"""Where a `--model` argument points: a folder, or a hub id found in the local Hugging Face cache.

Nothing is downloaded: a hub id resolves only to a snapshot already in the
cache, and a miss says every place that was looked in.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from diffusion.checkpoint import BUILTIN_MODEL_DIR, CheckpointError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def cache_roots() -> list[Path]:
    """The hub cache folders, in the order huggingface_hub itself consults its settings."""
    roots = []
    if value := os.environ.get("HF_HUB_CACHE"):
        roots.append(Path(value))
    if value := os.environ.get("HF_HOME"):
        roots.append(Path(value) / "hub")
    xdg = os.environ.get("XDG_CACHE_HOME")
    roots.append((Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub")
    return list(dict.fromkeys(roots))


def cached_snapshot(hub_id: str, root: Path, revision: str = "main") -> Path | None:
    repo = root / ("models--" + hub_id.replace("/", "--"))
    ref = repo / "refs" / revision
    if ref.is_file():
        snapshot = repo / "snapshots" / ref.read_text().strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted((repo / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return next((s for s in snapshots if (s / "config.json").is_file()), None)


def resolve_model(spec: str | os.PathLike | None) -> Path:
    """The model folder for `spec`: None is the built-in model."""
    if spec is None or str(spec) == "":
        return BUILTIN_MODEL_DIR
    path = Path(spec).expanduser()
    if path.exists() or not HUB_ID.match(str(spec)):
        return path
    roots = cache_roots()
    for root in roots:
        if (snapshot := cached_snapshot(str(spec), root)) is not None:
            return snapshot
    looked = ", ".join(str(r) for r in roots)
    raise CheckpointError(
        f"{spec} is neither a folder nor a model in the local Hugging Face cache (looked in {looked}); "
        "unmask never downloads: fetch it first (`hf download ID`, or `huggingface-cli download ID` with an older huggingface_hub) or pass its folder"
    )
