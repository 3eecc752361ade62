"""The model written here against transformers' Qwen2, and the folder round trip."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from diffusion.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from diffusion.config import ModelConfig
from diffusion.model import DiffusionTransformer
from diffusion.tokenizer import SpecialIds, TextCodec

transformers = pytest.importorskip("transformers")

TINY = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    rope_theta=10000.0,
)


def reference_qwen2(config: ModelConfig, ours: DiffusionTransformer):
    """transformers' Qwen2 with our random weights, its causal mask switched off."""
    hf_config = transformers.Qwen2Config(
        **TINY, tie_word_embeddings=config.tie_word_embeddings, attn_implementation="sdpa"
    )
    reference = transformers.Qwen2ForCausalLM(hf_config).eval()
    missing, unexpected = reference.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    for layer in reference.model.layers:
        layer.self_attn.is_causal = False
    return reference


def reference_logits(reference, ids: torch.Tensor) -> torch.Tensor:
    # A mapping with no mask per layer type makes SDPA attend to every position.
    out = reference(input_ids=ids, attention_mask={"full_attention": None})
    return out.logits


@pytest.mark.parametrize("tied", [True, False])
def test_forward_matches_transformers_qwen2_without_causal_mask(tied):
    torch.manual_seed(0)
    config = ModelConfig(**TINY, tie_word_embeddings=tied)
    ours = DiffusionTransformer(config).eval()
    # Non-zero biases, so that the q/k/v bias path is compared too.
    with torch.no_grad():
        for layer in ours.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0, 0.1)
    reference = reference_qwen2(config, ours)
    ids = torch.randint(0, TINY["vocab_size"], (2, 37))
    with torch.no_grad():
        expected = reference_logits(reference, ids)
        got = ours(ids)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()


def test_attention_is_bidirectional():
    torch.manual_seed(0)
    model = DiffusionTransformer(ModelConfig(**TINY)).eval()
    ids = torch.randint(0, TINY["vocab_size"], (1, 16))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % TINY["vocab_size"]
    with torch.no_grad():
        # A later token changes the output at the first position: no causal mask.
        assert not torch.allclose(model(ids)[0, 0], model(changed)[0, 0])


def test_logits_at_selects_and_shifts():
    torch.manual_seed(0)
    ids = torch.randint(0, TINY["vocab_size"], (2, 12))
    select = torch.zeros_like(ids, dtype=torch.bool)
    select[0, 3] = select[1, 7] = True
    for shift in (False, True):
        model = DiffusionTransformer(ModelConfig(**TINY, shift_logits=shift)).eval()
        with torch.no_grad():
            full = model(ids)
            picked = model.logits_at(ids, select)
        assert torch.allclose(picked, full[select], atol=1e-5)
        if shift:  # the token at i is read from output i-1
            hidden = model.hidden_states(ids)
            assert torch.allclose(picked[0], model.lm_head(hidden[0, 2]), atol=1e-5)


def test_window_logits_read_a_host_known_window_and_shift():
    torch.manual_seed(0)
    ids = torch.randint(0, TINY["vocab_size"], (2, 12))
    for shift in (False, True):
        model = DiffusionTransformer(ModelConfig(**TINY, shift_logits=shift)).eval()
        with torch.no_grad():
            full = model(ids)  # aligned: row i predicts token i
            hidden = model.hidden_states(ids)
            window = model.window_logits(hidden, (3, 7))
            # Hidden states of columns 2..9 only, as a cached block step has them.
            block = model.window_logits(hidden[:, 2:10], (3, 7), offset=2)
        assert window.shape == (2, 4, TINY["vocab_size"])
        assert torch.allclose(window, full[:, 3:7], atol=1e-5)
        assert torch.allclose(block, window)
        with pytest.raises(AssertionError, match="not predicted by hidden columns"):
            model.window_logits(hidden[:, 3:10], (3, 7), offset=3 + (0 if shift else 1))


