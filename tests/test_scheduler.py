"""The worker's batching: jobs that can share forward passes run together and still end alone.

The jobs here produce scripted items (this is about who runs with whom and who
hears what); the real engine's batched denoising is tested in test_engine_batch.py
and through the real server in test_server_e2e.py.
"""

from __future__ import annotations

import threading

import pytest

from lsp_server.scheduler import Batchable, Job, JobEnd, Outcome, Scheduler


class Inbox:
    def __init__(self) -> None:
        self.items: list = []
        self.finished = threading.Event()

    def deliver(self, item) -> None:
        self.items.append(item)
        if isinstance(item, JobEnd):
            self.finished.set()

    @property
    def end(self) -> JobEnd:
        assert self.finished.wait(10), "the job never ended"
        return self.items[-1]


def scripted_run(calls: list, steps: int):
    def run(parts):
        calls.append(list(parts))
        for step in range(1, steps + 1):
            yield [(part, step, step == steps) for part in parts]

    return run


def batch_job(name: str, key: str, calls: list, inbox: Inbox, steps: int = 3, limit: int = 8) -> Job:
    batch = Batchable(key, name, scripted_run(calls, steps), is_last=lambda item: item[2], limit=limit)
    # Alone, a job runs its own `work`, as an unbatched job does.
    return Job(
        ("connection", name), 1, lambda: iter([(name, "alone")]), lambda: True, inbox.deliver, batch=batch
    )


def test_pending_jobs_with_one_key_share_a_run_and_each_ends_alone():
    scheduler = Scheduler()
    release = threading.Event()
    blocker_inbox = Inbox()

    def blocking_work():
        release.wait(10)  # holds the worker while the other jobs queue up
        yield "blocker"

    scheduler.submit(Job(("c", "blocker"), 1, blocking_work, lambda: True, blocker_inbox.deliver))
    calls: list = []
    inboxes = {name: Inbox() for name in ("a", "b", "c", "d")}
    jobs = {
        name: batch_job(name, "other" if name == "d" else "infill", calls, inboxes[name]) for name in inboxes
    }
    for job in jobs.values():
        scheduler.submit(job)
    jobs["c"].cancel()  # cancelled while pending: it must not hold up or join the batch's output
    release.set()

    assert blocker_inbox.end.outcome is Outcome.DONE
    assert inboxes["a"].end.outcome is Outcome.DONE and inboxes["b"].end.outcome is Outcome.DONE
    assert inboxes["c"].end.outcome is Outcome.CANCELLED and inboxes["c"].items == [inboxes["c"].end]
    assert inboxes["d"].end.outcome is Outcome.DONE
    assert calls == [["a", "b"]]  # a and b in one run; d has another key and ran alone
    assert inboxes["d"].items[:-1] == [("d", "alone")]
    assert inboxes["a"].items[:-1] == [("a", 1, False), ("a", 2, False), ("a", 3, True)]
    assert inboxes["b"].items[:-1] == [("b", 1, False), ("b", 2, False), ("b", 3, True)]
    assert (scheduler.batched_runs, scheduler.batched_jobs) == (1, 2)
    scheduler.close()


@pytest.mark.parametrize("limit", [2, 12])
def test_a_batch_takes_no_more_jobs_than_its_limit(limit):
    scheduler = Scheduler()
    release = threading.Event()
    blocker_inbox = Inbox()

    def blocking_work():
        release.wait(10)
        yield "blocker"

    scheduler.submit(Job(("c", "blocker"), 1, blocking_work, lambda: True, blocker_inbox.deliver))
    calls: list = []
    names = [f"job{number:02d}" for number in range(2 * limit + 1)]
    inboxes = {name: Inbox() for name in names}
    for name, inbox in inboxes.items():
        scheduler.submit(batch_job(name, "infill", calls, inbox, limit=limit))
    release.set()
    assert all(inbox.end.outcome is Outcome.DONE for inbox in inboxes.values())
    assert calls == [names[:limit], names[limit : 2 * limit]]  # and the last alone, through its own work
    assert inboxes[names[-1]].items[:-1] == [(names[-1], "alone")]
    scheduler.close()


