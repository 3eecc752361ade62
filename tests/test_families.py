"""Each checkpoint family, written tiny in its own format, loads and matches a reference implementation."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from diffusion.checkpoint import CheckpointError, load_checkpoint
from diffusion.hub import resolve_model
from tests.family_fixtures import SHAPE, write_dream, write_llada


def no_causal_mask(reference):
    for layer in reference.model.layers:
        layer.self_attn.is_causal = False
    return reference


def reference_logits(reference, ids):
    with torch.no_grad():
        return reference(input_ids=ids, attention_mask={"full_attention": None}).logits


def test_dream_family_matches_qwen2_with_logits_shifted(tmp_path):
    folder = write_dream(tmp_path / "dream")
    checkpoint = load_checkpoint(folder)
    assert checkpoint.family == "qwen2" and checkpoint.config.shift_logits
    raw = json.loads((folder / "config.json").read_text())
    assert checkpoint.codec.specials.mask == raw["mask_token_id"]
    assert checkpoint.codec.specials.eos == raw["eos_token_id"]
    hf_config = transformers.Qwen2Config(
        vocab_size=raw["vocab_size"],
        **SHAPE,
        max_position_embeddings=512,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        attn_implementation="sdpa",
    )
    reference = transformers.Qwen2ForCausalLM(hf_config).eval()
    state = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    reference.load_state_dict(state)
    ids = torch.randint(0, raw["vocab_size"], (2, 29))
    expected = reference_logits(no_causal_mask(reference), ids)
    expected = torch.cat([expected[:, :1], expected[:, :-1]], dim=1)  # position i read from output i-1
    with torch.no_grad():
        got = checkpoint.model(ids)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()


def test_sharded_checkpoint_equals_the_single_file(tmp_path):
    single = load_checkpoint(write_dream(tmp_path / "one", seed=3))
    sharded = load_checkpoint(write_dream(tmp_path / "two", sharded=True, seed=3))
    assert (tmp_path / "two" / "model.safetensors.index.json").is_file()
    ids = torch.randint(0, single.config.vocab_size, (1, 17))
    with torch.no_grad():
        assert torch.equal(single.model(ids), sharded.model(ids))


def test_dreamon_expand_token_is_found_in_the_tokenizer(tmp_path):
    checkpoint = load_checkpoint(write_dream(tmp_path / "dreamon", dreamon=True))
    assert checkpoint.codec.specials.expand == checkpoint.codec.token_id("<|expand|>")
    plain = load_checkpoint(write_dream(tmp_path / "dream"))
    assert plain.codec.specials.expand is None


def test_llada_family_matches_llama_after_renaming(tmp_path, monkeypatch):
    # Llama builds its causal mask in one function; without it (and with is_causal off) SDPA sees everything.
    monkeypatch.setattr(transformers.models.llama.modeling_llama, "create_causal_mask", lambda **_: None)
    folder, state = write_llada(tmp_path / "llada")
    checkpoint = load_checkpoint(folder)
    assert checkpoint.family == "llada" and not checkpoint.config.shift_logits
    raw = json.loads((folder / "config.json").read_text())
    assert checkpoint.codec.specials.mask == raw["mask_token_id"]
    hf_config = transformers.LlamaConfig(
        vocab_size=raw["vocab_size"],
        hidden_size=raw["d_model"],
        intermediate_size=raw["mlp_hidden_size"],
        num_hidden_layers=raw["n_layers"],
        num_attention_heads=raw["n_heads"],
        num_key_value_heads=raw["n_kv_heads"],
        max_position_embeddings=512,
        rope_theta=raw["rope_theta"],
        rms_norm_eps=raw["rms_norm_eps"],
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        attn_implementation="sdpa",
    )
    reference = transformers.LlamaForCausalLM(hf_config).eval()
    reference.load_state_dict(state)
    ids = torch.randint(0, raw["vocab_size"], (2, 23))
    with torch.no_grad():
        expected = no_causal_mask(reference)(input_ids=ids).logits
        got = checkpoint.model(ids)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()


def test_rotary_buffers_saved_by_older_exports_are_not_weights(tmp_path):
    folder = write_dream(tmp_path / "dream")
    reference = load_checkpoint(folder)
    state = load_file(str(folder / "model.safetensors"))
    state["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(4)  # computed, never read
    save_file(state, str(folder / "model.safetensors"))
    loaded = load_checkpoint(folder)
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(loaded.model(ids), reference.model(ids))
    state["model.layers.0.self_attn.unknown.weight"] = torch.ones(4)  # anything else still refused
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"does not use: model\.layers\.0\.self_attn\.unknown\.weight"):
        load_checkpoint(folder)


def test_wrong_folders_each_get_a_clear_error(tmp_path):
    folder = write_dream(tmp_path / "dream")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_checkpoint(tmp_path / "empty")

    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**raw, "architectures": ["MambaForCausalLM"], "model_type": "mamba"})
    )
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load_checkpoint(folder)
    (folder / "config.json").write_text(json.dumps(raw))

    state = load_file(str(folder / "model.safetensors"))
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"lacks tensors: model\.layers\.1\.mlp\.up_proj\.weight"):
        load_checkpoint(folder)

    state["model.layers.1.mlp.up_proj.weight"] = torch.zeros(7, 7)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"up_proj\.weight has shape \(7, 7\)"):
        load_checkpoint(folder)

    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(folder)


def test_hub_ids_resolve_from_the_local_cache_only(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snapshot = cache / "models--Org--tiny-dream" / "snapshots" / "abc123"
    write_dream(snapshot)
    (cache / "models--Org--tiny-dream" / "refs").mkdir(parents=True)
    (cache / "models--Org--tiny-dream" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert resolve_model("Org/tiny-dream") == snapshot
    with pytest.raises(CheckpointError, match="never downloads") as caught:
        resolve_model("Org/absent-model")
    assert str(cache) in str(caught.value)


def test_expand_turns_one_mask_into_two_and_end_of_text_deletes():
    from diffusion.denoise import DenoiseState
    from diffusion.length import ExpandDelete

    mask, expand, eos = 9, 8, 7
    policy = ExpandDelete(expand_id=expand, delete_id=eos, mask_id=mask, span_start=1, max_span=6)
    # [bos] span(a, EXPAND, mask, EOS) [eos-of-canvas]
    ids = torch.tensor([[0, 1, expand, mask, eos, 5]])
    masked = torch.tensor([[False, False, False, True, False, False]])
    state = DenoiseState(ids, masked, torch.zeros(1), step=1, steps=4, forwards=1, span_lengths=(4,))
    after = policy(state)
    assert after.ids.tolist() == [[0, 1, mask, mask, mask, 5]]
    assert after.masked.tolist() == [[False, False, True, True, True, False]]
    assert after.span_lengths == (4,)  # one expanded (+1), one deleted (-1)
    # At the length bound an expand stays a mask instead of growing the span.
    full = DenoiseState(ids, masked, torch.zeros(1), step=1, steps=4, forwards=1, span_lengths=(4,))
    bounded = ExpandDelete(expand, eos, mask, span_start=1, max_span=4)(full)
    assert bounded.span_lengths == (3,) and bounded.ids[0, 2] == mask
    # Several deletes in one step stop at the shortest span allowed.
    ends = torch.tensor([[0, eos, eos, eos, mask, 5]])
    gone = DenoiseState(ends, ends == mask, torch.zeros(1), step=1, steps=4, forwards=1, span_lengths=(4,))
    kept = ExpandDelete(expand, eos, mask, span_start=1, max_span=6, min_span=2)(gone)
    assert kept.span_lengths == (2,) and kept.ids.tolist() == [[0, eos, mask, 5]]
    # Past its step limit the policy leaves the length alone: every commit is for good.
    late = DenoiseState(ids, masked, torch.zeros(1), step=9, steps=4, forwards=9, span_lengths=(4,))
    assert ExpandDelete(expand, eos, mask, span_start=1, max_span=6, step_limit=9)(late) is late


def test_a_model_that_always_asks_to_expand_still_finishes():
    # The worst DreamOn-style model: expand is every position's surest token. Without the step
    # limit the span would sit at its bound, re-masking expands, forever.
    from diffusion.canvas import build_canvas
    from diffusion.denoise import denoise
    from diffusion.length import expand_delete
    from diffusion.schedule import Threshold
    from diffusion.tokenizer import SpecialIds

    mask, expand, eos, vocab = 9, 8, 7, 12
    specials = SpecialIds(mask=mask, bos=0, eos=eos, pad=None, null=None, expand=expand)

    def always_expand(ids, window, attention):
        logits = torch.zeros(ids.shape[0], window[1] - window[0], vocab)
        logits[..., expand] = 10.0
        return logits

    canvas = build_canvas([1, 2], [3], [4], specials)
    policy = expand_delete(expand, eos, mask, canvas.span_start, max_span=8)
    states = list(denoise(always_expand, canvas, Threshold(0.9, 16), resize=policy))
    assert states[-1].done
    assert states[-1].span_lengths == (8,) and len(states) - 1 <= 4 * 8 + 8
    # Once the span is full, expand is banned: the rest decodes at the schedule's pace, with no
    # expand left in it, instead of re-masking expands until the step limit.
    full = next(i for i, s in enumerate(states) if s.span_lengths == (8,))
    assert len(states) - 1 - full <= 16
    assert expand not in states[-1].ids[0].tolist()


def test_a_span_under_length_control_starts_with_room_to_grow():
    from diffusion.length import start_length

    assert start_length(64) == 32 and start_length(1) == 1 and start_length(3) == 1


def test_dreamon_checkpoint_infills_with_length_control(tmp_path):
    from diffusion.engine import Engine, settings_for

    checkpoint = load_checkpoint(write_dream(tmp_path / "dreamon", dreamon=True))
    engine = Engine(checkpoint, torch.device("cpu"), settings_for(checkpoint))
    assert engine.length_control
    snapshots = list(engine.infill("def add(x, y):\n    return ", "\n", [6]))
    assert snapshots[0].best.span_length == 3  # half the budget: room to expand
    final = snapshots[-1]
    assert final.final and final.best.unresolved == 0
    assert 1 <= final.best.span_length <= engine.settings.max_span
    assert "<|expand|>" not in final.best.text and "<|mask|>" not in final.best.text


def test_shifted_model_without_bos_infills_at_the_start_of_a_file(tmp_path):
    """Column i of a shifted model is read from i - 1: an empty prefix still needs a column before the span."""
    from diffusion.engine import Engine, settings_for

    checkpoint = load_checkpoint(write_dream(tmp_path / "nobos", bos=False))
    assert checkpoint.config.shift_logits and checkpoint.codec.specials.bos is None
    engine = Engine(checkpoint, torch.device("cpu"), settings_for(checkpoint))
    final = list(engine.infill("", "\nprint(x)\n", [5]))[-1]
    assert final.final and final.best.unresolved == 0
    assert engine.score_block("", "x = 1", "\n") and all(
        s <= 0 for s in engine.score_block("", "x = 1", "\n")
    )


def test_dreamon_never_leaves_expand_in_text_without_its_length_policy(tmp_path):
    """Several span lengths (one row each) run no length policy: expand is banned there, and
    one left after the policy's step limit decodes to nothing."""
    from diffusion.engine import Engine, settings_for

    checkpoint = load_checkpoint(write_dream(tmp_path / "dreamon", dreamon=True))
    engine = Engine(checkpoint, torch.device("cpu"), settings_for(checkpoint)).with_settings(
        cache_refresh=0, max_span=8
    )
    expand = checkpoint.codec.specials.expand
    real = engine.predict

    def favour_expand(ids, window, attention):
        logits = real(ids, window, attention).clone()
        logits[..., expand] = 50.0
        return logits

    engine.predict = favour_expand
    several = list(engine.infill("def add(x, y):\n    return ", "\n", [2, 4, 6]))[-1]
    assert several.final
    for candidate in several.candidates:
        assert expand not in candidate.ids and "<|expand|>" not in candidate.text
    alone = list(engine.infill("def add(x, y):\n    return ", "\n", [3]))[-1]
    assert alone.final and "<|expand|>" not in alone.best.text