def write_codec(tmp_path, config: ModelConfig) -> TextCodec:
    vocab = {f"t{i}": i for i in range(config.vocab_size)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return TextCodec(tokenizer, SpecialIds(mask=1, bos=2, eos=3, pad=4, null=5))


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(
        **TINY, mask_token_id=1, bos_token_id=2, eos_token_id=3, pad_token_id=4, null_token_id=5
    )
    model = DiffusionTransformer(config).eval()
    codec = write_codec(tmp_path, config)
    save_checkpoint(tmp_path / "m", config, model, codec)
    # The weights are as readable as the other files (safetensors alone makes them owner-only).
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert modes["model.safetensors"] == modes["config.json"] == modes["tokenizer.json"]
    loaded = load_checkpoint(tmp_path / "m")
    assert loaded.config == config
    assert loaded.codec.specials == codec.specials
    ids = torch.randint(0, TINY["vocab_size"], (1, 20))
    with torch.no_grad():
        assert torch.equal(model(ids), loaded.model(ids))


def test_a_loaded_model_is_fused_without_a_second_copy_and_saves_as_before(tmp_path):
    torch.manual_seed(0)
    config = ModelConfig(**TINY, mask_token_id=1, attention_bias=True)
    model = DiffusionTransformer(config).eval()
    codec = write_codec(tmp_path, config)
    save_checkpoint(tmp_path / "m", config, model, codec)
    loaded = load_checkpoint(tmp_path / "m").model
    attention, mlp = loaded.model.layers[0].self_attn, loaded.model.layers[0].mlp
    merged, merged_bias = attention.qkv
    # The projections read from the merged matrices: one matrix product, no weight stored twice.
    for projection in (attention.q_proj, attention.k_proj, attention.v_proj):
        assert projection.weight.untyped_storage().data_ptr() == merged.untyped_storage().data_ptr()
        assert projection.bias.untyped_storage().data_ptr() == merged_bias.untyped_storage().data_ptr()
    assert mlp.up_proj.weight.untyped_storage().data_ptr() == mlp.gate_up.untyped_storage().data_ptr()
    assert loaded.num_parameters() == model.num_parameters()
    assert loaded.state_dict().keys() == model.state_dict().keys()
    # Saved again (safetensors refuses tensors that share memory), it loads to the same model.
    save_checkpoint(tmp_path / "again", config, loaded, codec)
    again = load_checkpoint(tmp_path / "again").model
    ids = torch.randint(0, TINY["vocab_size"], (2, 20))
    with torch.no_grad():
        assert torch.equal(again(ids), loaded(ids))
        assert torch.allclose(loaded(ids), model(ids), atol=1e-5)


def test_a_fused_model_moved_reloaded_or_trained_still_computes_the_same_model():
    torch.manual_seed(0)
    config = ModelConfig(**TINY, mask_token_id=1, attention_bias=True)
    plain = DiffusionTransformer(config).eval()
    fused = DiffusionTransformer(config).eval()
    fused.load_state_dict(plain.state_dict())
    fused.fuse()
    ids = torch.randint(0, TINY["vocab_size"], (2, 20))
    with torch.no_grad():
        expected = plain(ids)
        # A cast goes through every parameter: the merged matrices follow, in the new dtype.
        fused.double()
        assert fused.fused and fused.model.layers[0].self_attn.qkv[0].dtype == torch.float64
        assert torch.allclose(fused(ids.clone()).float(), expected, atol=1e-5)
        fused.float()
        # Other weights copied in place reach the merged matrices through their views ...
        other = DiffusionTransformer(config).eval()
        fused.load_state_dict(other.state_dict())
        assert torch.allclose(fused(ids), other(ids), atol=1e-5)
        # ... and so do weights assigned in place of the parameters.
        fused.load_state_dict(plain.state_dict(), assign=True)
        assert fused.fused and torch.allclose(fused(ids), expected, atol=1e-5)
    # Training runs the separate projections, so every one of them gets a gradient.
    fused.train().requires_grad_(True)
    assert not fused.fused
    fused(ids).logsumexp(-1).mean().backward()
    attention = fused.model.layers[0].self_attn
    for parameter in (
        attention.q_proj.weight,
        attention.k_proj.bias,
        fused.model.layers[0].mlp.up_proj.weight,
    ):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0


def test_rotary_tables_built_under_inference_mode_train_and_outgrown_ones_stay_alive():
    torch.manual_seed(0)
    model = DiffusionTransformer(ModelConfig(**TINY, mask_token_id=1))
    with torch.inference_mode():
        model(torch.randint(0, TINY["vocab_size"], (1, 10)))
    short = model.rotary(10, torch.device("cpu"), torch.float32)
    assert not short[0].is_inference()
    longer = model.rotary(100, torch.device("cpu"), torch.float32)
    assert longer[0].shape[0] >= 100 > short[0].shape[0]
    # A CUDA graph recorded with the short table still reads it by address: it must stay allocated.
    assert any(table[0] is short[0] for table in model._outgrown_rotary)
    model.train()
    model(torch.randint(0, TINY["vocab_size"], (1, 10))).sum().backward()
    assert model.lm_head.weight.grad is not None


def test_wrong_folders_name_the_problem(tmp_path):
    config = ModelConfig(**TINY, mask_token_id=1)
    codec = write_codec(tmp_path, config)
    save_checkpoint(tmp_path / "m", config, DiffusionTransformer(config), codec)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_checkpoint(tmp_path / "empty")
    raw = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(
        json.dumps({**raw, "hidden_size": 32, "intermediate_size": 96})
    )
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path / "m")
