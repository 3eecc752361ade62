"""The document store applies changes with LSP's line rules and tells reopened documents apart."""

from __future__ import annotations

import pytest

from lsp_server.documents import Change, DocumentError, DocumentStore, apply_change
from lsp_server.positions import Point

URI = "file:///work/a.py"


def span(start_line: int, start_char: int, end_line: int, end_char: int) -> tuple[Point, Point]:
    return Point(start_line, start_char), Point(end_line, end_char)


@pytest.mark.parametrize(
    ("text", "encoding", "where", "new", "expected"),
    [
        # Form feed, vertical tab, NEL and U+2028 are not line breaks in LSP (str.splitlines says they are).
        ("x = 1  # \x0c\ny = \n", "utf-16", span(1, 4, 1, 4), "2", "x = 1  # \x0c\ny = 2\n"),
        ("s = '\x0b'\nt = 1\n", "utf-16", span(1, 4, 1, 5), "2", "s = '\x0b'\nt = 2\n"),
        ("# caf\x85\nt = 1\n", "utf-16", span(1, 4, 1, 5), "2", "# caf\x85\nt = 2\n"),
        ("a = '\u2028'\nb = 1\n", "utf-8", span(1, 4, 1, 5), "3", "a = '\u2028'\nb = 3\n"),
        # Astral characters count two utf-16 units and four utf-8 bytes.
        ("s = '😀😀'\nx\n", "utf-16", span(0, 7, 0, 9), "A", "s = '😀A'\nx\n"),
        ("s = '😀😀'\nx\n", "utf-8", span(0, 9, 0, 13), "A", "s = '😀A'\nx\n"),
        ("a = 1\r\nb = 2\r\n", "utf-16", span(0, 5, 1, 0), "", "a = 1b = 2\r\n"),
        ("a\rb\rc", "utf-16", span(2, 0, 2, 1), "Z", "a\rb\rZ"),
        # A character past its line's end means the line's end; the line past the last, the end.
        ("ab\ncd\n", "utf-16", span(0, 99, 0, 99), "!", "ab!\ncd\n"),
        ("ab", "utf-16", span(1, 0, 1, 0), "\ncd", "ab\ncd"),
        ("ab\n", "utf-16", None, "whole", "whole"),
    ],
)
def test_changes_apply_with_lsp_line_rules(text, encoding, where, new, expected):
    assert apply_change(text, Change(where, new), encoding) == expected


def test_a_change_outside_the_document_marks_it_out_of_sync_until_the_full_text_comes():
    store = DocumentStore()
    store.open(URI, "a\nb\n", 1, "python")
    assert store.change(URI, 2, [Change(span(9, 0, 9, 1), "x")], "utf-16") is not None
    with pytest.raises(DocumentError, match="out of sync"):
        store.snapshot(URI, "utf-16", 1 << 20)
    # Later incremental changes cannot repair it; the whole text does.
    store.change(URI, 3, [Change(span(0, 0, 0, 0), "y")], "utf-16")
    with pytest.raises(DocumentError, match="out of sync"):
        store.snapshot(URI, "utf-16", 1 << 20)
    assert store.change(URI, 4, [Change(None, "fresh\n")], "utf-16") is None
    snapshot = store.snapshot(URI, "utf-16", 1 << 20)
    assert (snapshot.text, snapshot.version) == ("fresh\n", 4)


def test_a_reopened_document_at_the_same_version_has_a_new_stamp():
    store = DocumentStore()
    store.open(URI, "first\n", 1, "python")
    before = store.snapshot(URI, "utf-16", 1 << 20)
    store.close(URI)
    assert store.stamp(URI) is None
    store.open(URI, "second\n", 1, "python")
    after = store.snapshot(URI, "utf-16", 1 << 20)
    assert before.version == after.version and before.stamp != after.stamp
    assert store.stamp(URI) == after.stamp
    assert after.read > before.read  # reads are numbered in the order requests arrive


def test_a_change_to_an_unknown_document_is_reported_not_applied():
    store = DocumentStore()
    assert "not open" in store.change(URI, 2, [Change(None, "x")], "utf-16")
    with pytest.raises(DocumentError, match="unknown document"):
        store.snapshot(URI, "utf-16", 1 << 20)


def test_line_starts_after_any_edit_equal_a_full_rescan():
    """Edits that join or split `\\r\\n`, insert and delete breaks of every kind, anywhere."""
    import random

    from lsp_server.documents import Lines
    from lsp_server.positions import line_starts, point_at

    rng = random.Random(7)
    pieces = ["a", "bc", " ", "\n", "\r", "\r\n", "é", "😀"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 12)))
        lines = Lines.of(text)
        for _ in range(3):
            a, b = sorted(rng.randrange(0, len(lines.text) + 1) for _ in range(2))
            new = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 4)))
            span = (point_at(lines.text, a, "utf-32"), point_at(lines.text, b, "utf-32"))
            # An offset between `\r` and `\n` has no position of its own: it is its line's end.
            a, b = (lines.offset(p, "utf-32") for p in span)
            after = lines.apply(Change(span, new), "utf-32")
            expected = lines.text[:a] + new + lines.text[b:]
            assert after.text == expected, (lines.text, a, b, new)
            assert after.starts == line_starts(expected), (lines.text, a, b, new)
            lines = after
