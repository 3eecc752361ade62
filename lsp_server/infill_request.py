"""`textDocument/inlineCompletion`: infill at the cursor, previewed step by step.

Picks the region with tree-sitter, runs the denoiser through the scheduler,
sends an `unmask/preview` snapshot per step, and answers the final block as
a standard inline completion item.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from lsprotocol import types

from diffusion.engine import Candidate, InfillAsk, Segment
from diffusion.length import candidate_lengths
from lsp_server.line_endings import candidate_for_document, for_model, line_ending
from lsp_server.protocol import lsp_range
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


def infill_batch(engine, prefix: str, suffix: str, lengths: tuple[int, ...]) -> Batchable | None:
    """Infills on the same model and settings share forward passes, whatever their documents."""
    many = getattr(engine, "infill_many", None)  # DiffusionGemma's engine runs one at a time
    if many is None:
        return None
    return Batchable(
        key=("infill", id(engine.checkpoint), engine.settings),
        part=InfillAsk(prefix, suffix, lengths),
        run=many,
        is_last=lambda snapshot: snapshot.final,
    )


def shape(candidate: Candidate, region: InfillRegion) -> Candidate:
    return clip_to_line(candidate) if region.shape == "single-line" else candidate


async def run(session: Session, uri: str, line: int, character: int) -> types.InlineCompletionList:
    document = session.snapshot(uri)
    offset = document.offset(line, character)
    region = pick_infill(document.text, offset, document.language) or InfillRegion(
        offset, offset, "single-line", ""
    )
    settings = session.settings
    single = region.shape == "single-line"
    lengths = candidate_lengths(settings.single_line_tokens if single else settings.multi_line_tokens, single)
    engine = await session.shared.host.wait(settings.load_wait_seconds)
    ending = line_ending(document.text)
    prefix, suffix = for_model(document.text[: region.start]), for_model(document.text[region.end :])
    start, end = document.point(region.start), document.point(region.end)
    range_ = lsp_range(start, end)
    last = await stream_previews(
        session,
        uri,
        document,
        range_,
        "infill",
        lambda: engine.infill(prefix, suffix, lengths),
        lambda snapshot: candidate_for_document(shape(snapshot.previewed, region), ending),
        infill_batch(engine, prefix, suffix, lengths),
    )
    assert last is not None and last.final
    text = candidate_for_document(shape(last.best, region), ending).text
    if not text:
        return types.InlineCompletionList(items=[])
    item = types.InlineCompletionItem(
        insert_text=text,
        range=types.Range(types.Position(*start), types.Position(*end)),
    )
    return types.InlineCompletionList(items=[item])
