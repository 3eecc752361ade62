"""Tree-sitter grammars for the languages unmask understands, and the offsets bookkeeping around them.

Each grammar comes from its own wheel (tree-sitter-python, ...); a wheel that
is missing or will not load makes that language behave as unknown instead of
failing the request. Tree-sitter counts in UTF-8 bytes while the server counts
in characters of the Python `str`, so `Source` converts between the two.
"""

from __future__ import annotations

import functools
import importlib
import re
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from tree_sitter import Language, Node, Parser, Tree

# language name -> (wheel module, function returning the grammar pointer)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "lua": ("tree_sitter_lua", "language"),
}

# LSP languageIds, plus the filetype names some clients (Vim, Helix) send instead.
LANGUAGE_IDS: dict[str, str] = {
    "python": "python",
    "py": "python",
    "javascript": "javascript",
    "javascriptreact": "javascript",  # the JavaScript grammar parses JSX itself
    "js": "javascript",
    "jsx": "javascript",
    "javascript.jsx": "javascript",
    "typescript": "typescript",
    "ts": "typescript",
    "typescriptreact": "tsx",
    "tsx": "tsx",
    "typescript.tsx": "tsx",
    "go": "go",
    "golang": "go",
    "rust": "rust",
    "rs": "rust",
    "lua": "lua",
}

EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".lua": "lua",
}


def language_for_path(path_or_uri: str, language_id: str | None = None) -> str | None:
    """'python', 'javascript', 'typescript', 'tsx', 'go', 'rust', 'lua' or None.

    The client's languageId wins when it names a language we know; an id we do
    not know (say "plaintext") falls back to the file extension.
    """
    if isinstance(language_id, str) and language_id:
        known = LANGUAGE_IDS.get(language_id.strip().lower())
        if known:
            return known
    if not isinstance(path_or_uri, str) or not path_or_uri:
        return None
    path = path_or_uri
    if "://" in path or path.startswith(("file:", "untitled:")):
        try:
            path = unquote(urlsplit(path).path)
        except ValueError:
            return None
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    dot = name.rfind(".")
    return EXTENSIONS.get(name[dot:].lower()) if dot > 0 else None


@functools.cache
def _grammar(language: str) -> Language | None:
    module_name, function = GRAMMARS[language]
    try:
        module = importlib.import_module(module_name)
        return Language(getattr(module, function)())
    except Exception:  # a missing wheel, or one built for another tree-sitter ABI
        return None


def grammar(language: str | None) -> Language | None:
    return _grammar(language) if isinstance(language, str) and language in GRAMMARS else None


# A Parser must not parse for two threads at once and callers may sit on
# worker threads, so each thread keeps its own, one per language.
_local = threading.local()


def parser(language: str | None) -> Parser | None:
    lang = grammar(language)
    if lang is None:
        return None
    cache: dict[Language, Parser] | None = getattr(_local, "parsers", None)
    if cache is None:
        cache = _local.parsers = {}
    found = cache.get(lang)
    if found is None:
        found = cache[lang] = Parser(lang)
    return found


def encode(text: str) -> bytes:
    # surrogatepass: a lone surrogate from a UTF-16 client must not crash a request.
    return text.encode("utf-8", "surrogatepass")


def char_to_byte(text: str, offset: int) -> int:
    """UTF-8 byte offset of the character offset `offset` (clamped to the text)."""
    offset = max(0, min(offset, len(text)))
    return len(encode(text[:offset]))


def byte_to_char(data: bytes, byte: int) -> int:
    """Character offset of the UTF-8 byte offset `byte`; inside a character it means that character."""
    byte = max(0, min(byte, len(data)))
    # Tree-sitter may cut inside the bytes of an invalid sequence; back off to a boundary.
    for cut in range(byte, max(-1, byte - 4), -1):
        try:
            return len(data[:cut].decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            continue
    return len(data[:byte].decode("utf-8", "replace"))


LONE_CR = re.compile(rb"\r(?!\n)")


@dataclass(frozen=True)
class Source:
    """A text with its UTF-8 bytes; ASCII text (the usual case) skips the conversions."""

    text: str
    data: bytes = field(repr=False)

    @classmethod
    def of(cls, text: str) -> Source:
        return cls(text, encode(text))

    @property
    def ascii(self) -> bool:
        return len(self.data) == len(self.text)

    def byte(self, offset: int) -> int:
        return max(0, min(offset, len(self.text))) if self.ascii else char_to_byte(self.text, offset)

    def char(self, byte: int) -> int:
        return max(0, min(byte, len(self.data))) if self.ascii else byte_to_char(self.data, byte)

    @functools.cached_property
    def parsed(self) -> bytes:
        """What the parser reads: the bytes with each lone CR (an old Mac line end; LSP allows it) as LF.

        Same length, so every offset holds; the grammars (Python's, Go's,
        JavaScript's...) end a line only at LF and misparse without it.
        """
        return LONE_CR.sub(b"\n", self.data) if b"\r" in self.data else self.data

    def point(self, byte: int) -> tuple[int, int]:
        """Tree-sitter's (row, byte column) of a byte offset."""
        data = self.parsed
        return data.count(b"\n", 0, byte), byte - (data.rfind(b"\n", 0, byte) + 1)


def parse(source: Source, language: str | None) -> Tree | None:
    found = parser(language)
    return found.parse(source.parsed) if found is not None else None


def reparse(
    tree: Tree, old: Source, start: int, end: int, new_text: str, language: str
) -> tuple[Tree, Source]:
    """`tree` for `old` with old.text[start:end] replaced by `new_text`, parsed incrementally.

    Ranking rewrite candidates parses the whole document once per candidate;
    reusing the unchanged parts keeps that cheap on files of thousands of lines.
    """
    new = Source.of(old.text[:start] + new_text + old.text[end:])
    start_byte, old_end_byte = old.byte(start), old.byte(end)
    new_end_byte = start_byte + len(encode(new_text))
    edited = tree.copy()
    edited.edit(
        start_byte=start_byte,
        old_end_byte=old_end_byte,
        new_end_byte=new_end_byte,
        start_point=old.point(start_byte),
        old_end_point=old.point(old_end_byte),
        new_end_point=new.point(new_end_byte),
    )
    return parser(language).parse(new.parsed, edited), new  # type: ignore[union-attr]


def error_count(node: Node) -> int:
    """ERROR and MISSING nodes under `node`; an ERROR counts once, whatever it swallowed."""
    if not node.has_error:
        return 0
    count = 0
    stack = [node]
    while stack:
        current = stack.pop()
        if current.is_error or current.is_missing:
            count += 1
        else:
            stack.extend(child for child in current.children if child.has_error)
    return count
