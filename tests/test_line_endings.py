"""The model sees `\\n`; answers come back in the document's own line ending."""

from __future__ import annotations

import asyncio

from diffusion.engine import Candidate, Segment
from lsp_server.line_endings import candidate_for_document, for_document, for_model, line_ending
from tests.test_server_e2e import BODY_LINE, RETURN_LINE, SOURCE, URI, client_over


def test_the_ending_is_the_one_most_lines_use():
    assert line_ending("a\r\nb\r\nc\n") == "\r\n"
    assert line_ending("a\nb\nc\r\n") == "\n"
    assert line_ending("no break") == "\n"
    assert line_ending("a\rb\rc") == "\r"  # an old Mac file: its edits must not bring `\n`
    assert line_ending("a\r\nb\nc") == "\r\n"  # a tie goes to `\r\n`


def test_text_converts_both_ways_without_doubling():
    assert for_model("a\r\nb\nc") == "a\nb\nc"
    assert for_document("a\nb\r\nc", "\r\n") == "a\r\nb\r\nc"
    assert for_document("a\nb", "\n") == "a\nb"
    assert for_model("a\rb\r\nc") == "a\nb\nc"
    assert for_document("a\nb", "\r") == "a\rb"


def test_candidates_keep_their_segments_and_change_only_the_text():
    candidate = Candidate(4, (Segment("x = 1\n", True, 3), Segment("", False, 1)), -0.5)
    converted = candidate_for_document(candidate, "\r\n")
    assert converted.text == "x = 1\r\n"
    assert [s.tokens for s in converted.segments] == [3, 1] and converted.score == -0.5


async def test_a_crlf_document_gets_the_lf_answer_in_its_own_endings():
    """The same code with either ending: the model's answer is the same, written in each one's."""
    crlf_uri = URI.replace(".py", "_crlf.py")
    async with client_over("stdio") as client:
        client.open(URI, SOURCE)
        client.open(crlf_uri, SOURCE.replace("\n", "\r\n"))
        for line, character in ((RETURN_LINE, 11), (BODY_LINE, 4)):
            plain = await asyncio.wait_for(client.inline_completion(URI, line, character, f"lf{line}"), 120)
            windows = await asyncio.wait_for(
                client.inline_completion(crlf_uri, line, character, f"crlf{line}"), 120
            )
            expected = [item.insert_text.replace("\n", "\r\n") for item in plain.items]
            assert [item.insert_text for item in windows.items] == expected
            assert all("\n" not in text.replace("\r\n", "") for text in expected)
            final = client.previews_for(f"crlf{line}")[-1]
            assert final["final"] and final["text"] == (expected[0] if expected else "")


async def test_block_edits_of_a_crlf_document_never_mix_endings():
    crlf_uri = URI.replace(".py", "_crlf.py")
    async with client_over("stdio") as client:
        client.open(crlf_uri, SOURCE.replace("\n", "\r\n"))
        for mode in ("rewrite", "suggest"):
            params = {
                "textDocument": {"uri": crlf_uri},
                "position": {"line": 8, "character": 12},
                "mode": mode,
            }
            result = await asyncio.wait_for(client.request("unmask/blockEdit", params, mode), 120)
            for edit in result.edits:
                assert "\n" not in edit.newText.replace("\r\n", ""), edit.newText
