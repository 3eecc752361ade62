"""Which span of a document the diffusion model should (re)generate, and in which shape.

Infill: at the cursor, decide from the syntax tree whether the model finishes
the current line ("single-line") or writes a whole block ("multi-line"), in
the spirit of llm-ls's `should_complete`. Rewrite: the statement or block
around a cursor or selection. Ranking: rewrite candidates whose splice leaves
the document with fewer syntax errors come first.

Pure functions over plain character offsets into the Python `str`; no LSP
types. Broken code is the normal input of an editor, so nothing here raises
on it: a request with nothing sensible to do gets None.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import Literal

from tree_sitter import Node

from lsp_server.grammars import Source, encode, error_count, language_for_path, parse, reparse

__all__ = [
    "InfillRegion",
    "RewriteRegion",
    "Shape",
    "language_for_path",
    "parses_cleanly",
    "pick_infill",
    "pick_rewrite",
    "rank_candidates",
]

Shape = Literal["single-line", "multi-line"]
SINGLE: Shape = "single-line"
MULTI: Shape = "multi-line"


@dataclass(frozen=True)
class InfillRegion:
    start: int  # where generated text is inserted: the cursor
    end: int  # end of the replaced text; == start, infill only inserts
    shape: Shape
    indent: str  # the cursor line's leading whitespace


@dataclass(frozen=True)
class RewriteRegion:
    start: int  # start of the first node (after its line's indentation)
    end: int  # end of the last node
    kind: str  # tree-sitter node type; "paragraph" or "lines" without a grammar


# Nodes whose children are statements or members: the roots and the bodies of
# definitions and compound statements, across the grammars we load.
BODY_TYPES = frozenset({
    "module", "program", "source_file", "chunk",
    "block", "statement_block", "class_body", "class_static_block", "switch_body", "switch_case",
    "switch_default", "enum_body", "interface_body", "declaration_list", "field_declaration_list",
    "enum_variant_list", "match_block", "statement_list", "expression_case", "default_case", "type_case",
    "communication_case", "async_block", "unsafe_block", "const_block", "try_block", "gen_block",
})  # fmt: skip

# Bracketed lists inside an expression: a blank line there wants one more item, not a block.
# _in_list adds Rust macros' `token_tree` and the parentheses of Python's `from x import (...)`.
EXPRESSION_CONTAINERS = frozenset({
    "argument_list", "arguments", "parameters", "formal_parameters", "parameter_list", "type_parameters",
    "type_arguments", "type_parameter_list", "parenthesized_expression", "array", "list", "tuple", "set",
    "dictionary", "object", "object_pattern", "array_pattern", "table_constructor", "literal_value",
    "field_initializer_list", "expression_list", "tuple_expression", "array_expression", "use_list",
    "import_spec_list", "named_imports",
})  # fmt: skip

# What a cursor rewrite regenerates: definitions and compound statements.
REWRITE_UNITS = frozenset({
    # python
    "function_definition", "class_definition", "if_statement", "for_statement", "while_statement",
    "try_statement", "with_statement", "match_statement",
    # javascript / typescript
    "function_declaration", "function_expression", "function", "arrow_function", "method_definition",
    "generator_function_declaration", "generator_function", "class_declaration", "class",
    "abstract_class_declaration", "for_in_statement", "do_statement", "switch_statement",
    "interface_declaration", "enum_declaration", "internal_module",
    # go
    "method_declaration", "func_literal", "expression_switch_statement", "type_switch_statement",
    "select_statement", "type_declaration",
    # rust
    "function_item", "impl_item", "trait_item", "struct_item", "enum_item", "union_item", "mod_item",
    "macro_definition", "if_expression", "for_expression", "while_expression", "loop_expression",
    "match_expression", "closure_expression",
    # lua (function_declaration/_definition, if/for/while/do above)
    "repeat_statement",
})  # fmt: skip

# Tokens that open a block even when error recovery left them in an ERROR node
# (`func f() {` at the end of a Go file has no block node yet).
OPENERS_IN_ERRORS = frozenset({"{", "then", "do", "else", "repeat"})

# A comment opening with one of these runs to the end of its line (Lua's `--[[` does not).
LINE_COMMENT = re.compile(rb"#|//|--(?!\[=*\[)")

# After the cursor, only these leave the rest of the line to the model.
CLOSERS = re.compile(r"[\s)\]};,]*")
LUA_CLOSERS = re.compile(r"(?:[\s)\]};,]|\bend\b|\buntil\b)*")
LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _valid_offset(text: object, offset: object) -> bool:
    return (
        isinstance(text, str)
        and isinstance(offset, int)
        and not isinstance(offset, bool)
        and 0 <= offset <= len(text)
    )


def _line_bounds(text: str, offset: int) -> tuple[int, int]:
    """Start and end (before its line break) of the line holding `offset`."""
    start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    ends = [i for i in (text.find("\n", offset), text.find("\r", offset)) if i >= 0]
    return start, min(ends, default=len(text))


def _leading_space(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


# --- infill --------------------------------------------------------------------------------------


def pick_infill(text: str, offset: int, language: str | None) -> InfillRegion | None:
    """Region for infill at the cursor `offset`; None when the offset is not in the text."""
    if not _valid_offset(text, offset):
        return None
    start, end = _line_bounds(text, offset)
    before, after = text[start:offset], text[offset:end]
    indent = _leading_space(text[start:end])
    source = Source.of(text)
    tree = parse(source, language)
    if tree is None:  # no grammar: a blank line gets a block, anything else the rest of its line
        shape = MULTI if not (before + after).strip() else SINGLE
    else:
        shape = _infill_shape(tree.root_node, source, offset, before, after, language)
    return InfillRegion(offset, offset, shape, indent)


def _infill_shape(
    root: Node, source: Source, offset: int, before: str, after: str, language: str | None
) -> Shape:
    cursor = source.byte(offset)
    here = root.descendant_for_byte_range(cursor, cursor)
    if here is None:
        return SINGLE
    around = lineage(root, here)
    if _inside_literal(around, cursor) or _ends_line_comment(root, source, cursor):
        return SINGLE  # finishing a string or a comment is a one-line job
    if not (LUA_CLOSERS if language == "lua" else CLOSERS).fullmatch(after):
        return SINGLE  # code follows on this line: the model only joins the two
    if not before.strip():
        # At the start of a line: a statement position unless inside a bracketed list.
        return SINGLE if _in_list(_named(around), cursor) else MULTI
    last = cursor - len(encode(before[len(before.rstrip()) :]))  # end of the last token
    token = root.descendant_for_byte_range(max(0, last - 1), last)
    return MULTI if token is not None and _opens_block(lineage(root, token)) else SINGLE


def lineage(root: Node, node: Node) -> list[Node]:
    """`node` and its ancestors up to `root`, innermost first, found in one descent.

    `Node.parent` is no pointer in tree-sitter: each call descends from the root again,
    so walking up k levels costs k times the depth. A 240 KB one-line expression nests
    60,000 deep: walking up from its leaves held the server for 44 s.
    """
    chain = [root]
    while chain[-1] != node:
        child = chain[-1].child_with_descendant(node)
        if child is None or child == chain[-1]:
            break  # not below root after all: what was found is the lineage there is
        chain.append(child)
    chain.reverse()
    return chain


def _is_body(node: Node) -> bool:
    # Named only: keywords are nodes too, and TypeScript has a `module` keyword.
    return node.is_named and node.type in BODY_TYPES


def _named(chain: list[Node]) -> Node:
    """The innermost named node of a lineage (the root if none is)."""
    return next((node for node in chain if node.is_named), chain[-1])


def _is_literal(kind: str) -> bool:
    return "string" in kind or "comment" in kind or kind in ("char_literal", "rune_literal", "regex")


def _inside_literal(chain: list[Node], cursor: int) -> bool:
    return any(_is_literal(node.type) and node.start_byte < cursor < node.end_byte for node in chain)


def _ends_line_comment(root: Node, source: Source, cursor: int) -> bool:
    """True when the cursor is at the end of a line comment: still in it, as the comment runs on."""
    data = source.data
    if cursor == 0 or data[cursor - 1] in b"\r\n":  # a comment that took its line break is behind us
        return False
    node = root.descendant_for_byte_range(cursor - 1, cursor)
    if node is None:
        return False
    for enclosing in lineage(root, node):  # Lua's `comment_content` sits in its `comment`
        if enclosing.end_byte != cursor:
            return False
        if enclosing.type.endswith("comment") and LINE_COMMENT.match(data, enclosing.start_byte):
            return True
    return False


def _in_list(node: Node, cursor: int) -> bool:
    """True when `node`, the innermost named node at a blank line's cursor, is a bracketed list there."""
    if node.type == "token_tree":  # a macro's arguments; `name! { ... }` more often holds items
        return node.child_count == 0 or node.children[0].type != "{"
    if node.type == "import_from_statement":  # `from x import (` a, b `)`
        opens = [child.end_byte for child in node.children if child.type == "("]
        closes = [child.start_byte for child in node.children if child.type == ")"]
        return bool(opens) and opens[0] <= cursor and all(cursor <= close for close in closes)
    return node.type in EXPRESSION_CONTAINERS


