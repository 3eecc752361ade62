"""`unmask doctor`: the device and the model's facts, for each family, and a clear error for a bad folder."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffusion.doctor import report, run_doctor
from tests.family_fixtures import write_dream, write_llada


def test_builtin_model_facts():
    facts = report(None, "cpu")
    assert facts["device"] == "cpu" and facts["family"] == "unmask"
    assert facts["mask_id"] is not None and facts["null_id"] is not None
    assert facts["shift_logits"] is False and facts["parameters"] > 1_000_000


def test_family_facts(tmp_path: Path):
    dream = report(str(write_dream(tmp_path / "dream")), "cpu")
    assert dream["shift_logits"] is True and dream["family"] != "unmask"
    llada = report(str(write_llada(tmp_path / "llada")[0]), "cpu")
    assert llada["shift_logits"] is False and llada["mask_id"] is not None


def test_diffusion_gemma_facts(tmp_path: Path):
    pytest.importorskip("transformers.models.diffusion_gemma")
    from tests.test_gemma_adapter import write_tiny

    facts = report(str(write_tiny(tmp_path / "gemma")), "cpu")
    assert "error" not in facts, facts.get("error")
    assert facts["family"].startswith("diffusion_gemma") and facts["parameters"] > 0


def test_a_wrong_folder_is_reported_and_exits_nonzero(tmp_path: Path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server.cli", "doctor", "--json", "--model", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2
    facts = json.loads(result.stdout)
    assert "BertModel" in facts["error"] and facts["device"]


def test_cuda_without_cuda_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    facts = report(None, "cuda")
    assert facts["device"] == "cuda" and "CUDA is not available" in facts["error"]
    args = argparse.Namespace(model=None, device="cuda", dtype=None, json=True)
    assert run_doctor(args) == 2


def test_an_unknown_device_is_reported_not_raised():
    facts = report(None, "nonsense")
    assert "nonsense is not a device" in facts["error"]


def test_a_git_lfs_tokenizer_is_reported_without_a_traceback(tmp_path: Path):
    folder = write_dream(tmp_path / "dream")
    (folder / "tokenizer.json").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server.cli", "doctor", "--model", str(folder), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "git-lfs pointer" in result.stdout and "tokenizer.json" in result.stdout


def test_facts_are_worded_for_people():
    from diffusion.doctor import worded

    assert [worded(v) for v in (None, True, False, 7, "cpu")] == ["none", "yes", "no", "7", "cpu"]
