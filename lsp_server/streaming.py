"""A denoising job run through the scheduler with its steps streamed as `unmask/preview`.

Both requests that denoise (inline completion and block edit) stream the same
way: one preview per step, a cancelled preview when the job stops for any
reason, and no answer at all when the document changed after the last step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from diffusion.engine import Candidate, InfillSnapshot
from lsp_server.protocol import preview_params
from lsp_server.scheduler import Batchable, JobEnd, JobStopped, Outcome, run_job

if TYPE_CHECKING:
    from lsp_server.documents import DocumentSnapshot
    from lsp_server.server import Session


async def stream_previews(
    session: Session,
    uri: str,
    document: DocumentSnapshot,
    range_,
    mode: str,
    work: Callable[[], Iterator[InfillSnapshot]],
    shown: Callable[[InfillSnapshot], Candidate],
    batch: Batchable | None = None,
) -> InfillSnapshot | None:
    """Run `work` (or its share of `batch`) for (connection, uri) at the document's version;
    the last snapshot, or None when the job yielded none. Raises JobStopped (after a cancelled preview) if it did not end
    on a current document."""
    request_id = session.request_id
    glyph = session.settings.mask_glyph

    def preview(snapshot: InfillSnapshot | None, candidate: Candidate | None, cancelled: bool = False):
        session.preview(
            preview_params(
                request_id=request_id,
                uri=uri,
                version=document.version,
                range_=range_,
                mode=mode,
                snapshot=snapshot,
                candidate=candidate,
                glyph=glyph,
                cancelled=cancelled,
            )
        )

    last: InfillSnapshot | None = None
    try:
        async for snapshot in run_job(
            session.shared.scheduler,
            (session.connection, uri),
            document.read,
            work,
            lambda: session.stamp_of(uri) == document.stamp,
            batch,
        ):
            last = snapshot
            preview(snapshot, shown(snapshot))
    except (JobStopped, asyncio.CancelledError):
        preview(last, None, cancelled=True)
        raise
    if session.stamp_of(uri) != document.stamp:  # changed after the last step: no stale text
        preview(last, None, cancelled=True)
        raise JobStopped(JobEnd(Outcome.STALE, "the document changed while denoising"))
    return last
