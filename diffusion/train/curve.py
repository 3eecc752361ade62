"""The loss curve of a training run, from its `log.jsonl`, saved as a PNG (matplotlib, headless)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LossHistory:
    steps: tuple[int, ...]
    losses: tuple[float, ...]
    held_out_steps: tuple[int, ...]
    held_out: tuple[float, ...]


def read_history(log: Path) -> LossHistory:
    """Train and held-out losses by step; a resumed run's repeated steps keep their last value."""
    train: dict[int, float] = {}
    held: dict[int, float] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            step, loss = record["step"], record["loss"]
        except (ValueError, KeyError, TypeError):  # blank, or cut off when a run was killed
            continue
        train[step] = loss
        if "held_out_loss" in record:
            held[record["step"]] = record["held_out_loss"]
    steps, held_steps = sorted(train), sorted(held)
    return LossHistory(
        tuple(steps), tuple(train[s] for s in steps), tuple(held_steps), tuple(held[s] for s in held_steps)
    )


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Mean of the last `window` values at each point (fewer at the start)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def save_loss_curve(log: Path, png: Path, title: str = "unmask train") -> Path | None:
    """Write the curve; None (and nothing written) when matplotlib is not installed or no step ran."""
    if not log.is_file():
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    history = read_history(log)
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    axes.plot(history.steps, history.losses, color="#c8d6e5", linewidth=0.6, label="train (per step)")
    axes.plot(
        history.steps, moving_average(history.losses, 100), color="#2e86de", label="train (mean of 100)"
    )
    if history.held_out:
        axes.plot(
            history.held_out_steps, history.held_out, "o-", color="#ee5253", markersize=3, label="held out"
        )
    axes.set_xlabel("step")
    axes.set_ylabel("masked cross-entropy (nats)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png)
    plt.close(figure)
    return png
