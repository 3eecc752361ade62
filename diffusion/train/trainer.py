"""`unmask train`: the recipe that makes the built-in model.

Corpus -> BPE tokenizer -> infill examples -> masked-diffusion objective,
with checkpoints and resume in a run folder, a progress bar, a held-out loss,
and a model folder plus model card at the end.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import TextColumn

from diffusion.checkpoint import check_tensors, read_state_dict, save_checkpoint
from diffusion.config import ModelConfig
from diffusion.device import pick_device
from diffusion.model import DiffusionTransformer
from diffusion.progress import progress
from diffusion.tokenizer import BUILTIN_SPECIALS, SpecialIds, TextCodec
from diffusion.train.bpe import train_bpe
from diffusion.train.card import write_model_card
from diffusion.train.corpus import collect_corpus, read_texts
from diffusion.train.curve import save_loss_curve
from diffusion.train.examples import CanvasLimits, build_example
from diffusion.train.objective import collate, masked_loss


@dataclass(frozen=True)
class ModelShape:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 6
    num_attention_heads: int = 8
    num_key_value_heads: int = 4
    max_position_embeddings: int = 4096

    def __post_init__(self) -> None:
        # The model's own checks, now: a shape that cannot be built fails before the corpus is read.
        try:
            ModelConfig(**asdict(self))
        except ValueError as error:
            raise TrainInputError(f"this model shape cannot be built: {error}") from None


class TrainInputError(ValueError):
    """What `unmask train` was given that it cannot use (a shape, a corpus), with the reason."""


@dataclass(frozen=True)
class TrainSettings:
    roots: tuple[Path, ...]
    run_dir: Path
    output: Path
    shape: ModelShape = field(default_factory=ModelShape)
    limits: CanvasLimits = field(default_factory=CanvasLimits)
    batch_size: int = 24
    learning_rate: float = 2e-3
    warmup_steps: int = 200
    max_steps: int = 20_000
    max_minutes: float = 60.0
    eval_every: int = 250
    seed: int = 0
    save_dtype: str = "float16"
    whole_canvas_fraction: float = 0.5
    workers: int = 0  # processes building examples (0: this one)
    tokenizer: Path | None = None  # reuse this tokenizer.json instead of training one
    # Start from this model folder's weights (same shape and tokenizer) instead of random ones.
    init_from: Path | None = None


def learning_rate(step: int, seconds: float, settings: TrainSettings) -> float:
    """Warm-up, then cosine decay to 10% over whichever budget (steps or time) runs out first."""
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    fraction = min(1.0, max(step / settings.max_steps, seconds / (settings.max_minutes * 60)))
    return settings.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * fraction)))


def special_ids(codec_tokenizer) -> SpecialIds:
    bos, eos, mask, null, pad = (codec_tokenizer.token_to_id(t) for t in BUILTIN_SPECIALS)
    return SpecialIds(mask=mask, bos=bos, eos=eos, pad=pad, null=null)


def model_config(shape: ModelShape, specials: SpecialIds, limits: CanvasLimits) -> ModelConfig:
    return ModelConfig(
        **asdict(shape),
        infill_max_prefix=limits.max_prefix,
        infill_max_suffix=limits.max_suffix,
        infill_max_span=limits.max_span,
        mask_token_id=specials.mask,
        null_token_id=specials.null,
        bos_token_id=specials.bos,
        eos_token_id=specials.eos,
        pad_token_id=specials.pad,
    )


def example_stream(texts: list[str], codec: TextCodec, limits: CanvasLimits, rng: random.Random):
    # Weight files by size so every token of the corpus is about equally likely;
    # cumulative weights once, not per draw (a draw is then O(log files)).
    cumulative = list(itertools.accumulate(len(t) for t in texts))
    while True:
        text = rng.choices(texts, cum_weights=cumulative)[0]
        example = build_example(text, codec, limits, rng)
        if example is not None:
            yield example


class BatchStream(torch.utils.data.IterableDataset):
    """Collated training batches, made in worker processes when `workers` > 0.

    On a GPU the model outruns one Python process building examples, so each
    worker draws its own stream from its own seed; on the CPU (0 workers) the
    batches come from this process, in a reproducible order.
    """

    def __init__(self, texts, codec, settings: TrainSettings, seed: int) -> None:
        self.texts, self.codec, self.settings, self.seed = texts, codec, settings, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        seed = self.seed * 1_000_003 + (info.id + 1 if info else 0)
        rng = random.Random(seed)
        generator = torch.Generator().manual_seed(seed)
        stream = example_stream(self.texts, self.codec, self.settings.limits, rng)
        specials = self.codec.specials
        while True:
            examples = [next(stream) for _ in range(self.settings.batch_size)]
            yield collate(
                examples, specials.pad, specials.mask, generator, self.settings.whole_canvas_fraction
            )


def batch_stream(texts, codec, settings: TrainSettings, seed: int):
    dataset = BatchStream(texts, codec, settings, seed)
    if settings.workers <= 0:
        return iter(dataset)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=settings.workers, prefetch_factor=4, persistent_workers=False
    )
    return iter(loader)


def held_out_batches(texts, codec, limits, settings, count=8):
    rng = random.Random(12345)
    generator = torch.Generator().manual_seed(12345)
    stream = example_stream(texts, codec, limits, rng)
    specials = codec.specials
    return [
        collate([next(stream) for _ in range(settings.batch_size)], specials.pad, specials.mask, generator)
        for _ in range(count)
    ]


def initial_weights(model: DiffusionTransformer, folder: Path) -> None:
    """Load `folder`'s weights into `model`, refusing a model of another shape."""
    state = read_state_dict(folder, device=next(model.parameters()).device, dtype=torch.float32)
    check_tensors(model, state)  # names a missing, extra or misshapen tensor
    model.load_state_dict(state, strict=False)  # strict would miss a tied head's absent tensor


