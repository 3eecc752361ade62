"""DiffusionGemma through transformers: a tiny random checkpoint streamed as infill snapshots."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch

pytest.importorskip("transformers.models.diffusion_gemma")

from tokenizers import Tokenizer, decoders, models
from transformers import (
    DiffusionGemmaConfig,
    DiffusionGemmaForBlockDiffusion,
    PreTrainedTokenizerFast,
)

from diffusion.checkpoint import CheckpointError
from diffusion.engine import Segment
from diffusion.families import family_name
from diffusion.gemma_adapter import (
    ANSWER_OVERHEAD,
    FILL,
    SUGGEST_UNSUPPORTED,
    GemmaEngine,
    answer_bounds,
    answer_segments,
    clip_context,
    cut_answer,
    extract_middle,
    infill_instruction,
    load_gemma,
    plain_prompt,
    token_pieces,
)

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<end_of_turn>"]  # pad 0, eos 1, bos 2 as Gemma's config
CHARS = [chr(c) for c in range(32, 127)] + ["\n", "\t"]
CANVAS = 8
STEPS = 5
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}]\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}[model]\n{% endif %}"
)


def char_tokenizer(chat_template: str | None = None) -> PreTrainedTokenizerFast:
    """One token per printable ASCII character, plus Gemma-like specials."""
    vocab = {token: i for i, token in enumerate(SPECIALS + CHARS)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(SPECIALS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<end_of_turn>"],
    )
    tokenizer.add_bos_token = True
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def tiny_config(vocab_size: int) -> DiffusionGemmaConfig:
    text = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        layer_types=["sliding_attention", "full_attention"],
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        global_head_dim=16,
        num_experts=2,
        top_k_experts=1,
        moe_intermediate_size=32,
        sliding_window=16,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    vision = dict(
        model_type="gemma4_vision",
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=16,
        patch_size=4,
        position_embedding_size=32,
    )
    return DiffusionGemmaConfig(
        text_config=text,
        vision_config=vision,
        canvas_length=CANVAS,
        boi_token_id=3,
        eoi_token_id=3,
        image_token_id=3,
    )


def write_tiny(folder, seed: int = 0, chat_template: str | None = None):
    tokenizer = char_tokenizer(chat_template)
    torch.manual_seed(seed)
    model = DiffusionGemmaForBlockDiffusion(tiny_config(len(tokenizer))).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny(tmp_path_factory.mktemp("diffusion_gemma"))


@pytest.fixture(scope="module")
def engine(folder) -> GemmaEngine:
    return load_gemma(folder, "cpu", torch.float32, seed=7, denoising_steps=STEPS)


def reference_ids(engine: GemmaEngine, prompt: list[int], budget: int, seed: int) -> list[int]:
    """What transformers' own `generate` answers, cut where the adapter cuts."""
    torch.manual_seed(seed)
    out = engine.model.generate(torch.tensor([prompt]), **engine.generation_kwargs(budget))
    return cut_answer(out.sequences[0, len(prompt) :].tolist(), engine.stop_ids, budget)


# ---------------------------------------------------------------- the checkpoint folder


def test_saved_config_is_the_diffusion_gemma_family(folder):
    raw = json.loads((folder / "config.json").read_text())
    assert family_name(raw) == "diffusion_gemma"


def test_load_reads_settings_and_stop_ids(engine, folder):
    assert engine.checkpoint.model.num_parameters() > 0
    assert engine.checkpoint.path == folder and engine.checkpoint.family == "diffusion_gemma"
    assert engine.device == torch.device("cpu")
    assert engine.settings.max_span == CANVAS  # a canvas too small to leave room for the fences
    vocab = engine.tokenizer.get_vocab()
    assert engine.stop_ids == {vocab["<eos>"], vocab["<end_of_turn>"]}
    assert engine.count_tokens("def f():") == len("def f():")
    assert engine.codec.decode(engine.codec.encode("x = 1\n")) == "x = 1\n"


def test_load_errors_are_checkpoint_errors(tmp_path, folder):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_gemma(tmp_path / "absent")
    other = tmp_path / "llada"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llada"}))
    with pytest.raises(CheckpointError, match="not DiffusionGemma"):
        load_gemma(other)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((folder / "config.json").read_text())
    with pytest.raises(CheckpointError, match="safetensors"):
        load_gemma(broken)


def test_suggest_mode_is_refused(engine):
    assert engine.supports_suggest is False
    with pytest.raises(NotImplementedError, match="masked model"):
        engine.score_block("a", "b", "c")
    with pytest.raises(NotImplementedError, match=SUGGEST_UNSUPPORTED[:20]):
        engine.repair("a", "b", "c", [True])


# ---------------------------------------------------------------- streaming against generate


