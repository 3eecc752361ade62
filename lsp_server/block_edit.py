"""`unmask/blockEdit`: rewrite a whole block, or suggest edits where the model doubts the code.

rewrite: the enclosing block (tree-sitter) or the selection is regenerated
at a few span lengths in one batch; the alternatives that parse rank first.
suggest: every token of the block is scored by masked re-prediction, the
doubtful ones (and their neighbours) are masked again and re-denoised, and
the changed lines come back as separate edits.
"""

from __future__ import annotations

import asyncio
import difflib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from diffusion.engine import Candidate, Engine, InfillSnapshot
from lsp_server.line_endings import candidate_for_document, for_model, line_ending
from lsp_server.protocol import (
    REWRITE_COMMAND,
    SUGGEST_COMMAND,
    BlockEditRequest,
    Unservable,
    lsp_range,
)
from lsp_server.regions import pick_rewrite, rank_candidates
from lsp_server.streaming import stream_previews

if TYPE_CHECKING:
    from lsp_server.documents import DocumentSnapshot
    from lsp_server.server import Session

# A token whose masked re-prediction gives it under 5% is a doubt; at most a
# quarter of the block is remasked so that the code stays the user's.
DOUBT_PROBABILITY = 0.05
MAX_REMASK_FRACTION = 0.25


@dataclass(frozen=True)
class Hunk:
    start: int  # offsets into the document
    end: int
    text: str