def evaluate(model, batches, device) -> float:
    model.eval()
    with torch.no_grad():
        losses = [masked_loss(model, _to(b, device)).item() for b in batches]
    model.train()
    return sum(losses) / len(losses)


def _to(batch, device):
    return type(batch)(*(t.to(device) for t in (batch.clean, batch.noisy, batch.masked, batch.attention)))


def save_state_atomically(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` so that a kill at any moment leaves the old file or the new one.

    The bytes go to a temporary file beside it, are flushed to disk, then renamed over
    `path` (atomic on one filesystem); a torn `state.pt` would make the run unresumable.
    """
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as file:
        torch.save(state, file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    try:  # make the rename itself durable (POSIX; Windows cannot open a directory)
        directory = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory)
    except OSError:
        pass
    finally:
        os.close(directory)


def load_state(path: Path, model: DiffusionTransformer, optimizer, device) -> tuple[int, int, float]:
    """Restore a run's checkpoint: (step, tokens seen, seconds); a clear exit when it cannot."""
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        return state["step"], state["tokens_seen"], state["seconds"]
    except Exception as error:  # a torn or foreign file, or another model's shape
        detail = f"{type(error).__name__}: {error}".strip().splitlines()[0]
        raise SystemExit(
            f"unmask train: cannot resume from {path}: the checkpoint is damaged or belongs to "
            f"another model ({detail}). Delete it to start this run over, or pass another --run-dir."
        ) from error


def train(settings: TrainSettings) -> Path:
    """Train, resuming from `run_dir` when it holds a checkpoint; returns the model folder."""
    started = time.time()
    device, _ = pick_device()
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    corpus = collect_corpus(settings.roots)
    train_texts, held_texts = read_texts(corpus.train), read_texts(corpus.held_out)
    if not train_texts:
        roots = ", ".join(str(root) for root in settings.roots)
        raise TrainInputError(f"no readable source files under {roots}")
    tokenizer_path = settings.run_dir / "tokenizer.json"
    if not tokenizer_path.is_file() and settings.tokenizer is not None:
        tokenizer_path.write_bytes(settings.tokenizer.read_bytes())
    if tokenizer_path.is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_path))
    else:
        tokenizer = train_bpe(train_texts, settings.shape.vocab_size)
        tokenizer.save(str(tokenizer_path))
    specials = special_ids(tokenizer)
    codec = TextCodec(tokenizer, specials)
    config = model_config(
        settings.shape.__class__(**{**asdict(settings.shape), "vocab_size": codec.vocab_size}),
        specials,
        settings.limits,
    )

    torch.manual_seed(settings.seed)
    model = DiffusionTransformer(config).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, betas=(0.9, 0.95), weight_decay=0.1
    )
    state_path = settings.run_dir / "state.pt"
    log_path = settings.run_dir / "log.jsonl"
    step, tokens_seen, seconds_before = 0, 0, 0.0
    if state_path.is_file():
        step, tokens_seen, seconds_before = load_state(state_path, model, optimizer, device)
    elif settings.init_from is not None:
        initial_weights(model, settings.init_from)
    batches = batch_stream(train_texts, codec, settings, settings.seed + step)
    # Held-out loss only on held-out files: a single-file corpus has none, and then no
    # held-out loss is reported anywhere (never training files under that name).
    held = held_out_batches(held_texts, codec, settings.limits, settings) if held_texts else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def save_state() -> None:
        save_state_atomically(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "tokens_seen": tokens_seen,
                "seconds": seconds_before + time.time() - started,
            },
            state_path,
        )

    model.train()
    deadline = started + settings.max_minutes * 60 - seconds_before
    held_loss = float("nan")
    held_fields = {"held": held_loss} if held else {}
    curve_due = False
    console = Console(stderr=True)
    if step:
        console.print(
            f"unmask train: resuming {settings.run_dir} at step {step} "
            f"({tokens_seen:,} tokens seen; another --run-dir starts afresh)",
            highlight=False,
            soft_wrap=True,
        )
    if held is None:
        console.print("unmask train: a single source file, so no held-out file and no held-out loss")
    loss_column = "loss {task.fields[loss]:.3f}" + (" held-out {task.fields[held]:.3f}" if held else "")
    with progress(
        console,
        "train",
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn(loss_column),
        formats={"loss": "loss {:.3f}", "held": "held-out {:.3f}"},
    ) as bar:
        task = bar.add_task(
            "train", total=settings.max_steps, completed=step, loss=float("nan"), **held_fields
        )
        while step < settings.max_steps and time.time() < deadline:
            batch = _to(next(batches), device)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, seconds_before + time.time() - started, settings)
            with autocast:
                loss = masked_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += int(batch.attention.sum())
            record = {"step": step, "loss": loss.item(), "tokens_seen": tokens_seen}
            if step % settings.eval_every == 0:
                if held:
                    held_loss = held_fields["held"] = evaluate(model, held, device)
                    record["held_out_loss"] = held_loss
                save_state()
                curve_due = True
            with log_path.open("a") as log:
                log.write(json.dumps(record) + "\n")
            if curve_due:
                save_loss_curve(log_path, settings.run_dir / "loss_curve.png")
                curve_due = False
            bar.update(task, completed=step, loss=record["loss"], **held_fields)
    held_loss = evaluate(model, held, device) if held else None
    save_state()
    seconds = seconds_before + time.time() - started
    save_checkpoint(settings.output, config, model, codec, dtype=getattr(torch, settings.save_dtype))
    curve = save_loss_curve(log_path, settings.output / "loss_curve.png")
    if curve is None and log_path.is_file():
        console.print("unmask train: no loss curve (it needs matplotlib: pip install 'unmask[train]')")
    write_model_card(
        settings.output / "MODEL_CARD.md",
        config=config,
        corpus=corpus,
        summary={
            "steps": step,
            "tokens_seen": tokens_seen,
            "held_out_loss": (
                round(held_loss, 4)
                if held_loss is not None
                else "none (a single-file corpus: no held-out file)"
            ),
            "train_seconds": round(seconds),
            "hardware": f"{device.type} ({platform.processor() or platform.machine()}, torch {torch.__version__})",
            "python": platform.python_version(),
            **({"initialised from": str(settings.init_from)} if settings.init_from else {}),
            "parameters": model.num_parameters(),
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "canvas": asdict(settings.limits),
            "train_dtype": "bfloat16 autocast" if device.type == "cuda" else "float32",
            "saved_dtype": settings.save_dtype,
            **({"loss_curve": f"![loss curve]({curve.name})"} if curve else {}),
        },
    )
    return settings.output