def test_drafts_end_with_what_generate_returns(engine, monkeypatch):
    prompt = engine.prompt_ids("def add(a, b):\n    return ", "\n")
    budget = 3 * CANVAS - 2  # three canvases unless an end-of-turn comes first
    counts = []
    for seed in (0, 1, 2):
        monkeypatch.setattr(engine, "seed", seed)
        drafts = list(engine.drafts(prompt, [budget]))
        assert drafts[-1].final and not any(d.final for d in drafts[:-1])
        assert list(drafts[-1].ids[0]) == reference_ids(engine, prompt, budget, seed)
        assert [d.step for d in drafts] == list(range(1, len(drafts) + 1))
        assert len(drafts) <= 3 * STEPS
        counts.append(len(drafts))
    assert max(counts) > STEPS  # finished canvases were carried into later drafts


def test_infill_final_text_is_the_middle_of_generates_answer(engine):
    prefix, suffix = "x = ", "\nprint(x)\n"
    snapshots = list(engine.infill(prefix, suffix, [6]))
    prompt = engine.prompt_ids(prefix, suffix)
    expected = reference_ids(engine, prompt, 6 + ANSWER_OVERHEAD, engine.seed)
    answer = engine.codec.decode(expected)
    final = snapshots[-1]
    assert final.final and final.candidates[0].unresolved == 0
    assert final.best.text == extract_middle(answer, prefix, suffix)
    assert math.isnan(final.best.score)


def test_snapshots_stream_per_step(engine):
    snapshots = list(engine.infill("for i in range(3):\n", "\n", [12]))
    start, *steps, final = snapshots
    assert steps, "no intermediate denoising step"
    assert start.step == 0 and start.forwards == 0  # before any forward pass, as Engine's first snapshot
    assert start.best.segments == (Segment("", False, start.best.span_length),)
    assert [s.step for s in snapshots] == list(range(len(snapshots)))
    assert all(not s.final for s in snapshots[:-1]) and final.final
    assert all(s.step <= s.steps for s in snapshots) and final.step == final.steps
    assert final.best.unresolved == 0 and all(seg.resolved for seg in final.best.segments)
    assert all(not seg.resolved for seg in steps[0].best.segments)  # a canvas's first draft: nothing stable


def test_several_span_lengths_are_sampled_as_rows(engine):
    last = list(engine.infill("a = ", "\n", [3, 5]))[-1]
    assert len(last.candidates) == 2 and last.final


def test_closing_early_stops_generate(engine, monkeypatch):
    forward = engine.model.forward
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model, "forward", counted)  # generate runs each denoising step through it
    monkeypatch.setattr(engine, "denoising_steps", 40)
    stream = engine.infill("def f():\n", "\n", [CANVAS])  # two canvases of 40 steps unless stopped
    assert next(stream).step == 0 and not calls  # nothing runs before the consumer asks for a step
    assert next(stream).step == 1
    workers = [t for t in threading.enumerate() if t.name == "unmask-gemma-generate"]
    assert workers
    stream.close()
    assert all(not t.is_alive() for t in workers)
    assert len(calls) < 40  # stopped within the first canvas
    # the model is free again: a new request runs to the end
    assert list(engine.infill("y = ", "\n", [2]))[-1].final


def test_errors_in_generate_reach_the_consumer(engine, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine.model, "generate", broken)
    with pytest.raises(RuntimeError, match="boom"):
        list(engine.infill("a", "b", [2]))


def test_chat_template_is_used_when_present(tmp_path):
    chat = load_gemma(write_tiny(tmp_path / "chat", chat_template=TEMPLATE), denoising_steps=2)
    text = chat.tokenizer.decode(chat.prompt_ids("p", "s"))
    assert text.startswith("<bos>[user]\nFill in the code at <FILL>")
    assert text.endswith("<end_of_turn>\n[model]\n")
    assert text.count("<bos>") == 1
    plain = load_gemma(write_tiny(tmp_path / "plain"), denoising_steps=2)
    assert plain.tokenizer.decode(plain.prompt_ids("p", "s")) == "<bos>" + plain_prompt("p", "s")


def test_special_token_strings_in_the_code_are_plain_text(tmp_path):
    """Code that mentions `<end_of_turn>` or `<bos>` must not end the user turn or start a new one."""
    prefix, suffix = "END = '<end_of_turn>'\nSTART = '<bos>'\n", "\n"
    chat = load_gemma(write_tiny(tmp_path / "chat", chat_template=TEMPLATE), denoising_steps=2)
    plain = load_gemma(write_tiny(tmp_path / "plain"), denoising_steps=2)
    for engine, turn_ends in ((chat, 1), (plain, 0)):
        ids = engine.prompt_ids(prefix, suffix)
        specials = engine.tokenizer.convert_tokens_to_ids(["<bos>", "<end_of_turn>"])
        assert ids.count(specials[0]) == 1 and ids[0] == specials[0]  # the template's own bos only
        assert ids.count(specials[1]) == turn_ends  # the template's end of turn only
        assert prefix in engine.tokenizer.decode(ids)  # the code is all there, as text
        assert engine.codec.encode("<bos>") == engine.codec.encode("<b") + engine.codec.encode("os>")
    # the user turn is encoded as if the template had been rendered with the code in it
    text = chat.tokenizer.decode(chat.prompt_ids("p", "s"))
    messages = [{"role": "user", "content": infill_instruction("p", "s")}]
    assert text == chat.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# ---------------------------------------------------------------- prompt and answer, pure


