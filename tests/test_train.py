"""`unmask train` on a tiny corpus: dedup, held-out split, resume, model folder, card and loss curve."""

from __future__ import annotations

import io
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from diffusion.checkpoint import load_checkpoint
from diffusion.train.corpus import collect_corpus
from diffusion.train.curve import moving_average, read_history
from diffusion.train.examples import CanvasLimits, padded_length, split_text
from diffusion.train.trainer import ModelShape, TrainSettings, train

SOURCE = '''import os


def {name}(path, size={n}):
    """Read the first bytes of a file."""
    if not os.path.exists(path):
        return b""
    with open(path, "rb") as file:
        return file.read(size)


class {cls}:
    def __init__(self, value):
        self.value = value

    def double(self):
        return self.value * 2
'''


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    for i in range(40):
        (root / f"mod{i}.py").write_text(SOURCE.format(name=f"head{i}", n=i, cls=f"Box{i}"))
    (root / "copy.py").write_text((root / "mod0.py").read_text())  # an exact duplicate
    (root / "binary.py").write_bytes(b"\x00\x01")
    return root


def test_corpus_drops_duplicates_and_binaries_and_splits_by_file(corpus_root: Path):
    corpus = collect_corpus([corpus_root], held_out_fraction=0.2)
    assert corpus.duplicates_dropped == 1 and corpus.unreadable_dropped == 1
    names = {f.relative for f in corpus.train} | {f.relative for f in corpus.held_out}
    assert len(names) == 40 and corpus.held_out
    assert not {f.sha256 for f in corpus.train} & {f.sha256 for f in corpus.held_out}


def test_a_small_tree_still_holds_out_one_file_and_a_single_file_none(tmp_path: Path):
    root = tmp_path / "small"
    root.mkdir()
    for i in range(30):  # 2% of 30 files: the hash split alone holds out nothing here
        (root / f"m{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n")
    corpus = collect_corpus([root])
    assert len(corpus.held_out) == 1 and len(corpus.train) == 29
    assert not {f.sha256 for f in corpus.train} & {f.sha256 for f in corpus.held_out}
    assert collect_corpus([root]) == corpus  # deterministic
    nearest = min((f for f in (*corpus.train, *corpus.held_out)), key=lambda f: f.sha256)
    assert corpus.held_out == (nearest,)  # the file nearest the cut, whatever the order

    two = tmp_path / "two"
    two.mkdir()
    (two / "a.py").write_text("a = 1\n")
    (two / "b.py").write_text("b = 2\n")
    assert len(collect_corpus([two]).held_out) == 1 and len(collect_corpus([two]).train) == 1
    everything = collect_corpus([two], held_out_fraction=1.0)
    assert len(everything.held_out) == 1 and len(everything.train) == 1

    (two / "b.py").unlink()
    single = collect_corpus([two])
    assert len(single.train) == 1 and not single.held_out


def tiny_settings(corpus_root: Path, where: Path) -> TrainSettings:
    return TrainSettings(
        roots=(corpus_root,),
        run_dir=where / "run",
        output=where / "model",
        shape=ModelShape(
            vocab_size=320,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
        ),
        limits=CanvasLimits(max_prefix=48, max_suffix=16, max_span=16),
        batch_size=4,
        warmup_steps=2,
        max_steps=4,
        eval_every=2,
    )