CONFIG_MISTAKES = [
    ({"num_key_value_heads": 0}, r"num_key_value_heads must be at least 1"),
    ({"num_key_value_heads": 3}, r"not a multiple of num_key_value_heads 3"),
    ({"head_dim": "16"}, r"head_dim must be an integer, not '16'"),
    ({"hidden_size": -64}, r"hidden_size must be at least 1"),
    ({"mask_token_id": "<|mask|>"}, r"mask_token_id must be an integer"),
    ({"mask_token_id": 10**6}, r"mask_token_id 1000000 is outside the vocabulary"),
    ({"rms_norm_eps": "small"}, r"rms_norm_eps must be a number"),
    ({"tie_word_embeddings": "false"}, r"tie_word_embeddings must be true or false"),
    ({"rope_parameters": [1]}, r"rope_parameters must be an object"),
]


@pytest.mark.parametrize(("change", "message"), CONFIG_MISTAKES)
def test_wrong_config_values_name_the_key_and_the_file(tmp_path, change, message):
    folder = write_dream(tmp_path / "dream")
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**raw, **change}))
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(folder)
    assert str(folder / "config.json") in str(caught.value)


def test_wrong_llada_config_values_are_checkpoint_errors(tmp_path):
    folder, _ = write_llada(tmp_path / "llada")
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**raw, "n_heads": 0, "n_kv_heads": 0}))
    with pytest.raises(CheckpointError, match="num_attention_heads must be at least 1"):
        load_checkpoint(folder)
    for key, value, message in (
        ("d_model", "64", "d_model must be an integer, not '64'"),
        ("weight_tying", "no", "weight_tying must be true or false"),
        ("rope_theta", "x", "rope_theta must be a number"),
    ):
        (folder / "config.json").write_text(json.dumps({**raw, key: value}))
        with pytest.raises(CheckpointError, match=message):  # named by LLaDA's own key
            load_checkpoint(folder)


LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 7031645\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (LFS_POINTER, r"tokenizer\.json is a git-lfs pointer.*git lfs pull"),
        ("{not json", r"tokenizer\.json is not a readable tokenizer"),
        ("{}", r"tokenizer\.json is not a readable tokenizer"),
    ],
)
def test_a_broken_tokenizer_is_a_checkpoint_error(tmp_path, text, message):
    folder = write_dream(tmp_path / "dream")
    (folder / "tokenizer.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(folder)


@pytest.mark.parametrize(
    ("weight_map", "message"),
    [
        (["model-00001-of-00002.safetensors"], "weight_map should be an object"),
        ({"model.norm.weight": 3}, r"weight_map\['model\.norm\.weight'\] is 3"),
        ({"model.norm.weight": "../model.safetensors"}, "not a file name in the folder"),
    ],
)
def test_a_wrong_shard_index_is_a_checkpoint_error(tmp_path, weight_map, message):
    folder = write_dream(tmp_path / "dream", sharded=True)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(folder)


def test_lfs_pointer_and_truncated_weights_name_the_file(tmp_path):
    folder = write_dream(tmp_path / "dream", sharded=True)
    shard = folder / "model-00002-of-00002.safetensors"
    whole = shard.read_bytes()
    shard.write_text(LFS_POINTER)
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002\.safetensors is a git-lfs pointer"):
        load_checkpoint(folder)
    shard.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002\.safetensors is not a readable"):
        load_checkpoint(folder)
    (folder / "config.json").write_text(LFS_POINTER)
    with pytest.raises(CheckpointError, match=r"config\.json is a git-lfs pointer"):
        load_checkpoint(folder)
