"""The training corpus: source files found under roots, deduplicated and split by file.

Pure selection logic over paths and bytes; the manifest it returns is what the
model card records, so anyone can see exactly which files a model saw.
"""

from __future__ import annotations

import hashlib
import sysconfig
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SKIPPED_DIRS = frozenset({"site-packages", "__pycache__", "dist-packages", ".git", "node_modules"})


@dataclass(frozen=True)
class SourceFile:
    root: Path
    relative: str  # posix path below root
    sha256: str
    size: int

    @property
    def path(self) -> Path:
        return self.root / self.relative


@dataclass(frozen=True)
class Corpus:
    train: tuple[SourceFile, ...]
    held_out: tuple[SourceFile, ...]
    duplicates_dropped: int
    unreadable_dropped: int


def default_roots() -> list[Path]:
    """The standard library of the running interpreter."""
    return [Path(sysconfig.get_paths()["stdlib"])]


def iter_source_paths(root: Path, suffixes: Sequence[str]) -> Iterable[Path]:
    for path in sorted(root.rglob("*")):
        if path.suffix in suffixes and path.is_file():
            if not SKIPPED_DIRS.intersection(path.relative_to(root).parts):
                yield path


def is_held_out(sha256: str, fraction: float) -> bool:
    """Stable split by content hash, so the split survives reordering and re-runs."""
    return int(sha256[:8], 16) / 0xFFFFFFFF < fraction


def collect_corpus(
    roots: Sequence[Path],
    suffixes: Sequence[str] = (".py",),
    held_out_fraction: float = 0.02,
    max_file_bytes: int = 400_000,
) -> Corpus:
    seen: set[str] = set()
    train: list[SourceFile] = []
    held_out: list[SourceFile] = []
    duplicates = unreadable = 0
    for root in roots:
        for path in iter_source_paths(root, suffixes):
            data = path.read_bytes()
            if len(data) > max_file_bytes or b"\0" in data:
                unreadable += 1
                continue
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                unreadable += 1
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                duplicates += 1
                continue
            seen.add(digest)
            entry = SourceFile(root, path.relative_to(root).as_posix(), digest, len(data))
            (held_out if is_held_out(digest, held_out_fraction) else train).append(entry)
    if held_out_fraction > 0:
        ensure_both_sides(train, held_out)
    return Corpus(tuple(train), tuple(held_out), duplicates, unreadable)


def ensure_both_sides(train: list[SourceFile], held_out: list[SourceFile]) -> None:
    """With two files or more, neither side is empty: a small tree's hash split often holds
    out nothing (2% of 30 files), and a held-out loss must never be scored on training files.

    The file moved is the one whose hash is nearest the other side of the cut, so the choice
    is as stable as the split itself (same files, same choice, in any order).
    """
    if len(train) + len(held_out) < 2:
        return
    if not held_out:
        moved = min(train, key=lambda f: f.sha256)
        train.remove(moved)
        held_out.append(moved)
    elif not train:
        moved = max(held_out, key=lambda f: f.sha256)
        held_out.remove(moved)
        train.append(moved)


def read_texts(files: Sequence[SourceFile]) -> list[str]:
    return [f.path.read_text(encoding="utf-8") for f in files]