def line_hunks(old: str, new: str, base: int) -> list[Hunk]:
    """Line-level differences of `new` against `old`, as replacements at document offsets."""
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    starts = [0]
    for line in old_lines:
        starts.append(starts[-1] + len(line))
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    return [
        Hunk(base + starts[i1], base + starts[i2], "".join(new_lines[j1:j2]))
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def doubtful(scores: list[float]) -> list[bool]:
    """Positions to remask: low-probability tokens and their neighbours, capped."""
    threshold = math.log(DOUBT_PROBABILITY)
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    cap = max(1, int(len(scores) * MAX_REMASK_FRACTION))
    picked = {i for i in order[:cap] if scores[i] < threshold}
    grown = {j for i in picked for j in (i - 1, i, i + 1) if 0 <= j < len(scores)}
    return [i in grown for i in range(len(scores))]


def rewrite_lengths(tokens: int, limit: int, count: int) -> list[int]:
    lengths: list[int] = []
    for factor in (1.0, 1.25, 0.8, 1.5, 0.6, 2.0, 0.5, 1.1):
        k = max(1, min(limit, round(tokens * factor) + (1 if factor > 1 else 0)))
        if k not in lengths:
            lengths.append(k)
        if len(lengths) == count:
            break
    return lengths


def suggest_work(engine: Engine, prefix: str, block: str, suffix: str) -> Iterator[InfillSnapshot]:
    """Runs on the worker: score, then re-denoise the doubtful positions (nothing if none)."""
    remask = doubtful(engine.score_block(prefix, block, suffix))
    if any(remask):
        yield from engine.repair(prefix, block, suffix, remask)


ACTION_KIND = types.CodeActionKind.RefactorRewrite.value


def offers(only: Sequence[str] | None, kind: str = ACTION_KIND) -> bool:
    """Whether a code action of `kind` is among those asked for (`context.only`, kinds nest by dots)."""
    if only is None:
        return True
    asked_for = [str(getattr(asked, "value", asked)) for asked in only]
    # "" is LSP's Empty kind, which every kind falls under.
    return any(asked == "" or kind == asked or kind.startswith(f"{asked}.") for asked in asked_for)


def code_actions(
    uri: str, range_: types.Range, literals: bool = True
) -> list[types.CodeAction | types.Command]:
    """The rewrite and suggest actions for a range: CodeAction literals, or bare commands for a
    client that does not declare `codeActionLiteralSupport`."""
    argument = {
        "textDocument": {"uri": uri},
        "range": {
            "start": {"line": range_.start.line, "character": range_.start.character},
            "end": {"line": range_.end.line, "character": range_.end.character},
        },
    }
    commands = [
        types.Command(title=title, command=command, arguments=[argument])
        for title, command in (
            ("unmask: rewrite block", REWRITE_COMMAND),
            ("unmask: suggest edits", SUGGEST_COMMAND),
        )
    ]
    if not literals:
        return list(commands)
    return [types.CodeAction(title=c.title, kind=ACTION_KIND, command=c) for c in commands]


def edit_json(document: DocumentSnapshot, hunk: Hunk, score: float) -> dict[str, Any]:
    return {
        "range": lsp_range(document.point(hunk.start), document.point(hunk.end)),
        "newText": hunk.text,
        "version": document.version,
        "score": round(score, 4) if math.isfinite(score) else None,
    }


async def run(session: Session, request: BlockEditRequest) -> dict[str, Any]:
    document = session.snapshot(request.uri)
    start = document.offset(request.line, request.character)
    end = document.offset(*request.end) if request.end else None
    if end is not None and end < start:
        start, end = end, start
    # Off the event loop: parsing a large document takes a while, and other connections wait.
    region = await asyncio.to_thread(pick_rewrite, document.text, start, end, document.language)
    if region is None:
        raise Unservable("no block to edit at this position")
    settings = session.settings
    engine = await session.shared.host.wait(settings.load_wait_seconds)
    if request.mode == "suggest" and not getattr(engine, "supports_suggest", True):
        raise Unservable("suggest mode needs a masked model; this model only rewrites and infills")
    block = document.text[region.start : region.end]
    ending = line_ending(document.text)
    # The engine sees `\n` endings; its texts come back in the document's (see `_edits`).
    prefix, suffix = for_model(document.text[: region.start]), for_model(document.text[region.end :])
    model_block = for_model(block)
    tokens = engine.count_tokens(model_block)
    limit = engine.settings.max_span
    if tokens > limit:
        raise Unservable(
            f"the block is {tokens} tokens; this model edits at most {limit} (select a smaller range)"
        )
    count = request.alternatives or settings.alternatives
    if request.mode == "rewrite":
        lengths = rewrite_lengths(max(1, tokens), limit, count)

        def work():
            return engine.infill(prefix, suffix, lengths)
    else:

        def work():
            return suggest_work(engine, prefix, model_block, suffix)

    range_ = lsp_range(document.point(region.start), document.point(region.end))
    last = await stream_previews(
        session,
        request.uri,
        document,
        range_,
        request.mode,
        work,
        lambda snapshot: shown_block(
            snapshot, request.mode, document.text, region.start, region.end, document.language, ending
        ),
    )
    return {
        "mode": request.mode,
        "range": range_,
        "version": document.version,
        "edits": _edits(document, region.start, region.end, block, request.mode, last, ending),
    }


def rewrite_order(
    text: str, start: int, end: int, block: str, candidates: Sequence[Candidate], language: str | None
) -> list[int]:
    """Indices of the candidates worth offering as rewrites of `block` (text[start:end]): those that
    parse first, then by score; duplicates and the block itself left out."""
    texts = [c.text for c in candidates]
    seen: set[str] = set()
    order = []
    for i in rank_candidates(text, start, end, texts, language):
        if texts[i] not in seen and texts[i] != block:
            seen.add(texts[i])
            order.append(i)
    return order


def final_candidates(last: InfillSnapshot, ending: str) -> list[Candidate]:
    """The last snapshot's candidates by score, in the document's line endings."""
    return [candidate_for_document(c, ending) for c in last.ranked()]


def shown_block(
    snapshot: InfillSnapshot, mode: str, text: str, start: int, end: int, language: str | None, ending: str
) -> Candidate:
    """The candidate a block edit's preview draws: while denoising, the steady `previewed` one;
    at the end, the one the first edit applies (a rewrite that parses beats a better score)."""
    if not snapshot.final:
        return candidate_for_document(snapshot.previewed, ending)
    candidates = final_candidates(snapshot, ending)
    if mode == "rewrite":
        order = rewrite_order(text, start, end, text[start:end], candidates, language)
        if order:
            return candidates[order[0]]
    return candidates[0]


def _edits(document, start: int, end: int, block: str, mode: str, last: InfillSnapshot | None, ending: str):
    if last is None:  # suggest found nothing to doubt
        return []
    candidates = final_candidates(last, ending)
    if mode == "rewrite":
        order = rewrite_order(document.text, start, end, block, candidates, document.language)
        return [edit_json(document, Hunk(start, end, candidates[i].text), candidates[i].score) for i in order]
    best = candidates[0]
    return [edit_json(document, hunk, best.score) for hunk in line_hunks(block, best.text, start)]
