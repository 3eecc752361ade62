"""The model card written beside a trained model: what it is, how it was made, on what."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from diffusion.config import ModelConfig
from diffusion.train.corpus import Corpus


def worded(value: Any) -> str:
    """A summary value as prose: `max prefix 256, max suffix 128` rather than a Python dict."""
    if isinstance(value, dict):
        return ", ".join(f"{key.replace('_', ' ')} {worded(item)}" for key, item in value.items())
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def render_model_card(config: ModelConfig, corpus: Corpus, summary: dict[str, Any]) -> str:
    lines = [
        "# A model trained by `unmask train`",
        "",
        "A small bidirectional (masked-diffusion) transformer for code infill, trained by",
        "`unmask train` on infill-shaped examples: `[bos] prefix span suffix [eos]`, where the",
        "span holds the middle followed by `<|null|>` tokens up to the span length, and a random",
        "fraction t ~ U(0, 1] of span positions is masked. The loss is the cross-entropy on masked",
        "positions, so the model learns both the middle and where it ends.",
        "",
        "## Shape",
        "",
        f"- parameters: {summary['parameters']:,}",
        f"- layers {config.num_hidden_layers}, hidden {config.hidden_size}, MLP {config.intermediate_size}, "
        f"heads {config.num_attention_heads} (kv {config.num_key_value_heads}), vocab {config.vocab_size}",
        "",
        "## Training",
        "",
    ]
    lines += [
        f"- {key.replace('_', ' ')}: {worded(value)}" for key, value in summary.items() if key != "parameters"
    ]
    lines += [
        "",
        "## Corpus",
        "",
        "Source trees on the training machine (file paths below are relative to their root):",
        "",
        *(f"- `{root}`: {count} files, {size:,} bytes" for root, count, size in root_totals(corpus)),
        "",
        f"- training files: {len(corpus.train)} ({sum(f.size for f in corpus.train):,} bytes)",
        f"- held-out files (split by content hash): {len(corpus.held_out)}",
        f"- exact duplicates dropped: {corpus.duplicates_dropped}; unreadable or oversized dropped: {corpus.unreadable_dropped}",
        "",
        "### Held-out files",
        "",
        *(f"- `{f.relative}` {f.sha256[:12]}" for f in corpus.held_out),
        "",
        "### Training files",
        "",
    ]
    if len(corpus.train) > INLINE_FILE_LIST:
        lines += [
            f"{len(corpus.train)} files: listed in `{MANIFEST_NAME}` (root, relative path, sha256).",
            "",
        ]
    else:
        lines += [
            "<details><summary>file list (relative path, sha256 prefix)</summary>",
            "",
            *(f"- `{f.relative}` {f.sha256[:12]}" for f in corpus.train),
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines)


# Past this many files the card links a compressed manifest instead of listing them.
INLINE_FILE_LIST = 3000
MANIFEST_NAME = "corpus_manifest.tsv.gz"


def root_totals(corpus: Corpus) -> list[tuple[str, int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for f in (*corpus.train, *corpus.held_out):
        count, size = totals.get(str(f.root), (0, 0))
        totals[str(f.root)] = (count + 1, size + f.size)
    return [(root, count, size) for root, (count, size) in totals.items()]


def render_manifest(corpus: Corpus) -> str:
    rows = [("train", f) for f in corpus.train] + [("held_out", f) for f in corpus.held_out]
    return "".join(f"{split}\t{f.root}\t{f.relative}\t{f.sha256}\n" for split, f in rows)


def write_model_card(path: Path, config: ModelConfig, corpus: Corpus, summary: dict[str, Any]) -> None:
    path.write_text(render_model_card(config, corpus, summary), encoding="utf-8")
    if len(corpus.train) > INLINE_FILE_LIST:
        # mtime 0: the same corpus gives the same bytes.
        with gzip.GzipFile(path.parent / MANIFEST_NAME, "wb", mtime=0) as manifest:
            manifest.write(render_manifest(corpus).encode("utf-8"))