def _opens_block(chain: list[Node]) -> bool:
    """True when `chain[0]` (the last token before the cursor; its lineage follows) ends a block
    header or opens a block.

    `{` of a block; Python's `:` before its block; Lua's `then`/`do`/`)` whose
    empty body the grammar leaves out, so the next thing is `end` (or `until`).
    """
    if len(chain) < 2:
        return False
    token, parent = chain[0], chain[1]
    if _is_body(parent) and token.start_byte == parent.start_byte and not token.is_named:
        return True
    if parent.is_error and token.type in OPENERS_IN_ERRORS:
        return True
    for index, node in enumerate(chain[:-1]):
        # The token ends its parent too (`)` of Lua's parameters): ask again there,
        # but not past a body (its `end` closes it) nor into error recovery's guesses.
        if index > 0 and (_is_body(node) or node.is_error):
            return False
        sibling = _next_sibling(node, chain[index + 1])
        if sibling is not None:
            return _is_body(sibling) or (sibling.type in ("end", "until") and not sibling.is_named)
    return False


def _next_sibling(node: Node, parent: Node) -> Node | None:
    # Node.next_sibling skips zero-width nodes, and an empty Python block is one.
    siblings = parent.children
    for index, sibling in enumerate(siblings):
        if sibling == node:
            return siblings[index + 1] if index + 1 < len(siblings) else None
    return None