def test_instruction_holds_the_context_around_the_marker():
    text = infill_instruction("def f():\n    ", "\nf()\n")
    assert f"```\ndef f():\n    {FILL}\nf()\n\n```" in text
    assert infill_instruction("x = '```'", "").count("````") == 2  # a fence the context cannot close


@pytest.mark.parametrize(
    ("answer", "prefix", "suffix", "middle"),
    [
        ("```python\nreturn a + b\n```", "def f(a, b):\n    ", "\n", "return a + b"),
        ("Here it is:\n```\nfoo()\n```\nDone.", "", "", "foo()"),
        ("```py\nbar(", "x = ", "", "bar("),  # still streaming: no closing fence yet
        ("```pyth", "x = ", "", ""),  # the fence line itself is not finished
        ("42", "x = ", "\n", "42"),
        ("42\n```", "x = ", "\n", "42"),  # a stray closing fence
        ("```\nx = 42\n```", "y = 1\nx = ", "\n", "42"),  # the current line echoed
        ("```\n    return 1\n```", "def f():\n    ", "\n", "return 1"),  # echoed indentation
        ("```\nif a:\n    b()\n```", "def f():\n", "\n", "if a:\n    b()"),
        ("```\n  return 1;\n}\n```", "int f() {\n", "\n}\n", "  return 1;"),  # echoed closing line
        ("```\nbar(1)\n```", "foo(", ")\n", "bar(1)"),  # a lone bracket is kept, not an echo
        ("```\nbar());\n```", "foo(", ");\n", "bar()"),
        ("```\nimport os\n\n```", "", "def main():\n", "import os\n"),  # whole lines before code
        ("```\nimport os\n```", "x = 1", "\nimport sys\n", "import os"),
        ("```\ndef f():\n    return 1\n```", "def f():\n    return ", "\n", "1"),  # whole prefix echoed
        ("", "a", "b", ""),
    ],
)
def test_answer_extraction(answer, prefix, suffix, middle):
    assert extract_middle(answer, prefix, suffix) == middle
    start, end = answer_bounds(answer, prefix, suffix)
    assert answer[start:end] == middle


def test_cut_answer_stops_at_a_stop_id_and_the_budget():
    assert cut_answer([5, 6, 1, 7], {1}, 10) == [5, 6]
    assert cut_answer([5, 6, 7, 8], {1}, 3) == [5, 6, 7]
    assert cut_answer([1, 5], {1}, 3) == []


def test_segments_cover_the_middle_only():
    pieces = ["```", "\n", "ab", "c", "d", "\n", "```"]
    hidden = [False, False, False, True, True, False, False]
    segments, spanned = answer_segments(pieces, hidden, "", "")
    assert segments == (Segment("ab", True, 1), Segment("", False, 2))
    assert spanned == 3
    resolved, _ = answer_segments(pieces, [False] * len(pieces), "", "")
    assert resolved == (Segment("abcd", True, 3),)


def test_token_pieces_concatenate_to_the_decoded_text():
    def decode(ids):  # a decoder that only makes "é" from the two tokens together
        text = "".join({1: "a", 2: "\xc3", 3: "\xa9", 4: "b"}[i] for i in ids)
        return text.encode("latin-1").decode("utf-8", errors="replace")

    pieces = token_pieces(decode, [1, 2, 3, 4])
    assert "".join(pieces) == "aéb" and len(pieces) == 4
    assert token_pieces(decode, [1, 4]) == ["a", "b"]


def test_context_is_clipped_to_whole_lines_in_tokens():
    tokenizer = char_tokenizer()
    prefix = "".join(f"line{i}\n" for i in range(10)) + "x = "
    suffix = "\n" + "".join(f"after{i}\n" for i in range(10))
    clipped_prefix, clipped_suffix = clip_context(tokenizer, prefix, suffix, 14, 14)
    assert clipped_prefix == "line9\nx = "
    assert clipped_suffix == "\nafter0\n"
    assert clip_context(tokenizer, "ab", "cd", 10, 10) == ("ab", "cd")
    assert clip_context(tokenizer, "ab", "cd", 0, 0) == ("", "")
