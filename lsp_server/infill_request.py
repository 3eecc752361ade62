"""`textDocument/inlineCompletion`: infill at the cursor, previewed step by step.

Picks the region with tree-sitter, runs the denoiser through the scheduler,
sends an `unmask/preview` snapshot per step, and answers the final block as
a standard inline completion item.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from lsprotocol import types

from diffusion.engine import Candidate, InfillAsk, Segment
from diffusion.length import candidate_lengths
from lsp_server.documents import DocumentError, check_text
from lsp_server.line_endings import candidate_for_document, for_model, line_ending
from lsp_server.positions import Point
from lsp_server.protocol import ParamsError, lsp_range
from lsp_server.regions import InfillRegion, pick_infill
from lsp_server.scheduler import Batchable
from lsp_server.streaming import stream_previews

if TYPE_CHECKING:
    from lsp_server.server import Session


def clip_to_line(candidate: Candidate) -> Candidate:
    """Keep a single-line infill on its line: everything from the first newline on is dropped."""
    kept: list[Segment] = []
    for segment in candidate.segments:
        if segment.resolved and "\n" in segment.text:
            head = segment.text.split("\n", 1)[0]
            if head:
                kept.append(replace(segment, text=head))
            break
        kept.append(segment)
    return replace(candidate, segments=tuple(kept))


def batch_limit(engine, asked: int | None) -> int:
    """How many infill requests may share forward passes: `asked` (serve --batch), else 8 on a
    GPU and 1 on a CPU. A CPU step costs in proportion to its rows times their length: a batch
    there serves no request sooner and makes each wait for the longest. On this project's 2-core
    CPU (`python tests/tools/batch_vs_serial.py --repeats 3`), a short and a long request
    batched were both done after 3.0-3.3 s; one after the other, the short one after 0.4-0.5 s
    and the long one at 1.9-2.3 s."""
    if asked is not None:
        return asked
    return 8 if engine.device.type == "cuda" else 1


def infill_batch(
    engine, prefix: str, suffix: str, lengths: tuple[int, ...], limit: int | None = None
) -> Batchable | None:
    """Infills on the same model and settings share forward passes, whatever their documents."""
    many = getattr(engine, "infill_many", None)  # DiffusionGemma's engine runs one at a time
    most = batch_limit(engine, limit)
    if many is None or most <= 1:
        return None
    return Batchable(
        key=("infill", id(engine.checkpoint), engine.settings),
        part=InfillAsk(prefix, suffix, lengths),
        run=many,
        is_last=lambda snapshot: snapshot.final,
        limit=most,
    )


def shape(candidate: Candidate, region: InfillRegion) -> Candidate:
    return clip_to_line(candidate) if region.shape == "single-line" else candidate


def led_by(candidate: Candidate, lead: str) -> Candidate:
    """`candidate` with `lead` (text already there for the client) as its first, resolved run."""
    if not lead:
        return candidate
    return replace(candidate, segments=(Segment(lead, True, 0), *candidate.segments))


@dataclass(frozen=True)
class Selected:
    """The client's completion-menu item: the answer must extend `text` and replace `range`."""

    start: Point
    end: Point
    text: str


async def run(
    session: Session, uri: str, line: int, character: int, selected: Selected | None = None
) -> types.InlineCompletionList:
    document = session.snapshot(uri)
    if selected is None:
        text, offset, lead = document.text, document.offset(line, character), ""
    else:
        # Infill as if the menu's item were accepted: the document with `text` in its range.
        start = document.offset(selected.start.line, selected.start.character)
        end = document.offset(selected.end.line, selected.end.character)
        if end < start:
            raise ParamsError("selectedCompletionInfo.range ends before it starts")
        text = document.text[:start] + selected.text + document.text[end:]
        offset, lead = start + len(selected.text), selected.text
        try:  # the item's text is the client's too: the document's own checks hold for it
            check_text(text, session.settings.max_document_bytes, uri)
        except DocumentError as error:
            raise ParamsError(f"selectedCompletionInfo.text: {error}") from None
    # Off the event loop: parsing a large document takes a while, and other connections wait.
    region = await asyncio.to_thread(pick_infill, text, offset, document.language)
    region = region or InfillRegion(offset, offset, "single-line", "")
    settings = session.settings
    single = region.shape == "single-line"
    lengths = candidate_lengths(settings.single_line_tokens if single else settings.multi_line_tokens, single)
    engine = await session.shared.host.wait(settings.load_wait_seconds)
    ending = line_ending(text)
    prefix, suffix = for_model(text[: region.start]), for_model(text[region.end :])
    if selected is None:
        range_ = lsp_range(document.point(region.start), document.point(region.end))
    else:  # the item replaces the menu item's range (LSP: "must use the same range")
        range_ = lsp_range(
            (selected.start.line, selected.start.character), (selected.end.line, selected.end.character)
        )

    def shown(candidate: Candidate) -> Candidate:
        return led_by(candidate_for_document(shape(candidate, region), ending), lead)

    last = await stream_previews(
        session,
        uri,
        document,
        range_,
        "infill",
        lambda: engine.infill(prefix, suffix, lengths),
        lambda snapshot: shown(snapshot.previewed),
        infill_batch(engine, prefix, suffix, lengths, session.shared.batch_limit),
    )
    assert last is not None and last.final
    answer = shown(last.best).text
    if answer == lead:  # nothing beyond what the client shows already
        return types.InlineCompletionList(items=[])
    item = types.InlineCompletionItem(
        insert_text=answer,
        range=types.Range(
            types.Position(range_["start"]["line"], range_["start"]["character"]),
            types.Position(range_["end"]["line"], range_["end"]["character"]),
        ),
    )
    return types.InlineCompletionList(items=[item])