# --- rewrite -------------------------------------------------------------------------------------


def pick_rewrite(text: str, start: int, end: int | None, language: str | None) -> RewriteRegion | None:
    """The block to rewrite around a cursor (`end` None) or a selection; None when there is none.

    A selection grows to the statements it touches (one node, or a run of
    siblings in one body, then `kind` is the body's type). A cursor takes the
    innermost definition or compound statement spanning several lines, else
    the statement under it. Without a grammar: the selected lines, or the
    paragraph of non-blank lines around the cursor.
    """
    if not _valid_offset(text, start) or (end is not None and not _valid_offset(text, end)):
        return None
    if end is not None and end < start:
        start, end = end, start
    selection = _trim(text, start, end) if end is not None and end > start else None
    source = Source.of(text)
    tree = parse(source, language)
    if tree is None:
        return _lines(text, *selection) if selection else _paragraph(text, start)
    root = tree.root_node
    if selection:
        found = _selected(root, source.byte(selection[0]), source.byte(selection[1]))
    else:
        found = _around_cursor(root, source, start)
    if found is None:
        return None
    first, last, kind = found
    return RewriteRegion(source.char(first), source.char(last), kind)


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The selection without whitespace at its ends; None if nothing else is selected."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _is_statement(chain: list[Node], index: int) -> bool:
    """Whether chain[index] (in a lineage) is a statement: a child of the root or of a body."""
    if index + 1 >= len(chain):
        return False
    return index + 2 >= len(chain) or _is_body(chain[index + 1])


def _selected(root: Node, first: int, last: int) -> tuple[int, int, str] | None:
    found = root.descendant_for_byte_range(first, last)
    if found is None:
        return None
    chain = lineage(root, found)
    for index, node in enumerate(chain):
        is_root = index == len(chain) - 1
        if is_root or _is_body(node):
            if not is_root and first <= node.start_byte and node.end_byte <= last:
                return node.start_byte, node.end_byte, node.type
            touched = [c for c in node.named_children if c.end_byte > first and c.start_byte < last]
            if len(touched) == 1:
                return touched[0].start_byte, touched[0].end_byte, touched[0].type
            if touched:
                return touched[0].start_byte, touched[-1].end_byte, node.type
            return None if is_root else (node.start_byte, node.end_byte, node.type)
        if _is_statement(chain, index):
            return node.start_byte, node.end_byte, node.type
    return None


