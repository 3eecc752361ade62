"""One worker thread that runs every denoising job, newest request per document first.

All model work happens here, so handlers on the event loop never block. A
job carries its owner (connection, uri) and the order its request arrived
in: a later request for the same owner supersedes an earlier one, whichever
reaches the scheduler first (requests that waited for the model to load
arrive here in no particular order), and a job whose document has moved on
is dropped before it starts and between steps. Results travel back to the
event loop as items on an asyncio queue.

Jobs that can share forward passes (the same kind of request on the same
model and settings, from any document or connection) say so with a
`Batchable`; when the worker takes one, it takes every pending job with the
same key along (up to the batch's limit) and runs them as one: each step serves all
of them, and each job still ends on its own (done, cancelled, stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Sequence
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


@dataclass(frozen=True)
class Batchable:
    """How a job joins others in one run: jobs with equal `key` may share forward passes."""

    key: Hashable
    part: Any  # this job's share of the batch
    run: Callable[[Sequence[Any]], Iterator[Sequence[Any]]]  # parts -> per step, one item per part
    is_last: Callable[[Any], bool]  # is this item the job's final one?
    limit: int = 8  # how many jobs may share one run (serve --batch sets it)


@dataclass(eq=False)
class Job:
    owner: tuple[Any, str]  # (connection, uri)
    arrival: int  # the order its request arrived in, per owner
    work: Callable[[], Iterator[Any]]  # runs on the worker thread
    is_current: Callable[[], bool]  # is the document still as the request read it?
    deliver: Callable[[Any], None]  # thread-safe sink for items and the final JobEnd
    stop: threading.Event = field(default_factory=threading.Event)
    stop_outcome: Outcome = Outcome.CANCELLED
    batch: Batchable | None = None

    def ended(self) -> JobEnd | None:
        """Why this job must not go on, checked before it starts and between steps."""
        if self.stop.is_set():
            return JobEnd(self.stop_outcome)
        if not self.is_current():
            return JobEnd(Outcome.STALE, "the document changed")
        return None

    def cancel(self, outcome: Outcome = Outcome.CANCELLED) -> None:
        if not self.stop.is_set():
            self.stop_outcome = outcome
            self.stop.set()


class Scheduler:
    """A single worker running jobs in arrival order, batchable ones together."""

    def __init__(self) -> None:
        self.batched_runs = 0  # runs that served more than one job
        self.batched_jobs = 0
        self.ended: Counter[str] = Counter()  # jobs ended, by outcome, over the worker's life
        self._pending: deque[Job] = deque()
        self._running: list[Job] = []
        self._latest: dict[tuple[Any, str], int] = {}  # owner -> the latest arrival submitted
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="unmask-worker", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            latest = self._latest.get(job.owner, job.arrival)
            if latest > job.arrival:  # a later request got here first (and may be done): it wins
                job.cancel(Outcome.SUPERSEDED)
            else:
                self._latest[job.owner] = job.arrival
                for other in [*self._pending, *self._running]:
                    if other.owner == job.owner:
                        other.cancel(Outcome.SUPERSEDED)
            self._pending.append(job)
            self._lock.notify()

    def forget(self, connection: Any) -> None:
        """Cancel every job of a connection that has gone, and drop what was kept for it."""
        with self._lock:
            for job in [*self._pending, *self._running]:
                if job.owner[0] == connection:
                    job.cancel()
            for owner in [o for o in self._latest if o[0] == connection]:
                del self._latest[owner]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()

    def _next(self) -> list[Job]:
        """The oldest pending job and every pending job that can share its forward passes."""
        with self._lock:
            while not self._pending and not self._closed:
                self._lock.wait()
            if self._closed:
                return []
            first = self._pending.popleft()
            group = [first]
            if first.batch is not None:
                limit = first.batch.limit
                for other in list(self._pending):
                    if len(group) >= limit:
                        break
                    if other.batch is not None and other.batch.key == first.batch.key:
                        self._pending.remove(other)
                        group.append(other)
            self._running = group
            return group

    def _loop(self) -> None:
        while jobs := self._next():
            try:
                if len(jobs) == 1:
                    self._end(jobs[0], self._run(jobs[0]))
                else:
                    self._run_batch(jobs)
            finally:
                with self._lock:
                    self._running = []

    def _end(self, job: Job, end: JobEnd) -> None:
        self.ended[end.outcome.value] += 1
        job.deliver(end)

    def _run_batch(self, jobs: list[Job]) -> None:
        """Run jobs with one batch key together; every job gets its items and its own JobEnd."""
        live = []
        for job in jobs:
            end = job.ended()
            if end is None:
                live.append(job)
            else:
                self._end(job, end)
        if not live:
            return
        if len(live) > 1:
            self.batched_runs += 1
            self.batched_jobs += len(live)
        batch = live[0].batch
        assert batch is not None
        steps = batch.run([job.batch.part for job in live])  # type: ignore[union-attr]
        going = dict(enumerate(live))
        try:
            for items in steps:
                for index, job in list(going.items()):
                    end = job.ended()
                    if end is None:
                        job.deliver(items[index])
                        if job.batch.is_last(items[index]):  # type: ignore[union-attr]
                            end = JobEnd(Outcome.DONE)
                    if end is not None:
                        self._end(job, end)
                        del going[index]
                if not going:  # every job ended: no step is worth computing
                    break
        except Exception as error:  # a crash fails the jobs still running, never the worker
            log.exception("batched job failed")
            for job in going.values():
                self._end(job, JobEnd(Outcome.FAILED, describe_failure(error)))
            going = {}
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()
        for job in going.values():
            self._end(job, JobEnd(Outcome.DONE))

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
    arrival: int,
    work: Callable[[], Iterator[Any]],
    is_current: Callable[[], bool],
    batch: Batchable | None = None,
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

    job = Job(owner, arrival, work, is_current, deliver, batch=batch)
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