def test_training_writes_a_loadable_model_and_resumes(corpus_root: Path, tmp_path: Path, capsys):
    settings = tiny_settings(corpus_root, tmp_path)
    train(settings)
    assert "resuming" not in capsys.readouterr().err
    log = [json.loads(line) for line in (settings.run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert "held_out_loss" in log[1]
    checkpoint = load_checkpoint(settings.output, "cpu")
    assert checkpoint.config.infill_max_span == 16 and checkpoint.config.num_hidden_layers == 2
    card = (settings.output / "MODEL_CARD.md").read_text()
    assert "`mod1.py`" in card and "steps: 4" in card and "loss_curve.png" in card
    assert (settings.output / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    train(replace(settings, max_steps=6))  # resumes from the saved state: steps 5 and 6 only
    assert f"resuming {settings.run_dir} at step 4" in capsys.readouterr().err
    steps = [json.loads(line)["step"] for line in (settings.run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert "steps: 6" in (settings.output / "MODEL_CARD.md").read_text()


def test_a_single_file_corpus_reports_no_held_out_loss(tmp_path: Path):
    root = tmp_path / "one"
    root.mkdir()
    (root / "only.py").write_text(SOURCE.format(name="head", n=1, cls="Box") * 3)
    settings = tiny_settings(root, tmp_path)
    train(settings)
    log = [json.loads(line) for line in (settings.run_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert not any("held_out_loss" in r for r in log)  # never the training file's loss
    card = (settings.output / "MODEL_CARD.md").read_text()
    assert "- held out loss: none (a single-file corpus: no held-out file)" in card
    assert "held-out files (split by content hash): 0" in card


class Killed(BaseException):
    """A kill in the middle of writing the checkpoint."""


def test_a_kill_while_saving_leaves_the_last_checkpoint_and_the_run_resumes(
    corpus_root: Path, tmp_path: Path, monkeypatch
):
    settings = tiny_settings(corpus_root, tmp_path)
    real_save = torch.save
    saves = []

    def torn_save(obj, target, *args, **kwargs):
        saves.append(obj["step"])
        if len(saves) < 2:
            return real_save(obj, target, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer)
        half = buffer.getvalue()[: len(buffer.getvalue()) // 2]
        if isinstance(target, (str, Path)):
            Path(target).write_bytes(half)
        else:
            target.write(half)
            target.flush()
        raise Killed

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(Killed):
        train(settings)  # saves at step 2, then is killed halfway through the save at step 4
    monkeypatch.setattr(torch, "save", real_save)
    assert saves == [2, 4]
    assert torch.load(settings.run_dir / "state.pt", weights_only=False)["step"] == 2

    train(settings)  # resumes from step 2
    steps = [json.loads(line)["step"] for line in (settings.run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 3, 4]  # step 4 was killed before its log line
    assert "steps: 4" in (settings.output / "MODEL_CARD.md").read_text()


def test_an_unreadable_checkpoint_fails_with_a_message_naming_it(corpus_root: Path, tmp_path: Path):
    settings = tiny_settings(corpus_root, tmp_path)
    settings.run_dir.mkdir(parents=True)
    state = settings.run_dir / "state.pt"
    state.write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(SystemExit) as exit_:
        train(settings)
    message = str(exit_.value)
    assert f"cannot resume from {state}" in message and "Delete it" in message
    assert not settings.output.exists()


def test_training_can_start_from_another_models_weights(corpus_root: Path, tmp_path: Path):
    from diffusion.checkpoint import CheckpointError
    from lsp_server.cli import build_parser, train_settings

    first = train(tiny_settings(corpus_root, tmp_path / "first"))
    args = build_parser().parse_args(
        [
            "train",
            str(corpus_root),
            "--init-from",
            str(first),
            "--run-dir",
            str(tmp_path / "run2"),
            "--output",
            str(tmp_path / "second"),
            "--steps",
            "0",
        ]
    )
    settings = train_settings(args)
    assert settings.shape.hidden_size == 32 and settings.limits.max_span == 16  # the folder's shape
    assert settings.tokenizer == first / "tokenizer.json"
    second = train(replace(settings, warmup_steps=2, eval_every=2, batch_size=4))
    before = load_checkpoint(first, "cpu").model.state_dict()
    after = load_checkpoint(second, "cpu").model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)  # no step: the same weights
    assert f"initialised from: {first}" in (second / "MODEL_CARD.md").read_text()

    wider = replace(settings, shape=replace(settings.shape, hidden_size=64), run_dir=tmp_path / "run3")
    with pytest.raises(CheckpointError, match="shape"):
        train(wider)


def test_loss_history_keeps_the_last_value_of_a_repeated_step(tmp_path: Path):
    log = tmp_path / "log.jsonl"
    rows = [
        {"step": 1, "loss": 5.0},
        {"step": 2, "loss": 4.0, "held_out_loss": 4.5},
        {"step": 2, "loss": 3.0},
    ]
    # A run killed mid-write leaves a cut line; the run that resumes appends after it.
    log.write_text(
        "".join(json.dumps(r) + "\n" for r in rows[:2]) + '{"step": 3, "lo\n' + json.dumps(rows[2])
    )
    history = read_history(log)
    assert history.steps == (1, 2) and history.losses == (5.0, 3.0)
    assert history.held_out_steps == (2,) and history.held_out == (4.5,)
    assert moving_average([1.0, 3.0, 5.0], 2) == [1.0, 2.0, 4.0]


def test_examples_cover_whole_lines_and_tight_spans():
    rng = random.Random(0)
    text = SOURCE.format(name="f", n=1, cls="C")
    splits = [split_text(text, rng) for _ in range(400)]
    whole_lines = [s for s in splits if s and s.middle.endswith("\n") and s.prefix.endswith("\n")]
    assert len(whole_lines) > 40  # the shape of a line-level infill benchmark
    for s in splits:
        if s:
            assert s.prefix + s.middle + s.suffix == text
    lengths = [padded_length(5, 64, rng) for _ in range(400)]
    assert min(lengths) == 5 and max(lengths) > 40
    assert sum(k <= 9 for k in lengths) > 150  # about half the spans are nearly tight
