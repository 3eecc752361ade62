"""The open documents of one connection, and immutable snapshots of them.

The store applies `didOpen`/`didChange`/`didClose` itself, with the line
breaks and position rules of `positions` (LSP's: `\n`, `\r\n`, `\r` only),
so that its copy is exactly the client's; pygls's own copy splits lines at
form feeds and other Unicode breaks and would drift. Each value it holds is
immutable: a change replaces the document. A request reads one
`DocumentSnapshot` and works on that alone. Unknown documents, huge ones, text
that cannot be code and a copy a bad change left out of sync are refused here
with a message the user can act on.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from lsp_server.positions import Point, PositionError, line_starts, offset_at, point_at
from lsp_server.regions import language_for_path


class DocumentError(ValueError):
    """A document that cannot be served, with the reason."""


# (opened, version): which didOpen a copy descends from, and its version. Versions alone
# are not enough: a client may close a document and open it again at version 1.
Stamp = tuple[int, int]


@dataclass(frozen=True)
class Change:
    """One content change: `span` None replaces the whole text."""

    span: tuple[Point, Point] | None
    text: str


@dataclass(frozen=True)
class OpenDocument:
    text: str
    version: int
    language_id: str | None
    opened: int
    out_of_sync: str | None = None  # why the copy cannot be trusted until the client resends it

    @property
    def stamp(self) -> Stamp:
        return (self.opened, self.version)


def apply_change(text: str, change: Change, encoding: str) -> str:
    """`text` with `change` applied; PositionError if its range lies outside the text."""
    if change.span is None:
        return change.text
    start_point, end_point = change.span
    starts = line_starts(text)

    def offset(point: Point) -> int:
        # The line just past the last stands for the end of the text: clients address an
        # append to a document without a final newline so (as pygls also accepts).
        if point.line == len(starts) and point.character >= 0:
            return len(text)
        return offset_at(text, point, encoding, starts)

    start, end = offset(start_point), offset(end_point)
    if end < start:
        raise PositionError(
            f"the range {start_point.line}:{start_point.character}-{end_point.line}:{end_point.character} "
            "ends before it starts"
        )
    return text[:start] + change.text + text[end:]


class DocumentStore:
    """uri -> the document as the client last sent it. Mutated only on the event loop."""

    def __init__(self) -> None:
        self._documents: dict[str, OpenDocument] = {}
        self._opened = itertools.count(1)
        self._reads = itertools.count(1)

    def open(self, uri: str, text: str, version: int, language_id: str | None) -> None:
        self._documents[uri] = OpenDocument(text, version, language_id, next(self._opened))

    def change(self, uri: str, version: int, changes: Sequence[Change], encoding: str) -> str | None:
        """Apply `changes` in order; a message when they could not be applied (the copy is then
        marked out of sync and refused until the client sends the whole text)."""
        document = self._documents.get(uri)
        if document is None:
            return f"unmask: a change for {uri}, which is not open; ignored"
        text, problem = document.text, document.out_of_sync
        for change in changes:
            if change.span is None:
                text, problem = change.text, None
            elif problem is None:
                try:
                    text = apply_change(text, change, encoding)
                except PositionError as error:
                    problem = f"a change at version {version} fell outside the document ({error})"
        self._documents[uri] = replace(document, text=text, version=version, out_of_sync=problem)
        return None if problem is None or problem == document.out_of_sync else f"unmask: {uri}: {problem}"

    def close(self, uri: str) -> None:
        self._documents.pop(uri, None)

    def stamp(self, uri: str) -> Stamp | None:
        document = self._documents.get(uri)
        return None if document is None else document.stamp

    def snapshot(self, uri: str, encoding: str, max_bytes: int) -> DocumentSnapshot:
        """The document as the client last sent it, or DocumentError."""
        document = self._documents.get(uri)
        if document is None:
            raise DocumentError(
                f"unknown document {uri}: open it (textDocument/didOpen) before asking for edits"
            )
        if document.out_of_sync is not None:
            raise DocumentError(
                f"{uri} is out of sync with the editor: {document.out_of_sync}; "
                "close and reopen it (or send its full text)"
            )
        check_text(document.text, max_bytes, uri)
        return DocumentSnapshot(
            uri=uri,
            version=document.version,
            text=document.text,
            language=language_for_path(uri, document.language_id),
            encoding=encoding,
            stamp=document.stamp,
            read=next(self._reads),
            starts=line_starts(document.text),
        )


@dataclass(frozen=True)
class DocumentSnapshot:
    uri: str
    version: int
    text: str
    language: str | None
    encoding: str
    stamp: Stamp = (0, 0)
    read: int = 0  # the order requests read their documents in: the order they arrived
    starts: list[int] = field(repr=False, compare=False, default_factory=list)

    def offset(self, line: int, character: int) -> int:
        return offset_at(self.text, Point(line, character), self.encoding, self.starts)

    def point(self, offset: int) -> tuple[int, int]:
        p = point_at(self.text, offset, self.encoding, self.starts)
        return p.line, p.character


def check_text(text: str, max_bytes: int, uri: str) -> None:
    size = len(text)  # characters; bytes are at least this many
    if size > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise DocumentError(
            f"{uri} is {size / 1e6:.1f} MB; unmask serves documents up to {max_bytes / 1e6:.1f} MB "
            "(initializationOptions.maxDocumentBytes)"
        )
    if "\0" in text:
        raise DocumentError(f"{uri} looks binary (it contains NUL characters); nothing to complete")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise DocumentError(f"{uri} is not valid UTF-8 text ({error.reason} at {error.start})") from None
