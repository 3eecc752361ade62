"""The tree-sitter region picker: infill shapes, rewrite blocks, parse checks and candidate ranking.

Cases are source text with markers: `█` is the cursor (two of them: a
selection), `«` and `»` enclose the region a rewrite should pick.
"""

from __future__ import annotations

import itertools

import pytest

from lsp_server import grammars
from lsp_server.grammars import Source, byte_to_char, char_to_byte, error_count, parse, reparse
from lsp_server.regions import (
    InfillRegion,
    RewriteRegion,
    language_for_path,
    parses_cleanly,
    pick_infill,
    pick_rewrite,
    rank_candidates,
)

CURSOR, OPEN, CLOSE = "█", "«", "»"
LANGUAGES = ("python", "javascript", "typescript", "go", "rust", "lua")


def markers(source: str) -> tuple[str, dict[str, list[int]]]:
    """The text without markers, and each marker's offsets into that text."""
    text: list[str] = []
    found: dict[str, list[int]] = {CURSOR: [], OPEN: [], CLOSE: []}
    for ch in source:
        if ch in found:
            found[ch].append(len(text))
        else:
            text.append(ch)
    return "".join(text), found


def parse_marked(source: str) -> tuple[str, int]:
    text, found = markers(source)
    assert len(found[CURSOR]) == 1, "a case needs exactly one cursor"
    return text, found[CURSOR][0]


def test_parse_marked_strips_every_marker():
    assert parse_marked("a«b█c»d") == ("abcd", 2)
    assert markers("«x█y█»") == ("xy", {CURSOR: [1, 2], OPEN: [0], CLOSE: [2]})


# --- infill shapes -------------------------------------------------------------------------------

S, M = "single-line", "multi-line"

INFILL = {
    "python": [
        ("def f(x):\n    █", M),
        ("def f(x):█\n    return 1\n", M),
        ("for i in range(3):█\n", M),
        ("def f(x):\n    return x +█", S),
        ("def f(x):\n    y = 1\n    █\n    return y\n", M),
        ("if ready:\n    █\nelse:\n    pass\n", M),
        ("class A:\n    def f(self):\n        █\n", M),
        ("x = foo(a, █)\n", S),
        ("x = foo(\n    █\n)\n", S),
        ("d = {'a':█}\n", S),
        ("x = 'ab█c'\n", S),
        ('def f():\n    """Doc.\n█\n    """\n', S),
        ("# a comment █\n", S),
        ("def f():\n    █print(x)\n", S),
        ("from os import (\n    path,\n    █\n)\n", S),
        ("from os import (\n    █\n)\n", S),
        ("x = 1  # note█\n", S),
        ("def f(x):\n    for y in x:  # each item█\n        pass\n", S),
        ("def f(x):  # doc\n    █\n", M),
    ],
    "javascript": [
        ("function f() {█\n}\n", M),
        ("function f() { █ }\n", M),
        ("function f() {\n  █\n}\n", M),
        ("function f() {█", M),
        ("if (ok) {\n  █\n} else {\n}\n", M),
        ("const x = █", S),
        ("const o = {█};\n", S),
        ("foo(\n  █\n);\n", S),
        ("const s = `a${█}`;\n", S),
        ("function f() {\n  return a +█\n}\n", S),
        ("/* a\n█\n*/\n", S),
        ("function f() {\n  █return 1;\n}\n", S),
        ("if (x) { a(); }█\n", S),
        ("function f() { // doc█\n}\n", S),
        ("function f() {\n  if (x) {\n    a();\n  }█\n}\n", S),
    ],
    "typescript": [
        ("interface I {\n  █\n}\n", M),
        ("function f(a: number): number {█\n}\n", M),
        ("class A {\n  m(): void {█}\n}\n", M),
        ("enum E {\n  █\n}\n", M),
        ("const f = (a: string) => {█\n};\n", M),
        ("const x: number = █;", S),
        ("function f(a: number,█) {}\n", S),
        ("let s: string = 'x█';\n", S),
    ],
    "go": [
        ("package main\n\nfunc f() {█\n}\n", M),
        ("package main\n\nfunc f() {\n\t█\n}\n", M),
        ("package main\n\nfunc f() {█", M),
        ("package main\n\ntype S struct {\n\t█\n}\n", M),
        ("package main\n\nfunc f(x int) {\n\tif x > 0 {█\n\t}\n}\n", M),
        ("package main\n\nfunc f() {\n\tx := █\n}\n", S),
        ("package main\n\nvar x = []int{█}\n", S),
        ("package main\n\nfunc f() {\n\tfmt.Println(█)\n}\n", S),
        ("package main\n\nfunc f() { // doc█\n}\n", S),
    ],
    "rust": [
        ("fn f() {█\n}\n", M),
        ("fn f() {\n    █\n}\n", M),
        ("fn f() {█", M),
        ("impl S {\n    █\n}\n", M),
        ("fn f() {\n    match x {\n        █\n    }\n}\n", M),
        ("fn f() {\n    let x = █\n}\n", S),
        ("use std::{█};\n", S),
        ('fn f() {\n    let s = "a█";\n}\n', S),
        ("fn f() {\n    let v = vec![\n        1,\n        █\n    ];\n}\n", S),
        ('fn f() {\n    println!(\n        "{}",\n        █\n    );\n}\n', S),
        ("macro_rules! m {\n    ($x:expr) => {\n        █\n    };\n}\n", M),  # braces: a body
        ("lazy_static! {\n    █\n}\n", M),
        ("fn f() { // doc█\n}\n", S),
        ("fn f() {\n    /// doc█", S),
    ],
    "lua": [
        ("function f()█\nend\n", M),
        ("function f()\n  █\nend\n", M),
        ("function f()\n  █", M),
        ("if x then█\nend\n", M),
        ("if x then\n  y = 1\nelse█\nend\n", M),
        ("for i = 1, 3 do\n  █\nend\n", M),
        ("while x do █ end\n", M),
        ("repeat█\nuntil x\n", M),
        ("local x = █", S),
        ("local t = {\n  █\n}\n", S),
        ("print(█)\n", S),
        ("local s = 'a█b'\n", S),
        ("function f() return 1█ end\n", S),
        ("function f() -- doc█\nend\n", S),
        ("for i = 1, 3 do -- each█\nend\n", S),
    ],
}


