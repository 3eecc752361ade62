"""The model card written beside a trained model: what it is, how it was made, on what."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffusion.config import ModelConfig
from diffusion.train.corpus import Corpus


def render_model_card(config: ModelConfig, corpus: Corpus, summary: dict[str, Any]) -> str:
    lines = [
        "# unmask built-in model",
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
    lines += [f"- {key.replace('_', ' ')}: {value}" for key, value in summary.items() if key != "parameters"]
    roots = sorted({str(f.root) for f in corpus.train})
    lines += [
        "",
        "## Corpus",
        "",
        f"- roots: the standard library of the training interpreter ({len(roots)} root(s), paths below are relative to it)",
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
        "<details><summary>file list (relative path, sha256 prefix)</summary>",
        "",
        *(f"- `{f.relative}` {f.sha256[:12]}" for f in corpus.train),
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def write_model_card(path: Path, config: ModelConfig, corpus: Corpus, summary: dict[str, Any]) -> None:
    path.write_text(render_model_card(config, corpus, summary), encoding="utf-8")
