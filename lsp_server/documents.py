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

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from lsp_server.positions import LINE_BREAK, Point, PositionError, line_starts, offset_at, point_at
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
class Lines:
    """A text and where its lines start. Never modified: a change makes a new one, and its
    line starts are rescanned only around the edit (a keystroke in a 2 MB file would
    otherwise rescan all of it)."""

    text: str
    starts: list[int]

    @classmethod
    def of(cls, text: str) -> Lines:
        return cls(text, line_starts(text))

    def offset(self, point: Point, encoding: str) -> int:
        # The line just past the last stands for the end of the text: clients address an
        # append to a document without a final newline so (as pygls also accepts).
        if point.line == len(self.starts) and point.character >= 0:
            return len(self.text)
        return offset_at(self.text, point, encoding, self.starts)

    def apply(self, change: Change, encoding: str) -> Lines:
        """These lines with `change` applied; PositionError if its range lies outside them."""
        if change.span is None:
            return Lines.of(change.text)
        start_point, end_point = change.span
        start, end = self.offset(start_point, encoding), self.offset(end_point, encoding)
        if end < start:
            raise PositionError(
                f"the range {start_point.line}:{start_point.character}-"
                f"{end_point.line}:{end_point.character} ends before it starts"
            )
        text = self.text[:start] + change.text + self.text[end:]
        return Lines(text, self._starts_after(text, start, end, len(change.text) - (end - start)))

    def _starts_after(self, text: str, start: int, end: int, delta: int) -> list[int]:
        """Line starts of `text`, this text with [start, end) replaced (length change `delta`).

        Rescanned from the start of the line before the edit's (a `\r` ending it may join a
        `\n` the edit puts first) to the end of the line the edit ends on (its break lies at
        or after the edit's end, so a `\r` the edit ends with joins it there).
        """
        starts = self.starts
        first = max(0, bisect.bisect_right(starts, start) - 2)
        last = bisect.bisect_right(starts, end)
        low = starts[first]
        high = starts[last] if last < len(starts) else len(self.text)
        middle = [m.end() for m in LINE_BREAK.finditer(text, low, high + delta)]
        return [*starts[: first + 1], *middle, *(s + delta for s in starts[last + 1 :])]


def apply_change(text: str, change: Change, encoding: str) -> str:
    """`text` with `change` applied; PositionError if its range lies outside the text."""
    return Lines.of(text).apply(change, encoding).text


@dataclass(frozen=True)
class OpenDocument:
    lines: Lines
    version: int
    language_id: str | None
    opened: int
    out_of_sync: str | None = None  # why the copy cannot be trusted until the client resends it

    @property
    def stamp(self) -> Stamp:
        return (self.opened, self.version)


class DocumentStore:
    """uri -> the document as the client last sent it. Mutated only on the event loop."""

    def __init__(self) -> None:
        self._documents: dict[str, OpenDocument] = {}
        self._opened = itertools.count(1)
        self._reads = itertools.count(1)
        # uri -> (stamp, size limit, what check_text said): a document is checked once per version.
        self._checked: dict[str, tuple[Stamp, int, str | None]] = {}

    def open(self, uri: str, text: str, version: int, language_id: str | None) -> None:
        self._documents[uri] = OpenDocument(Lines.of(text), version, language_id, next(self._opened))

    def change(self, uri: str, version: int, changes: Sequence[Change], encoding: str) -> str | None:
        """Apply `changes` in order; a message when they could not be applied (the copy is then
        marked out of sync and refused until the client sends the whole text)."""
        document = self._documents.get(uri)
        if document is None:
            return f"unmask: a change for {uri}, which is not open; ignored"
        lines, problem = document.lines, document.out_of_sync
        for change in changes:
            if change.span is None:
                lines, problem = Lines.of(change.text), None
            elif problem is None:
                try:
                    lines = lines.apply(change, encoding)
                except PositionError as error:
                    problem = f"a change at version {version} fell outside the document ({error})"
        self._documents[uri] = replace(document, lines=lines, version=version, out_of_sync=problem)
        return None if problem is None or problem == document.out_of_sync else f"unmask: {uri}: {problem}"

    def lose_sync(self, uri: str, reason: str) -> None:
        """Mark an open document's copy untrustworthy (a change was lost) until the client resends it."""
        document = self._documents.get(uri)
        if document is not None and document.out_of_sync is None:
            self._documents[uri] = replace(document, out_of_sync=reason)

    def lose_all_sync(self, reason: str) -> None:
        """`lose_sync` for every open document (a message that may have changed any was lost)."""
        for uri in list(self._documents):
            self.lose_sync(uri, reason)

    def close(self, uri: str) -> None:
        self._documents.pop(uri, None)
        self._checked.pop(uri, None)

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
        self._check(uri, document, max_bytes)
        return DocumentSnapshot(
            uri=uri,
            version=document.version,
            text=document.lines.text,
            language=language_for_path(uri, document.language_id),
            encoding=encoding,
            stamp=document.stamp,
            read=next(self._reads),
            starts=document.lines.starts,
        )

    def _check(self, uri: str, document: OpenDocument, max_bytes: int) -> None:
        stamp, limit, problem = self._checked.get(uri, (None, None, None))
        if (stamp, limit) != (document.stamp, max_bytes):
            try:
                check_text(document.lines.text, max_bytes, uri)
                problem = None
            except DocumentError as error:
                problem = str(error)
            self._checked[uri] = (document.stamp, max_bytes, problem)
        if problem is not None:
            raise DocumentError(problem)


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