@pytest.mark.parametrize(
    ("language", "source", "shape"),
    [(language, source, shape) for language, cases in INFILL.items() for source, shape in cases],
)
def test_infill_shape(language, source, shape):
    text, offset = parse_marked(source)
    region = pick_infill(text, offset, language)
    assert region is not None
    assert (region.start, region.end, region.shape) == (offset, offset, shape)


@pytest.mark.parametrize(
    ("language", "source", "shape", "indent"),
    [
        ("tsx", "function C() {\n  █\n}\n", M, "  "),
        ("tsx", "const el = <div>{█}</div>;\n", S, ""),
        ("typescript", "function f() {\r\n  █\r\n}\r\n", M, "  "),
        ("python", "def f():\r\n\treturn 1 +█\r\n", S, "\t"),
        ("python", "def f():\r    █\r", M, "    "),
    ],
)
def test_infill_shape_tsx_and_crlf(language, source, shape, indent):
    text, offset = parse_marked(source)
    assert pick_infill(text, offset, language) == InfillRegion(offset, offset, shape, indent)


LINE_ENDS = {"lone CR": "\r", "CRLF": "\r\n"}


@pytest.mark.parametrize("line_end", LINE_ENDS.values(), ids=LINE_ENDS.keys())
@pytest.mark.parametrize(
    ("language", "source", "shape"),
    [(language, source, shape) for language, cases in INFILL.items() for source, shape in cases],
)
def test_infill_shape_is_the_same_with_any_line_end(language, source, shape, line_end):
    # LSP allows \r, \r\n and \n; the grammars (Python's, Go's, JavaScript's) see only \n.
    text, offset = parse_marked(source.replace("\n", line_end))
    assert pick_infill(text, offset, language).shape == shape


