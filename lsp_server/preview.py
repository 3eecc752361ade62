"""`unmask preview FILE:LINE[:COL]`: watch a block denoise in the terminal, see its diff, maybe apply it.

The same regions and budgets as the language server (infill at the cursor,
or a rewrite / suggested edits of the enclosing block), driven from the
engine's snapshot stream. Drawing lives in `preview_render`; this module is
the I/O around it: reading the file, loading the model, the live display and
the atomic write.

Exit codes: 0 done (also "no change"), 2 bad input, 3 the file changed on disk
before `--apply` could write it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.text import Text

from lsp_server.preview_render import StepState, context_around, render_diff, render_step, render_summary
from lsp_server.protocol import Settings

if TYPE_CHECKING:
    from diffusion.engine import Candidate, Engine, InfillSnapshot

USAGE_EXIT = 2
CHANGED_EXIT = 3
_TARGET = re.compile(r"(?P<path>.+?):(?P<line>\d+)(?::(?P<column>\d+))?")


class PreviewError(Exception):
    """Input that cannot be previewed; the message is shown as is, and the exit code is 2."""


class FileChangedError(PreviewError):
    """The file on disk is no longer the one that was read: `--apply` refuses to overwrite it."""


@dataclass(frozen=True)
class Target:
    path: str
    line: int  # 1-based
    column: int | None  # 1-based, in characters; None: the end of the line


@dataclass(frozen=True)
class Plan:
    """What to denoise: the region it replaces, the snapshots, and how to turn them into the new file."""

    start: int
    end: int
    snapshots: Iterator[InfillSnapshot]
    shown: Callable[[InfillSnapshot], Candidate]  # the candidate drawn at each step
    result: Callable[[InfillSnapshot | None], str | None]  # the new document, None when there is none


# --- pure helpers -----------------------------------------------------------------------------


def parse_target(target: str) -> Target:
    """`FILE:LINE[:COL]`; the path may itself hold colons (the shortest path that parses wins)."""
    match = _TARGET.fullmatch(target)
    if match is None:
        raise PreviewError(f"bad target {target!r}: expected FILE:LINE or FILE:LINE:COL")
    line = int(match["line"])
    column = int(match["column"]) if match["column"] is not None else None
    if line < 1 or (column is not None and column < 1):
        raise PreviewError(f"bad target {target!r}: lines and columns count from 1")
    return Target(match["path"], line, column)


def decode_source(data: bytes, path: str) -> str:
    """The file's text; binary and non-UTF-8 files are refused, as the server refuses them."""
    if b"\0" in data:
        raise PreviewError(f"{path} looks binary (it holds NUL bytes); preview edits text files only")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PreviewError(f"{path} is not UTF-8 text (byte {error.start} is invalid)") from None


def locate(text: str, line: int, column: int | None) -> int:
    """The offset of 1-based (line, column); lines end at "\\n" only, as in editors, and a
    missing column means the end of the line (before any "\\r")."""
    lines = text.split("\n")
    if line > len(lines):
        # Counted as editors and `wc -l` count: a final newline ends the last line, it does not
        # start another (though the empty place after it may still be targeted).
        count = len(lines) - 1 if text.endswith("\n") else len(lines)
        raise PreviewError(
            f"line {line} is out of range: the file has {count} line{'' if count == 1 else 's'}"
        )
    start = sum(len(previous) + 1 for previous in lines[: line - 1])
    content = lines[line - 1].removesuffix("\r")
    if column is None:
        return start + len(content)
    if column > len(content) + 1:
        raise PreviewError(
            f"column {column} is out of range: line {line} has {len(content)} characters "
            f"(columns 1 to {len(content) + 1})"
        )
    return start + column - 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def replaced(text: str, start: int, end: int, new: str) -> str:
    return text[:start] + new + text[end:]


# --- the edges: files and the model -----------------------------------------------------------


# The server's own limit on a document (initializationOptions.maxDocumentBytes, by default).
MAX_SOURCE_BYTES = Settings().max_document_bytes


