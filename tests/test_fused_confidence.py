"""The fused confidence kernel: its source compiles, its one-pass arithmetic is the reference's,
it matches torch on a GPU, and the engine falls back to torch where it cannot run."""

from __future__ import annotations

import pytest
import torch

from diffusion.confidence import CONFIDENCES, torch_scorer
from diffusion.fused_confidence import (
    FINISH,
    KERNEL_NAMES,
    KINDS,
    FusedScorer,
    agreement,
    choose_scorer,
    compile_kernels,
    cuda_core,
    race_logits,
)


def nvrtc_or_skip():
    if cuda_core() is None:
        pytest.skip("cuda-python's cuda.core is not installed")
    try:
        return compile_kernels("sm_90")
    except Exception as error:  # no NVRTC library on this machine
        pytest.skip(f"NVRTC unavailable: {error}")


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_the_kernel_source_compiles_with_nvrtc_without_a_gpu(arch):
    nvrtc_or_skip()
    code = compile_kernels(arch).code
    for name in (*KERNEL_NAMES.values(), FINISH):
        assert name.encode() in code


def one_pass(logits: torch.Tensor, kind: str, chunks: int = 7) -> tuple[torch.Tensor, ...]:
    """The kernel's arithmetic in float64 torch: partial sums over separate chunks of the
    vocabulary (the threads), merged by re-centring on the larger maximum (the block
    reduction), with the kernel's guards for chunks that saw only minus infinity."""
    x = logits.double()
    parts = []
    for chunk in x.tensor_split(chunks, dim=-1):
        top = chunk.max(dim=-1).values
        weights = (chunk - top[..., None]).exp().nan_to_num(0.0)  # an all -inf chunk: nothing
        relative = torch.where(weights > 0, weights * (chunk - top[..., None]), 0.0)
        second = chunk.topk(2, dim=-1).values[..., 1]
        parts.append((top, second, weights.sum(-1), relative.sum(-1)))
    top, second, total, weighted = parts[0]
    for t, s, z, w in parts[1:]:
        new_top = torch.maximum(top, t)
        second = torch.maximum(torch.minimum(top, t), torch.maximum(second, s))

        def recentred(old_top, old_total, old_weighted, new_top=new_top):
            rescale = (old_top - new_top).exp()
            moved = rescale * (old_weighted + (old_top - new_top) * old_total)
            return torch.where(old_total > 0, rescale * old_total, 0.0), torch.where(
                old_total > 0, moved, 0.0
            )

        total_a, weighted_a = recentred(top, total, weighted)
        total_b, weighted_b = recentred(t, z, w)
        top, total, weighted = new_top, total_a + total_b, weighted_a + weighted_b
    log_sum = total.log()
    confidence = {
        "top1": 1 / total,
        "margin": (1 - (second - top).exp()) / total,
        "entropy": weighted / total - log_sum,
    }[kind]
    return confidence, -log_sum


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_one_pass_formulas_give_the_reference_scores(kind):
    # What the kernel computes, checked where it can be: on the CPU, in float64.
    logits = torch.randn(3, 5, 1000, generator=torch.Generator().manual_seed(1)) * 4 + 30
    logits[..., :200] = float("-inf")  # banned ids, and a first chunk that sees nothing else
    logits[..., 500] = float("-inf")
    confidence, logp = one_pass(logits, kind)
    expected_conf, _, expected_logp = torch_scorer(CONFIDENCES[kind])(logits)
    assert torch.allclose(confidence.float(), expected_conf, atol=1e-5)
    assert torch.allclose(logp.float(), expected_logp, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_banned_ids_leave_every_reference_score_finite(kind):
    logits = torch.randn(2, 3, 50)
    logits[..., :5] = float("-inf")
    conf, token, logp = torch_scorer(CONFIDENCES[kind])(logits)
    assert bool(conf.isfinite().all() and logp.isfinite().all())
    assert bool((token >= 5).all())


def test_on_cpu_the_engine_scores_with_torch_and_says_why():
    choice = choose_scorer("top1", None, torch.device("cpu"), torch.float32, 100, 3, 16)
    assert not choice.fused and "runs on cpu" in choice.reason
    logits = torch.randn(2, 4, 100)
    conf, token, _ = choice.scorer(logits)
    assert torch.equal(token, logits.argmax(-1)) and conf.shape == (2, 4)
    with pytest.raises(RuntimeError, match="cannot be used: the model runs on cpu"):
        choose_scorer("top1", True, torch.device("cpu"), torch.float32, 100, 3, 16)


def test_the_engine_reports_its_scorer(engine):
    assert "torch scorer" in engine.scorer_choice().reason
    assert engine.with_settings(tau=0.5).scorer_choice() is engine.scorer_choice()  # chosen once


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_fused_kernel_matches_torch_on_the_gpu(dtype, kind):
    if cuda_core() is None:
        pytest.skip("cuda-python's cuda.core is not installed")
    device = torch.device("cuda")
    fused = FusedScorer(kind, device)
    for rows, window, vocab in [(1, 1, 7), (3, 64, 151_936), (2, 17, 32_000)]:
        logits = race_logits(rows, window, vocab, dtype, device)
        ok, detail = agreement(fused, torch_scorer(CONFIDENCES[kind]), logits)
        assert ok, f"{rows}x{window}x{vocab}: {detail}"