def test_infill_reports_the_cursor_line_indent():
    text, offset = parse_marked("def f():\n    if x:\n        y = █\n")
    assert pick_infill(text, offset, "python") == InfillRegion(offset, offset, S, "        ")
    text, offset = parse_marked("package main\n\nfunc f() {\n\t█\n}\n")
    assert pick_infill(text, offset, "go").indent == "\t"


@pytest.mark.parametrize("language", [*LANGUAGES, None, "cobol"])
@pytest.mark.parametrize("offset", [-1, 23, 10_000])
def test_infill_out_of_range_is_none(language, offset):
    text = "x = 1\nprint(x)\ny = 22\n"  # 22 characters: 22 is the end, 23 is past it
    assert pick_infill(text, offset, language) is None


@pytest.mark.parametrize("language", [*LANGUAGES, None])
def test_infill_at_the_very_ends_and_on_empty_text(language):
    text = "x = 1\n"
    assert pick_infill(text, 0, language) is not None
    assert pick_infill(text, len(text), language) is not None
    assert pick_infill("", 0, language) == InfillRegion(0, 0, M, "")


@pytest.mark.parametrize(
    ("source", "shape"),
    [("def f():\n    █\n", M), ("█\n", M), ("x = █\n", S), ("  foo(█)\n", S), ("█bar\n", S)],
)
@pytest.mark.parametrize("language", [None, "cobol"])
def test_infill_without_a_grammar_goes_by_blank_lines(language, source, shape):
    text, offset = parse_marked(source)
    assert pick_infill(text, offset, language).shape == shape


def test_a_missing_wheel_makes_the_language_unknown(monkeypatch):
    try:
        with monkeypatch.context() as patch:
            patch.setitem(grammars.GRAMMARS, "python", ("tree_sitter_no_such_wheel", "language"))
            grammars._grammar.cache_clear()
            assert grammars.parser("python") is None
            text, offset = parse_marked("x = foo(\n    █\n)\n")  # a bracketed list: S with the grammar
            assert pick_infill(text, offset, "python").shape == M
            assert parses_cleanly("def (", "python")
            assert pick_rewrite("a = 1\nb = 2\n", 1, None, "python") == RewriteRegion(0, 11, "paragraph")
            assert rank_candidates("x = 1\n", 4, 5, ["(", "2"], "python") == [0, 1]
    finally:
        grammars._grammar.cache_clear()  # the grammar that failed to load must not stay cached
    assert grammars.parser("python") is not None


# --- rewrite regions -----------------------------------------------------------------------------

