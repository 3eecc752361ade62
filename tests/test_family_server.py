"""One infill through the real server (stdio, pygls client) with each checkpoint family's tiny folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.family_fixtures import write_dream, write_llada
from tests.lsp_harness import connect

URI = "file:///work/family.py"
SOURCE = "def area(width, height):\n    return \n"


def write_gemma(folder: Path) -> Path:
    pytest.importorskip("transformers.models.diffusion_gemma")
    from tests.test_gemma_adapter import write_tiny

    return write_tiny(folder)


FAMILIES = {
    "dream": lambda folder: write_dream(folder),
    "dream-sharded": lambda folder: write_dream(folder, sharded=True),
    "dreamon": lambda folder: write_dream(folder, dreamon=True),
    "llada": lambda folder: write_llada(folder)[0],
    "diffusion-gemma": write_gemma,
}


@pytest.mark.parametrize("family", FAMILIES)
async def test_one_infill_through_the_server(family: str, tmp_path: Path):
    folder = FAMILIES[family](tmp_path / family)
    async with connect("stdio", model=str(folder)) as client:
        await client.initialize(options={"loadWaitSeconds": 120})
        client.open(URI, SOURCE)
        result = await asyncio.wait_for(client.inline_completion(URI, 1, 11, f"{family}-1"), 180)
        previews = client.previews_for(f"{family}-1")
        assert previews and previews[0]["step"] == 0
        last = previews[-1]
        assert last["final"] and not last["cancelled"]
        assert [p["step"] for p in previews] == sorted(p["step"] for p in previews)
        expected = result.items[0].insert_text if result.items else ""
        assert last["text"] == expected
        assert "\n" not in expected  # a single-line region stays on its line, whatever the weights say
