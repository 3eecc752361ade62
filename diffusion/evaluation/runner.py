"""Evaluation loops: complete each task with a model, then score it.

The loop is generic over a `complete` function (task -> Completion), so the
scoring and the sandbox can be tested with any completion, while `unmask
eval` passes one backed by the real engine. Three length policies, as in the
diffusion-coder papers (DreamOn, DiffuCoder): `oracle` gives the true middle
length in tokens and forbids the null token, `fixed` gives k positions the
model may end early with null, `auto` is what an editor gets from the
server: its token budget for the region's shape, null allowed, and a
single-line region kept to its first line.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

from diffusion.evaluation.metrics import edit_similarity, exact_match, python_parses
from diffusion.evaluation.sandbox import DEFAULT_LIMITS, Limits, Verdict, run_program
from diffusion.evaluation.tasks import InfillTask
from diffusion.length import candidate_lengths

LengthMode = Literal["oracle", "fixed", "auto"]


@dataclass(frozen=True)
class LengthPolicy:
    mode: LengthMode
    tokens: int  # k for `fixed`, the budget for `auto`; unused by `oracle`
    one_line: bool = False  # `auto` on single-line tasks: keep the first line


@dataclass(frozen=True)
class Completion:
    text: str
    steps: int
    seconds: float


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    completion: str
    verdict: Verdict
    steps: int
    seconds: float


@dataclass(frozen=True)
class TextResult:
    task_id: str
    completion: str
    exact: bool
    parses: bool
    similarity: float


class InfillEngine(Protocol):
    def count_tokens(self, text: str) -> int: ...
    def infill(self, prefix: str, suffix: str, span_lengths=None, schedule=None, exact_length=False): ...


def span_request(
    task: InfillTask, policy: LengthPolicy, count_tokens: Callable[[str], int]
) -> tuple[tuple[int, ...], bool]:
    """(span lengths, exact_length) for one task under `policy`; `auto` tries what the server does."""
    if policy.mode == "oracle":
        return (max(1, count_tokens(task.middle)),), True
    if policy.mode == "auto":
        return candidate_lengths(policy.tokens, policy.one_line), False
    return (policy.tokens,), False


def shape_completion(text: str, policy: LengthPolicy) -> str:
    if policy.mode == "auto" and policy.one_line:
        # The server keeps a single-line infill on its line; the task's line ends with a newline.
        return text.split("\n", 1)[0] + "\n"
    return text


def engine_completer(engine: InfillEngine, policy: LengthPolicy) -> Callable[[InfillTask], Completion]:
    def complete(task: InfillTask) -> Completion:
        began = time.perf_counter()
        lengths, exact = span_request(task, policy, engine.count_tokens)
        *_, last = engine.infill(task.prefix, task.suffix, lengths, exact_length=exact)
        assert last.final
        return Completion(shape_completion(last.best.text, policy), last.step, time.perf_counter() - began)

    return complete


def run_tests(
    tasks: Iterable[InfillTask],
    complete: Callable[[InfillTask], Completion],
    limits: Limits = DEFAULT_LIMITS,
    execute: Callable[[str, Limits], Verdict] = run_program,
    jobs: int = 1,
) -> Iterator[TaskResult]:
    """Complete and execute each task, in task order; a completion that fails in any way is a failed task.

    With `jobs` > 1, up to that many programs run in their sandboxes while the
    model completes the next tasks (the model itself stays on this thread).
    """
    if jobs <= 1:
        for task in tasks:
            completion = complete(task)
            verdict = execute(task.program(completion.text), limits)
            yield TaskResult(task.task_id, completion.text, verdict, completion.steps, completion.seconds)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending = deque()
        for task in tasks:
            completion = complete(task)
            pending.append((task, completion, pool.submit(execute, task.program(completion.text), limits)))
            while pending and (pending[0][2].done() or len(pending) > 2 * jobs):
                yield _finished(*pending.popleft())
        while pending:
            yield _finished(*pending.popleft())


def _finished(task: InfillTask, completion: Completion, verdict) -> TaskResult:
    return TaskResult(task.task_id, completion.text, verdict.result(), completion.steps, completion.seconds)


def score_text(
    tasks: Iterable[InfillTask], complete: Callable[[InfillTask], Completion]
) -> Iterator[TextResult]:
    for task in tasks:
        text = complete(task).text
        yield TextResult(
            task.task_id,
            text,
            exact_match(text, task.middle),
            python_parses(task.prefix + text + task.suffix),
            edit_similarity(text, task.middle),
        )


def pass_at_1(results: Sequence[TaskResult]) -> float:
    return 100.0 * sum(r.verdict.passed for r in results) / len(results) if results else 0.0


def text_summary(results: Sequence[TextResult]) -> dict[str, float]:
    count = len(results) or 1
    return {
        "tasks": len(results),
        "exact_match": 100.0 * sum(r.exact for r in results) / count,
        "parse_rate": 100.0 * sum(r.parses for r in results) / count,
        "edit_similarity": 100.0 * sum(r.similarity for r in results) / count,
    }