REWRITE = {
    "python": [
        ("import os\n\n«def f(x):\n    y = x█ + 1\n    return y»\n", "function_definition"),
        ("def f(xs):\n    «for x in xs:\n        print(█x)»\n    return 1\n", "for_statement"),
        ("class A:\n    «def m(self):\n        return █1»\n", "function_definition"),
        ("def f(x):\n    «if x:\n        return 1\n    else:\n        █return 2»\n", "if_statement"),
        ("«def f(x):\n    y = 1»\n    █\n", "function_definition"),
        ("«x = compute(█a)»\nprint(x)\n", "expression_statement"),
        ("def f():\n    pass\n\n█\n\ndef g():\n    pass\n", None),
        ("def f():\n    «a = █1\n    b = 2█»\n    return a\n", "block"),
        ("def f():\n    «return █a + b█»\n", "return_statement"),
    ],
    "javascript": [
        ("«function f(a) {\n  const b = █a;\n  return b;\n}»\n", "function_declaration"),
        ("function f(a) {\n  «if (a) {\n    █return 1;\n  }»\n}\n", "if_statement"),
        ("class A {\n  «m() {\n    return █1;\n  }»\n}\n", "method_definition"),
        ("function f() {\n  items.forEach(«(x) => {\n    █log(x);\n  }»);\n}\n", "arrow_function"),
        ("«const x = █1;»\n", "lexical_declaration"),
        ("function f() {\n  «const a = █1;\n  const b = 2;█»\n  return a + b;\n}\n", "statement_block"),
    ],
    "typescript": [
        ("«interface I {\n  a: █number;\n}»\n", "interface_declaration"),
        ("«function f(a: number): number {\n  return █a;\n}»\n", "function_declaration"),
        ("«enum E {\n  A,\n  █B,\n}»\n", "enum_declaration"),
        ("class C {\n  «method(): void {\n    █this.x = 1;\n  }»\n}\n", "method_definition"),
        ("«type T = █string;»\n", "type_alias_declaration"),
    ],
    "go": [
        ("package main\n\n«func f() int {\n\treturn █1\n}»\n", "function_declaration"),
        (
            "package main\n\nfunc f(xs []int) {\n\t«for _, x := range xs {\n\t\t█println(x)\n\t}»\n}\n",
            "for_statement",
        ),
        ("package main\n\n«func (s S) m() {\n\t█s.x = 1\n}»\n", "method_declaration"),
        ("package main\n\n«type S struct {\n\tx █int\n}»\n", "type_declaration"),
        ("«package █main»\n", "package_clause"),
        ("package main\n\nfunc f() {\n\t«a := █1\n\tb := 2█»\n\t_ = a + b\n}\n", "statement_list"),
    ],
    "rust": [
        ("«fn f() -> i32 {\n    █1\n}»\n", "function_item"),
        ("«impl S {\n    fn new() -> Self { █S }\n}»\n", "impl_item"),
        ("fn f(x: i32) {\n    «if x > 0 {\n        █g();\n    }»\n}\n", "if_expression"),
        (
            "fn f(x: i32) {\n    «match x {\n        █1 => (),\n        _ => (),\n    }»\n}\n",
            "match_expression",
        ),
        ("«struct S {\n    █a: i32,\n}»\n", "struct_item"),
        ("«use std::█io;»\n", "use_declaration"),
    ],
    "lua": [
        ("«function f(a)\n  █return a\nend»\n", "function_declaration"),
        ("function f(a)\n  «if a then\n    █return 1\n  end»\nend\n", "if_statement"),
        ("«for i = 1, 3 do\n  █print(i)\nend»\n", "for_statement"),
        ("local g = «function()\n  █return 1\nend»\n", "function_definition"),
        ("«while x do\n  █x = false\nend»\n", "while_statement"),
        ("«local x = █1»\n", "variable_declaration"),
    ],
}


def expected_rewrite(source: str) -> tuple[str, int, int | None, tuple[int, int] | None]:
    text, found = markers(source)
    cursors = found[CURSOR]
    start, end = cursors[0], (cursors[1] if len(cursors) > 1 else None)
    span = (found[OPEN][0], found[CLOSE][0]) if found[OPEN] else None
    return text, start, end, span


@pytest.mark.parametrize(
    ("language", "source", "kind"),
    [(language, source, kind) for language, cases in REWRITE.items() for source, kind in cases],
)
def test_rewrite_region(language, source, kind):
    text, start, end, span = expected_rewrite(source)
    region = pick_rewrite(text, start, end, language)
    if span is None:
        assert region is None
    else:
        assert region == RewriteRegion(span[0], span[1], kind), text[region.start : region.end]


@pytest.mark.parametrize("line_end", LINE_ENDS.values(), ids=LINE_ENDS.keys())
@pytest.mark.parametrize(
    ("language", "source", "kind"),
    [(language, source, kind) for language, cases in REWRITE.items() for source, kind in cases],
)
def test_rewrite_region_is_the_same_with_any_line_end(language, source, kind, line_end):
    # Tree-sitter's rows count only \n: with lone \r everything sat on row 0 and a
    # cursor took its statement instead of the enclosing block.
    text, start, end, span = expected_rewrite(source.replace("\n", line_end))
    region = pick_rewrite(text, start, end, language)
    assert region == (RewriteRegion(span[0], span[1], kind) if span else None)