def test_infill_requests_share_passes_on_a_gpu_only_unless_told(monkeypatch):
    from types import SimpleNamespace

    from lsp_server.infill_request import batch_limit, infill_batch

    def engine(device: str):
        return SimpleNamespace(
            device=SimpleNamespace(type=device),
            checkpoint=object(),
            settings=(),
            infill_many=lambda asks: iter(()),
        )

    assert batch_limit(engine("cuda"), None) == 8 and batch_limit(engine("cpu"), None) == 1
    assert infill_batch(engine("cpu"), "a", "b", (4,)) is None  # alone: runs as a single request
    assert infill_batch(engine("cpu"), "a", "b", (4,), limit=3).limit == 3
    assert infill_batch(engine("cuda"), "a", "b", (4,)).limit == 8


def test_a_job_leaving_a_batch_mid_run_stops_hearing_while_the_others_go_on():
    scheduler = Scheduler()
    release = threading.Event()
    scheduler.submit(
        Job(("c", "blocker"), 1, lambda: iter([release.wait(10)]), lambda: True, Inbox().deliver)
    )
    calls: list = []
    stay, leave = Inbox(), Inbox()
    staying = batch_job("stay", "infill", calls, stay, steps=4)
    version = {"now": 1}
    leaving = batch_job("leave", "infill", calls, leave, steps=4)
    leaving.is_current = lambda: version["now"] == 1

    def deliver_then_edit(item) -> None:  # the document changes after the first step arrives
        leave.deliver(item)
        version["now"] = 2

    leaving.deliver = deliver_then_edit
    scheduler.submit(staying)
    scheduler.submit(leaving)
    release.set()

    assert stay.end.outcome is Outcome.DONE and len(stay.items) == 5
    assert leave.end.outcome is Outcome.STALE
    assert leave.items[:-1] == [("leave", 1, False)]
    scheduler.close()


def test_a_later_request_wins_whichever_reaches_the_scheduler_first():
    """Requests that waited for the model reach `submit` in no set order; arrival decides."""
    scheduler = Scheduler()
    release = threading.Event()
    scheduler.submit(
        Job(("c", "blocker"), 1, lambda: iter([release.wait(10)]), lambda: True, Inbox().deliver)
    )
    newer, older = Inbox(), Inbox()
    scheduler.submit(Job(("c", "doc"), 8, lambda: iter(["newer"]), lambda: True, newer.deliver))
    scheduler.submit(Job(("c", "doc"), 7, lambda: iter(["older"]), lambda: True, older.deliver))
    release.set()
    assert older.end.outcome is Outcome.SUPERSEDED and older.items == [older.end]
    assert newer.end.outcome is Outcome.DONE and newer.items[0] == "newer"
    # Even after the newer one is done, a late older one does not run.
    late = Inbox()
    scheduler.submit(Job(("c", "doc"), 6, lambda: iter(["late"]), lambda: True, late.deliver))
    assert late.end.outcome is Outcome.SUPERSEDED
    scheduler.close()


def test_forgetting_a_connection_cancels_its_jobs_and_no_one_elses():
    scheduler = Scheduler()
    started, release = threading.Event(), threading.Event()

    def running():
        started.set()
        for step in range(100):
            release.wait(0.05)
            yield step

    gone, queued, other = Inbox(), Inbox(), Inbox()
    scheduler.submit(Job(("gone", "a"), 1, running, lambda: True, gone.deliver))
    scheduler.submit(Job(("gone", "b"), 1, lambda: iter(["b"]), lambda: True, queued.deliver))
    scheduler.submit(Job(("stays", "a"), 1, lambda: iter(["kept"]), lambda: True, other.deliver))
    assert started.wait(10)
    scheduler.forget("gone")
    assert gone.end.outcome is Outcome.CANCELLED and len(gone.items) < 100
    assert queued.end.outcome is Outcome.CANCELLED
    assert other.end.outcome is Outcome.DONE and other.items[0] == "kept"
    scheduler.close()
