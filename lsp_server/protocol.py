"""The `unmask/` protocol: settings, custom messages and their JSON shapes.

Pure data: parsing what a client sends (with messages that name the bad
field) and building what the server sends. Handlers are glue around these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diffusion.engine import Candidate, InfillSnapshot

PREVIEW = "unmask/preview"
BLOCK_EDIT = "unmask/blockEdit"
DID_ACCEPT = "unmask/didAccept"
DID_REJECT = "unmask/didReject"
STATUS = "unmask/status"
REWRITE_COMMAND = "unmask.rewrite"
SUGGEST_COMMAND = "unmask.suggest"
MODES = ("rewrite", "suggest")


class ParamsError(ValueError):
    """Parameters that are malformed (JSON-RPC's InvalidParams), with the reason."""


class Unservable(ValueError):
    """Well-formed parameters that this server cannot serve here (LSP's RequestFailed), with the reason."""


@dataclass(frozen=True)
class Settings:
    """Initialization options, one typed tree with every value defaulted."""

    single_line_tokens: int = 24
    multi_line_tokens: int = 64
    alternatives: int = 3
    previews: bool = True
    mask_glyph: str = "░"
    load_wait_seconds: float = 30.0
    max_document_bytes: int = 2_000_000

    @classmethod
    def from_options(cls, options: Any) -> tuple[Settings, list[str]]:
        """Settings from `initializationOptions`; a bad value is reported and defaulted.

        A client that sends no options at all is a generic LSP client that does
        not know `unmask/preview`: it gets no previews (one notification per
        denoising step it would only log as unknown) unless it asks for them.
        """
        problems: list[str] = []
        if options is None:
            return cls(previews=False), problems
        if not isinstance(options, Mapping):
            if options is not None:
                problems.append(f"initializationOptions should be an object, got {type(options).__name__}")
            return cls(), problems
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            key = _camel(f.name)
            if key not in options:
                continue
            value, expected = options[key], type(f.default)
            ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
            if isinstance(value, bool) and expected is not bool:
                ok = False
            if ok and expected in (int, float) and value <= 0:
                ok = False
            if ok and expected is str and len(value) != 1:
                ok = False
            if ok:
                values[f.name] = expected(value)
            else:
                problems.append(f"initializationOptions.{key}={value!r} is not valid; using {f.default!r}")
        return cls(**values), problems


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class BlockEditRequest:
    uri: str
    mode: str
    line: int
    character: int
    end: tuple[int, int] | None  # an explicit range end (line, character), or None for a cursor
    alternatives: int | None


def _field(params: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in params:
        raise ParamsError(f"{where} lacks '{key}'")
    value = params[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ParamsError(f"{where}.{key} should be {kind.__name__}, got {value!r}")
    return value


def _point(raw: Any, where: str) -> tuple[int, int]:
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{where} should be an object {{line, character}}")
    return _field(raw, "line", int, where), _field(raw, "character", int, where)


def parse_block_edit(params: Any) -> BlockEditRequest:
    if not isinstance(params, Mapping):
        raise ParamsError("unmask/blockEdit params should be an object")
    document = _field(params, "textDocument", Mapping, "params")
    uri = _field(document, "uri", str, "params.textDocument")
    mode = params.get("mode", "rewrite")
    if mode not in MODES:
        raise ParamsError(f"params.mode should be one of {', '.join(MODES)}, got {mode!r}")
    if "range" in params:
        rng = _field(params, "range", Mapping, "params")
        start, end = (
            _point(rng.get("start"), "params.range.start"),
            _point(rng.get("end"), "params.range.end"),
        )
    else:
        start, end = _point(params.get("position"), "params.position"), None
    alternatives = params.get("alternatives")
    if alternatives is not None and (not isinstance(alternatives, int) or not 1 <= alternatives <= 8):
        raise ParamsError(f"params.alternatives should be an integer from 1 to 8, got {alternatives!r}")
    return BlockEditRequest(uri, mode, start[0], start[1], end, alternatives)


def lsp_range(start: tuple[int, int], end: tuple[int, int]) -> dict[str, Any]:
    return {
        "start": {"line": start[0], "character": start[1]},
        "end": {"line": end[0], "character": end[1]},
    }


def segments_json(candidate: Candidate, glyph: str) -> list[dict[str, Any]]:
    """Resolved runs as text, unresolved runs as one glyph per masked token."""
    return [
        {"text": s.text if s.resolved else glyph * s.tokens, "resolved": s.resolved}
        for s in candidate.segments
    ]


def preview_params(
    *,
    request_id: Any,
    uri: str,
    version: int,
    range_: dict[str, Any],
    mode: str,
    snapshot: InfillSnapshot | None,
    candidate: Candidate | None,
    glyph: str,
    cancelled: bool = False,
    step: int = 0,
    steps: int = 0,
) -> dict[str, Any]:
    """One full `unmask/preview` snapshot: safe to drop or coalesce, never a delta."""
    segments = segments_json(candidate, glyph) if candidate is not None else []
    return {
        "id": request_id,
        "uri": uri,
        "version": version,
        "range": range_,
        "mode": mode,
        "step": snapshot.step if snapshot else step,
        "steps": snapshot.steps if snapshot else steps,
        "text": "".join(s["text"] for s in segments),
        "segments": segments,
        "final": bool(snapshot and snapshot.final) and not cancelled,
        "cancelled": cancelled,
    }