def read_source(path: Path, max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    """The file's bytes: a regular file of at most `max_bytes` (no device, pipe or directory,
    whose reading could block or never end)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PreviewError(f"{path}: no such file") from None
    except OSError as error:
        raise PreviewError(f"{path}: cannot read it ({error.strerror or error})") from None
    if stat.S_ISDIR(info.st_mode):
        raise PreviewError(f"{path} is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise PreviewError(f"{path} is not a regular file (a device, a pipe or a socket)")
    if info.st_size > max_bytes:
        raise PreviewError(
            f"{path} is {info.st_size / 1e6:.1f} MB; unmask previews files up to {max_bytes / 1e6:.1f} MB"
        )
    try:
        return path.read_bytes()
    except OSError as error:
        raise PreviewError(f"{path}: cannot read it ({error.strerror or error})") from None


def apply_atomically(path: str | os.PathLike[str], original_bytes: bytes, new_text: str) -> None:
    """Replace the file with `new_text` (UTF-8) in one step, keeping its permission bits.

    Refuses with `FileChangedError`, leaving the file alone, when its bytes are no longer
    `original_bytes`: an editor or a formatter wrote it since it was read, and overwriting would
    lose that work. A write in the instant between this check and the rename can still be lost;
    no portable lock closes that window.
    """
    # Resolve symlinks so the link survives and its target is what gets replaced.
    target = Path(os.path.realpath(path))
    try:
        current = target.read_bytes()
    except OSError as error:
        reason = error.strerror or error
        raise FileChangedError(f"{path} cannot be read again ({reason}); not written") from None
    if sha256(current) != sha256(original_bytes):
        raise FileChangedError(f"{path} changed on disk since it was read; not written (run preview again)")
    mode = stat.S_IMODE(target.stat().st_mode)
    # Renaming over a file needs only the directory's permission: a read-only file is
    # refused here, as an editor would (root included, whom access() lets through).
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(target, os.W_OK):
        raise PreviewError(f"{path} is read-only; not written")
    try:
        # The temporary file sits beside the target so that os.replace is a rename on one file system.
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".unmask")
    except OSError as error:
        raise PreviewError(f"{path} cannot be written ({error.strerror or error}); not written") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(new_text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):  # a full disk, a read-only file system: said, not a traceback
            raise PreviewError(f"{path} cannot be written ({error.strerror or error}); not written") from None
        raise
    _fsync_directory(target.parent)


def _fsync_directory(folder: Path) -> None:
    # Makes the rename itself durable; some platforms and file systems cannot open directories.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_engine(model: str | None, device: str | None, dtype: str | None = None) -> Engine:
    from diffusion.engine import Engine

    try:
        return Engine.load(model, device, dtype)
    # CheckpointError is a ValueError; torch reports a bad or absent device as RuntimeError or
    # (CUDA missing from the build) AssertionError; a broken tokenizer file as OSError.
    except (ValueError, OSError, RuntimeError, AssertionError) as error:
        where = model or "the built-in model"
        raise PreviewError(f"cannot load the model ({where}): {error}") from None


# --- planning: the server's regions and budgets -------------------------------------------------


def plan_infill(engine: Engine, text: str, offset: int, language: str | None, max_tokens: int | None) -> Plan:
    from diffusion.length import candidate_lengths
    from lsp_server.infill_request import shape
    from lsp_server.line_endings import candidate_for_document, for_model, line_ending
    from lsp_server.protocol import Settings
    from lsp_server.regions import InfillRegion, pick_infill

    region = pick_infill(text, offset, language) or InfillRegion(offset, offset, "single-line", "")
    defaults = Settings()
    limit = engine.settings.max_span
    if max_tokens is not None and max_tokens > limit:
        raise PreviewError(f"--max-tokens {max_tokens} is more than this model fills at once ({limit})")
    default = defaults.single_line_tokens if region.shape == "single-line" else defaults.multi_line_tokens
    tokens = min(max_tokens or default, limit)
    lengths = candidate_lengths(tokens, region.shape == "single-line")
    # As the server does: the model reads `\n` endings, its text comes back in the file's.
    ending = line_ending(text)
    prefix, suffix = for_model(text[: region.start]), for_model(text[region.end :])

    def shown(candidate: Candidate) -> Candidate:
        return candidate_for_document(shape(candidate, region), ending)

    def result(last: InfillSnapshot | None) -> str | None:
        infill = shown(last.best).text if last is not None else ""
        return replaced(text, region.start, region.end, infill) if infill else None

    return Plan(
        region.start,
        region.end,
        engine.infill(prefix, suffix, lengths),
        lambda snapshot: shown(snapshot.previewed),
        result,
    )


def plan_block(
    engine: Engine, text: str, offset: int, language: str | None, mode: str, max_tokens: int | None
) -> Plan:
    """A rewrite or suggested edits of the block at `offset`, chosen and drawn as the server does
    (`block_edit`): the last frame is the edit that `--apply` writes."""
    from lsp_server.block_edit import (
        final_candidates,
        line_hunks,
        rewrite_lengths,
        rewrite_order,
        shown_block,
        suggest_work,
    )
    from lsp_server.line_endings import for_model, line_ending
    from lsp_server.protocol import Settings
    from lsp_server.regions import pick_rewrite

    region = pick_rewrite(text, offset, None, language)
    if region is None:
        raise PreviewError(f"no block to {mode} at this position")
    block = text[region.start : region.end]
    ending = line_ending(text)
    prefix, suffix, model_block = (
        for_model(text[: region.start]),
        for_model(text[region.end :]),
        for_model(block),
    )
    tokens = engine.count_tokens(model_block)
    limit = engine.settings.max_span
    if tokens > limit:
        raise PreviewError(
            f"the block is {tokens} tokens; this model edits at most {limit} (pick a smaller block)"
        )
    if mode == "rewrite":
        # --max-tokens caps the alternatives' lengths, as it caps an infill's span.
        cap = min(limit, max_tokens) if max_tokens else limit
        lengths = rewrite_lengths(max(1, tokens), cap, Settings().alternatives)
        snapshots = engine.infill(prefix, suffix, lengths)
    else:
        snapshots = suggest_work(engine, prefix, model_block, suffix)

    def result(last: InfillSnapshot | None) -> str | None:
        if last is None:  # suggest found nothing to doubt
            return None
        candidates = final_candidates(last, ending)
        if mode == "suggest":
            new = text
            # From the end backwards, so earlier offsets stay valid.
            for hunk in reversed(line_hunks(block, candidates[0].text, region.start)):
                new = replaced(new, hunk.start, hunk.end, hunk.text)
            return new if new != text else None
        order = rewrite_order(text, region.start, region.end, block, candidates, language)
        return replaced(text, region.start, region.end, candidates[order[0]].text) if order else None

    def shown(snapshot: InfillSnapshot) -> Candidate:
        return shown_block(snapshot, mode, text, region.start, region.end, language, ending)

    return Plan(region.start, region.end, snapshots, shown, result)


# --- the live display --------------------------------------------------------------------------


def denoise_seconds(snapshots: Iterable[InfillSnapshot]) -> Iterator[tuple[float, InfillSnapshot]]:
    """Each snapshot with the seconds spent producing the stream so far, drawing excluded."""
    spent = 0.0
    iterator = iter(snapshots)
    while True:
        began = time.perf_counter()
        try:
            snapshot = next(iterator)
        except StopIteration:
            return
        spent += time.perf_counter() - began
        yield spent, snapshot


def show_steps(
    console: Console, plan: Plan, frame: Callable[[InfillSnapshot], StepState]
) -> tuple[InfillSnapshot | None, float]:
    """Draw every snapshot (live on a terminal, one after another in a pipe); the last one and
    the seconds denoising took."""
    last: InfillSnapshot | None = None
    seconds = 0.0
    # In a pipe there is no cursor to move back: every frame is printed, one after another.
    live = (
        Live(console=console, auto_refresh=False, vertical_overflow="visible")
        if console.is_terminal
        else None
    )
    with live or contextlib.nullcontext():
        for spent, snapshot in denoise_seconds(plan.snapshots):
            last, seconds = snapshot, spent
            view = render_step(frame(snapshot))
            if live is not None:
                live.update(view, refresh=True)
            else:
                console.print(view, soft_wrap=True)
                console.print()
    return last, seconds


# --- the command -------------------------------------------------------------------------------


def run_preview(args) -> int:
    """The `unmask preview` command; returns the exit code."""
    console = Console(highlight=False)
    try:
        return _preview(args, console)
    except PreviewError as error:
        print(f"unmask preview: {error}", file=sys.stderr)
        return CHANGED_EXIT if isinstance(error, FileChangedError) else USAGE_EXIT
    except KeyboardInterrupt:
        print("unmask preview: interrupted; nothing written", file=sys.stderr)
        return 130


def _preview(args, console: Console) -> int:
    target = parse_target(args.target)
    path = Path(target.path)
    original = read_source(path)
    text = decode_source(original, target.path)
    offset = locate(text, target.line, target.column)
    if args.max_tokens is not None and args.max_tokens < 1:
        raise PreviewError(f"--max-tokens must be at least 1, not {args.max_tokens}")

    # The model loads only once the file is known to be good: its errors should not wait on it.
    engine = load_engine(args.model, args.device, args.dtype)
    import torch

    from lsp_server.regions import language_for_path

    torch.manual_seed(args.seed)
    language = language_for_path(str(path))
    if args.mode == "infill":
        plan = plan_infill(engine, text, offset, language, args.max_tokens)
    else:
        plan = plan_block(engine, text, offset, language, args.mode, args.max_tokens)

    before, after = context_around(text, plan.start, plan.end)

    def frame(snapshot: InfillSnapshot) -> StepState:
        segments = plan.shown(snapshot).segments
        return StepState(target.path, args.mode, snapshot.step, snapshot.steps, before, segments, after)

    last, seconds = show_steps(console, plan, frame)
    new_text = plan.result(last)
    if last is not None:
        shown = plan.shown(last)  # the answer's own tokens: not its null padding, not other alternatives
        tokens = shown.span_length - shown.nulls
        console.print(render_summary(last.step, last.forwards, seconds, tokens))
    if new_text is None:
        console.print(Text("no suggestions" if args.mode == "suggest" else "no change"))
        return 0
    console.print(render_diff(text, new_text, target.path), soft_wrap=True)
    if not args.apply:
        console.print(Text(f"dry run: {target.path} is unchanged (pass --apply to write it)"))
        return 0
    apply_atomically(path, original, new_text)
    console.print(Text(f"wrote {target.path}"))
    return 0