def _around_cursor(root: Node, source: Source, offset: int) -> tuple[int, int, str] | None:
    cursor = source.byte(offset)
    node = root.descendant_for_byte_range(cursor, cursor)
    deeper_than: int | None = None
    if node is None or node == root:
        # Between top-level nodes, e.g. on Python's trailing blank lines of a
        # body, which its block does not cover: go by the code before the
        # cursor, accepting only a unit the cursor line is indented under.
        text_before = source.data[:cursor].rstrip()
        if not text_before:
            return None
        node = root.descendant_for_byte_range(len(text_before) - 1, len(text_before))
        if len(text_before) < cursor:
            line_start, line_end = _line_bounds(source.text, offset)
            line = source.text[line_start:line_end]
            deeper_than = len(encode(_leading_space(line)))
    statement: Node | None = None
    data = source.data
    chain = lineage(root, node) if node is not None else []
    for index, node in enumerate(chain[:-1]):  # not the root
        # Not tree-sitter's rows and columns: they count only \n, and a lone \r ends a line too.
        first, last = node.start_byte, node.end_byte
        multi_line = data.find(b"\n", first, last) >= 0 or data.find(b"\r", first, last) >= 0
        column = first - (max(data.rfind(b"\n", 0, first), data.rfind(b"\r", 0, first)) + 1)
        indented_under = deeper_than is None or column < deeper_than
        if node.is_named and node.type in REWRITE_UNITS and multi_line and indented_under:
            return node.start_byte, node.end_byte, node.type
        if statement is None and deeper_than is None and _is_statement(chain, index):
            statement = node
    return (statement.start_byte, statement.end_byte, statement.type) if statement else None


def _line_spans(text: str) -> list[tuple[int, int]]:
    starts = [0, *(m.end() for m in LINE_BREAK.finditer(text))]
    ends = [m.start() for m in LINE_BREAK.finditer(text)] + [len(text)]
    return list(zip(starts, ends, strict=True))


def _lines(text: str, start: int, end: int) -> RewriteRegion:
    spans = [s for s in _line_spans(text) if s[1] >= start and s[0] <= end]
    first, last = spans[0], spans[-1]
    line = text[first[0] : first[1]]
    return RewriteRegion(first[0] + len(_leading_space(line)), last[1], "lines")


def _paragraph(text: str, offset: int) -> RewriteRegion | None:
    spans = _line_spans(text)
    filled = [bool(text[start:end].strip()) for start, end in spans]
    row = bisect_right([start for start, _ in spans], offset) - 1  # between \r and \n: that line
    if not filled[row]:
        return None
    top = bottom = row
    while top > 0 and filled[top - 1]:
        top -= 1
    while bottom + 1 < len(spans) and filled[bottom + 1]:
        bottom += 1
    return replace(_lines(text, spans[top][0], spans[bottom][1]), kind="paragraph")


# --- checking candidates -------------------------------------------------------------------------


def parses_cleanly(text: str, language: str | None) -> bool:
    """True when `text` parses without ERROR or MISSING nodes; True without a grammar."""
    if not isinstance(text, str):
        return False
    tree = parse(Source.of(text), language)
    return tree is None or not tree.root_node.has_error


def broken_characters(candidate: str, original: str) -> int:
    """U+FFFD in `candidate` beyond those of the text it replaces: bytes a byte-level model left
    without the rest of their character."""
    return max(0, candidate.count("\ufffd") - original.count("\ufffd"))


def rank_candidates(
    document_text: str, start: int, end: int, candidates: list[str], language: str | None
) -> list[int]:
    """Indices of `candidates` (replacements for document_text[start:end]): those with no broken
    character first, then fewest syntax errors.

    Counting errors in the whole spliced document, rather than asking "does it
    parse", keeps the ranking useful when the rest of the file is already
    broken: a candidate adding no error of its own ties with a clean one.
    Stable: equal counts keep the model's order, and so does a span that is
    not in the document or a language without a grammar.
    """
    order = list(range(len(candidates)))
    if len(order) < 2:
        return order
    if not (_valid_offset(document_text, start) and _valid_offset(document_text, end)):
        return order
    start, end = sorted((start, end))
    original = document_text[start:end]
    broken = [broken_characters(c, original) if isinstance(c, str) else 1 << 30 for c in candidates]
    source = Source.of(document_text)
    tree = parse(source, language)
    if tree is None:
        return sorted(order, key=broken.__getitem__)
    counts = []
    for candidate in candidates:
        if not isinstance(candidate, str):
            counts.append(float("inf"))
            continue
        spliced, _ = reparse(tree, source, start, end, candidate, language)  # type: ignore[arg-type]
        counts.append(error_count(spliced.root_node))
    return sorted(order, key=lambda i: (broken[i], counts[i]))