def test_rewrite_selection_is_order_free_and_ignores_surrounding_whitespace():
    text, found = markers("def f():\n    «a = 1\n    b = 2»\n    return a\n")
    span = found[OPEN][0], found[CLOSE][0]
    region = RewriteRegion(span[0], span[1], "block")
    assert pick_rewrite(text, span[0], span[1], "python") == region
    assert pick_rewrite(text, span[1], span[0], "python") == region
    assert pick_rewrite(text, span[0] - 4, span[1] + 1, "python") == region  # whole lines, with indent
    assert pick_rewrite(text, 0, len(text), "python") == RewriteRegion(
        0, len(text) - 1, "function_definition"
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_rewrite_out_of_range_is_none(language):
    text = "x = 1\n"
    assert pick_rewrite(text, -1, None, language) is None
    assert pick_rewrite(text, 7, None, language) is None
    assert pick_rewrite(text, 0, 99, language) is None


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("intro\n\n«alpha\nbe█ta\ngamma»\n\nomega\n", "paragraph"),
        ("  «indented█ first\nsecond»", "paragraph"),
        ("one\n\n█\n\ntwo\n", None),
        ("one\n«tw█o\nthr█ee»\nfour\n", "lines"),
    ],
)
@pytest.mark.parametrize("language", [None, "cobol"])
def test_rewrite_without_a_grammar_takes_the_paragraph_or_the_lines(language, source, kind):
    text, start, end, span = expected_rewrite(source)
    region = pick_rewrite(text, start, end, language)
    assert region == (RewriteRegion(span[0], span[1], kind) if span else None)


# --- parsing and ranking -------------------------------------------------------------------------

