"""Immutable snapshots of open documents, checked before any work starts.

pygls keeps the live documents (incremental sync mutates them on the event
loop); a request reads one `DocumentSnapshot` and works on that alone.
Unknown documents, huge ones and text that cannot be code are refused here
with a message the user can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lsp_server.positions import Point, line_starts, offset_at, point_at
from lsp_server.regions import language_for_path


class DocumentError(ValueError):
    """A document that cannot be served, with the reason."""


@dataclass(frozen=True)
class DocumentSnapshot:
    uri: str
    version: int
    text: str
    language: str | None
    encoding: str
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


def snapshot_of(workspace, uri: str, encoding: str, max_bytes: int) -> DocumentSnapshot:
    """The document as the client last sent it, or DocumentError."""
    document = workspace.text_documents.get(uri)
    if document is None:
        raise DocumentError(f"unknown document {uri}: open it (textDocument/didOpen) before asking for edits")
    text = document.source
    check_text(text, max_bytes, uri)
    return DocumentSnapshot(
        uri=uri,
        version=document.version if document.version is not None else 0,
        text=text,
        language=language_for_path(uri, document.language_id),
        encoding=encoding,
        starts=line_starts(text),
    )


def current_version(workspace, uri: str) -> int | None:
    document = workspace.text_documents.get(uri)
    return None if document is None else document.version
