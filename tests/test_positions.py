"""LSP positions in utf-8, utf-16 and utf-32 against character offsets."""

from __future__ import annotations

import pytest

from lsp_server.positions import Point, PositionError, offset_at, point_at

TEXT = "a = 'é'\r\nb = '😀' + x\rlast\n"


@pytest.mark.parametrize(
    ("encoding", "point", "offset"),
    [
        ("utf-16", Point(0, 0), 0),
        ("utf-16", Point(0, 7), 7),
        ("utf-8", Point(0, 7), 6),  # é is two bytes
        ("utf-8", Point(0, 8), 7),
        ("utf-16", Point(1, 7), 15),  # 😀 is two utf-16 units
        ("utf-32", Point(1, 6), 15),
        ("utf-8", Point(1, 9), 15),
        ("utf-16", Point(2, 2), 23),  # a lone \r ends a line
        ("utf-16", Point(3, 0), 26),
    ],
)
def test_offset_and_point_round_trip(encoding, point, offset):
    assert offset_at(TEXT, point, encoding) == offset
    assert point_at(TEXT, offset, encoding) == point


def test_character_past_the_line_end_clamps_to_it():
    assert offset_at(TEXT, Point(0, 99), "utf-16") == 7


@pytest.mark.parametrize("point", [Point(4, 0), Point(-1, 0), Point(0, -2)])
def test_positions_outside_the_document_are_errors(point):
    with pytest.raises(PositionError, match=r"out of range|negative"):
        offset_at(TEXT, point, "utf-16")