CLEAN = {
    "python": ("def f(x):\n    return x\n", "def f(x):\n    return x +\n"),
    "javascript": ("function f() { return 1; }\n", "function f() {"),
    "typescript": ("let x: number = 1;\n", "let x: = 1;\n"),
    "go": ("package main\n\nfunc f() {}\n", "package main\n\nfunc f() {\n"),
    "rust": ("fn f() { let x = 1; }\n", "fn f() { let x = ; }\n"),
    "lua": ("local x = 1\n", "local x = \n"),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_parses_cleanly(language):
    good, bad = CLEAN[language]
    assert parses_cleanly(good, language)
    assert not parses_cleanly(bad, language)


def test_parses_cleanly_without_a_grammar_is_true():
    assert parses_cleanly("def (((", None)
    assert parses_cleanly("def (((", "cobol")
    assert not parses_cleanly("def (((", "python")


# (document with █ where the candidates go, a candidate that parses, one that does not)
SPLICE = {
    "python": ("def f(x):\n    █\n", "return x + 1", "return (x +"),
    "javascript": ("function f(x) {\n  █\n}\n", "return x + 1;", "return (x +;"),
    "typescript": ("function f(x: number): number {\n  █\n}\n", "return x + 1;", "return x: +;"),
    "go": ("package main\n\nfunc f(x int) int {\n\t█\n}\n", "return x + 1", "return (x +"),
    "rust": ("fn f(x: i32) -> i32 {\n    █\n}\n", "x + 1", "let = x +"),
    "lua": ("function f(x)\n  █\nend\n", "return x + 1", "return (x +"),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_broken_candidate_ranks_below_one_that_parses(language):
    source, good, bad = SPLICE[language]
    text, offset = parse_marked(source)
    assert rank_candidates(text, offset, offset, [bad, good], language) == [1, 0]
    assert rank_candidates(text, offset, offset, [good, bad], language) == [0, 1]
    assert rank_candidates(text, offset, offset, [bad, bad + " )", good, good], language)[:2] == [2, 3]


def test_ranking_replaces_the_span_and_is_stable():
    text = "def f(x):\n    return x +\n"
    start = text.index("x +")
    end = start + len("x +")
    assert rank_candidates(text, start, end, ["x -", "x * 2", "(x", "x + 1"], "python") == [1, 3, 0, 2]
    assert rank_candidates(text, start, end, ["x", "x + 1", "2 * x"], "python") == [0, 1, 2]


def test_ranking_in_an_already_broken_file_counts_only_new_errors():
    text = "def broken(:\n    pass\n\n\ndef f(x):\n    return █\n"
    text, offset = parse_marked(text)
    assert not parses_cleanly(text, "python")
    assert rank_candidates(text, offset, offset, ["x +", "(x", "x + 1"], "python")[0] == 2


def test_a_candidate_with_a_broken_character_ranks_below_whole_ones():
    text = 'greeting = "hi"\n'
    start, end = text.index('"hi"'), text.index('"hi"') + 4
    # U+FFFD: bytes of a character the model never finished; a string literal parses either way.
    assert rank_candidates(text, start, end, ['"h\ufffd"', '"hé"'], "python") == [1, 0]
    assert rank_candidates(text, start, end, ['"h\ufffd"', '"hé"'], None) == [1, 0]
    # One the document already had is no fault of the candidate.
    kept = 'x = "\ufffd"\n'
    span = (kept.index('"'), kept.index('"') + 3)
    assert rank_candidates(kept, *span, ['"\ufffd"', '"a"'], "python") == [0, 1]


def test_ranking_without_a_grammar_keeps_the_order():
    assert rank_candidates("a\n", 0, 1, ["((", "b", "c"], None) == [0, 1, 2]


@pytest.mark.parametrize(("start", "end"), [(None, 1), (0, "1"), (-1, 1), (0, 99), (True, 1), (1.0, 2)])
def test_ranking_a_span_that_is_not_in_the_document_keeps_the_order(start, end):
    assert rank_candidates("x = 1\n", start, end, ["(", "2", "\ufffd"], "python") == [0, 1, 2]
    assert rank_candidates("a\n", 0, 1, [], "python") == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_incremental_reparse_counts_the_same_errors_as_a_fresh_parse(language):
    source, good, bad = SPLICE[language]
    text, offset = parse_marked("// é😀\n" + source if language != "python" else "# é😀\n" + source)
    if language == "lua":
        text = text.replace("// ", "-- ", 1)
    old = Source.of(text)
    tree = parse(old, language)
    for candidate in (good, bad, "", "é😀 ("):
        spliced, new = reparse(tree, old, offset, offset, candidate, language)
        assert new.text == text[:offset] + candidate + text[offset:]
        fresh = parse(new, language)
        assert str(spliced.root_node) == str(fresh.root_node)
        assert error_count(spliced.root_node) == error_count(fresh.root_node)


def test_error_count_counts_errors_and_missing_nodes():
    assert error_count(parse(Source.of("x = 1\n"), "python").root_node) == 0
    assert error_count(parse(Source.of("function f() {"), "javascript").root_node) == 1  # MISSING }
    two_functions = "function f() {\n  let = ;\n}\nfunction g() {\n  let = ;\n}\n"
    assert error_count(parse(Source.of(two_functions), "javascript").root_node) == 2  # one ERROR each
    nested = "f(;\ng(;\n"  # recovery nests an ERROR in an ERROR: still one broken place
    assert error_count(parse(Source.of(nested), "javascript").root_node) == 1


ODD_TEXTS = ["", "\n\n", "\r\n\r\n  ", "é😀\ud800 {", "\x00\x00(", "}}}end end))", "'''\"\"\"`${", "\t" * 50]


@pytest.mark.parametrize("language", [*grammars.GRAMMARS, None, "cobol", 3])
def test_odd_input_gives_answers_or_none_never_exceptions(language):
    for text in ODD_TEXTS:
        for offset in range(-1, len(text) + 2):
            region = pick_infill(text, offset, language)
            assert region is None if not 0 <= offset <= len(text) else region.start == offset
            for end in (None, 0, len(text), len(text) + 1):
                rewrite = pick_rewrite(text, offset, end, language)
                assert rewrite is None or 0 <= rewrite.start <= rewrite.end <= len(text)
            assert sorted(rank_candidates(text, offset, offset, ["", "((", "é😀"], language)) == [0, 1, 2]
        assert isinstance(parses_cleanly(text, language), bool)
    assert language_for_path(None, 3) is None  # type: ignore[arg-type]


# --- offsets in characters, not bytes ------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "source", "span", "shape"),
    [
        ("python", "s = 'é😀'\n«def f(x):\n    return █x»\n", "function_definition", S),
        ("javascript", "const s = '😀é';\n«function f() {\n  return █1;\n}»\n", "function_declaration", S),
        ("rust", "// ünïcødé 🦀\n«fn f() {\n    █\n}»\n", "function_item", M),
        ("lua", "-- ü😀\n«function f()\n  █\nend»\n", "function_declaration", M),
    ],
)
def test_non_ascii_text_keeps_character_offsets(language, source, span, shape):
    text, start, _, expected = expected_rewrite(source)
    infill = pick_infill(text, start, language)
    assert (infill.start, infill.end, infill.shape) == (start, start, shape)
    assert pick_rewrite(text, start, None, language) == RewriteRegion(*expected, span)


def test_ranking_with_non_ascii_before_the_span():
    text, offset = parse_marked("s = 'é😀é😀'\ndef f(x):\n    return █\n")
    assert rank_candidates(text, offset, offset, ["x +", "'ü' + x"], "python") == [1, 0]


@pytest.mark.parametrize("text", ["", "abc", "é", "a😀b", "€uro 🦀 ü", "x\ud800y"])
def test_char_and_byte_offsets_round_trip(text):
    data = grammars.encode(text)
    for offset in range(len(text) + 1):
        byte = char_to_byte(text, offset)
        assert byte == len(grammars.encode(text[:offset]))
        assert byte_to_char(data, byte) == offset
        assert Source.of(text).byte(offset) == byte and Source.of(text).char(byte) == offset


def test_byte_offsets_inside_a_character_fall_back_to_its_start():
    data = "a😀b".encode()
    assert [byte_to_char(data, b) for b in range(len(data) + 1)] == [0, 1, 1, 1, 1, 2, 3]
    assert char_to_byte("a😀b", 99) == len(data) and byte_to_char(data, -5) == 0


# --- languages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "language_id", "language"),
    [
        ("file:///work/example.py", None, "python"),
        ("/tmp/stubs/x.pyi", None, "python"),
        ("file:///a/b/App.JSX", None, "javascript"),
        ("lib/index.mjs", None, "javascript"),
        ("src/app.ts", None, "typescript"),
        ("src/View.tsx", None, "tsx"),
        ("C:\\code\\main.go", None, "go"),
        ("file:///c%3A/code/lib.rs", None, "rust"),
        ("init.lua", None, "lua"),
        ("file:///x/readme.md", None, None),
        ("Makefile", None, None),
        (".py", None, None),
        ("", None, None),
        ("untitled:Untitled-1", "python", "python"),
        ("file:///x/a.txt", "javascriptreact", "javascript"),
        ("file:///x/a.txt", "typescriptreact", "tsx"),
        ("file:///x/a.txt", "typescript", "typescript"),
        ("file:///x/a.txt", "go", "go"),
        ("file:///x/a.txt", "rust", "rust"),
        ("file:///x/a.txt", "lua", "lua"),
        ("file:///x/a.py", "plaintext", "python"),
        ("file:///x/a.md", "markdown", None),
        ("file:///x/a.go?query=1#frag", None, "go"),
    ],
)
def test_language_for_path(path, language_id, language):
    assert language_for_path(path, language_id) == language


@pytest.mark.parametrize("language", [*grammars.GRAMMARS])
def test_every_grammar_loads(language):
    assert grammars.parser(language) is not None


def test_lineage_is_the_chain_of_parents_from_a_node_to_the_root():
    from lsp_server.regions import lineage

    source = Source.of("def f(x):\n    return [x + 1, (x * 2)]\n")
    root = parse(source, "python").root_node
    leaf = root.descendant_for_byte_range(source.byte(33), source.byte(33))  # the 2 in (x * 2)
    chain = lineage(root, leaf)
    assert chain[0] == leaf and chain[-1] == root
    for child, parent in itertools.pairwise(chain):
        assert child.parent == parent  # what the chain saves calling, one step at a time
    assert lineage(root, root) == [root]


def test_a_line_nested_thousands_deep_still_gets_a_region():
    # `a + a + ... + a` nests one binary operator per `+`: tens of thousands of ancestors.
    text = "x = " + "a + " * 30000 + "a\n"
    middle = len(text) // 2
    assert pick_infill(text, middle, "python").shape == "single-line"
    region = pick_rewrite(text, middle, None, "python")
    assert region is not None and region.start <= middle <= region.end
