"""One worker thread that runs every denoising job, newest request per document first.

All model work happens here, so handlers on the event loop never block. A
job carries its owner (connection, uri) and document version: a newer job
for the same owner supersedes it, and a job whose document has moved on is
dropped before it starts and between steps. Results travel back to the
event loop as items on an asyncio queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DONE = "done"
    CANCELLED = "cancelled"  # the client cancelled, or the handler went away
    SUPERSEDED = "superseded"  # a newer request for the same document arrived
    STALE = "stale"  # the document changed under the job
    FAILED = "failed"


@dataclass(frozen=True)
class JobEnd:
    outcome: Outcome
    message: str = ""


@dataclass(eq=False)
class Job:
    owner: tuple[Any, str]  # (connection, uri)
    version: int
    work: Callable[[], Iterator[Any]]  # runs on the worker thread
    is_current: Callable[[], bool]  # is the document still at `version`?
    deliver: Callable[[Any], None]  # thread-safe sink for items and the final JobEnd
    stop: threading.Event = field(default_factory=threading.Event)
    stop_outcome: Outcome = Outcome.CANCELLED

    def cancel(self, outcome: Outcome = Outcome.CANCELLED) -> None:
        if not self.stop.is_set():
            self.stop_outcome = outcome
            self.stop.set()


class Scheduler:
    """A single worker running jobs in arrival order."""

    def __init__(self) -> None:
        self._pending: deque[Job] = deque()
        self._running: Job | None = None
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="unmask-worker", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            for other in [*self._pending, self._running]:
                if other is not None and other.owner == job.owner:
                    other.cancel(Outcome.SUPERSEDED)
            self._pending.append(job)
            self._lock.notify()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()

    def _next(self) -> Job | None:
        with self._lock:
            while not self._pending and not self._closed:
                self._lock.wait()
            if self._closed:
                return None
            self._running = self._pending.popleft()
            return self._running

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            try:
                job.deliver(self._run(job))
            finally:
                with self._lock:
                    self._running = None

    @staticmethod
    def _run(job: Job) -> JobEnd:
        if job.stop.is_set():
            return JobEnd(job.stop_outcome)
        if not job.is_current():
            return JobEnd(Outcome.STALE, "the document changed before the job started")
        items = job.work()
        try:
            for item in items:
                # Checked between steps: a step is the unit of cancellation.
                if job.stop.is_set():
                    return JobEnd(job.stop_outcome)
                if not job.is_current():
                    return JobEnd(Outcome.STALE, "the document changed while denoising")
                job.deliver(item)
        except Exception as error:  # a crash in a job is an error answer, never a dead worker
            log.exception("job for %s failed", job.owner[1])
            return JobEnd(Outcome.FAILED, describe_failure(error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        return JobEnd(Outcome.DONE)


def describe_failure(error: Exception) -> str:
    name = type(error).__name__
    if "OutOfMemory" in name:
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # the cache is best effort; the message matters more
            pass
        return "the GPU ran out of memory for this request; try a smaller block or context"
    return f"{name}: {error}"


async def run_job(
    scheduler: Scheduler,
    owner: tuple[Any, str],
    version: int,
    work: Callable[[], Iterator[Any]],
    is_current: Callable[[], bool],
) -> AsyncIterator[Any]:
    """Submit a job and yield its items on the event loop; ends by raising JobStopped unless DONE.

    If the consumer stops early (its task was cancelled), the job is cancelled
    and the worker drops it at the next step.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def deliver(item: Any) -> None:
        # RuntimeError: the loop closed (connection gone); nobody is listening.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    job = Job(owner, version, work, is_current, deliver)
    scheduler.submit(job)
    try:
        while True:
            item = await queue.get()
            if isinstance(item, JobEnd):
                if item.outcome is not Outcome.DONE:
                    raise JobStopped(item)
                return
            yield item
    finally:
        job.cancel()


class JobStopped(Exception):
    def __init__(self, end: JobEnd) -> None:
        super().__init__(end.message or end.outcome.value)
        self.end = end
