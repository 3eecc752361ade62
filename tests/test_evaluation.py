"""`unmask eval`: the sandbox stops bad programs, the scoring loop carries on, the metrics are right."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion.evaluation.metrics import edit_similarity, exact_match, levenshtein, python_parses
from diffusion.evaluation.runner import (
    Completion,
    LengthPolicy,
    engine_completer,
    pass_at_1,
    run_tests,
    shape_completion,
    span_request,
)
from diffusion.evaluation.sandbox import Limits, classify, run_program
from diffusion.evaluation.tasks import load_humaneval, parse_jsonl_tasks, spread

QUICK = Limits(seconds=5.0, memory_bytes=256 << 20)
MODEL = ["--model", os.environ["UNMASK_TEST_MODEL"]] if os.environ.get("UNMASK_TEST_MODEL") else []


@pytest.fixture(scope="module")
def single_line():
    return load_humaneval("single-line")


def test_passing_and_failing_programs():
    assert run_program("import math\nassert math.gcd(12, 18) == 6\n", QUICK).status == "passed"
    failed = run_program("assert sorted([3, 1]) == [3, 1], 'unsorted'\n", QUICK)
    assert (failed.status, failed.detail) == ("failed", "AssertionError: unsorted")


def test_a_program_that_loops_forever_is_stopped():
    verdict = run_program("while True:\n    pass\n", Limits(seconds=1.0))
    assert verdict.status == "timeout"


def test_a_program_that_allocates_without_bound_is_stopped():
    verdict = run_program("chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 24))\n", QUICK)
    assert verdict.status == "memory"


def test_writes_outside_the_working_directory_are_refused(tmp_path: Path):
    target = tmp_path / "escaped.txt"
    verdict = run_program(f"open({str(target)!r}, 'w').write('x')\n", QUICK)
    assert verdict.status == "refused"
    assert not target.exists()
    removed = tmp_path / "keep.txt"
    removed.write_text("precious")
    assert run_program(f"import os\nos.remove({str(removed)!r})\n", QUICK).status == "refused"
    assert removed.read_text() == "precious"


def test_writes_outside_through_a_directory_descriptor_are_refused(tmp_path: Path):
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    through_open = (
        "import os\n"
        f"d = os.open({str(tmp_path)!r}, os.O_RDONLY)\n"
        "fd = os.open('keep.txt', os.O_WRONLY | os.O_TRUNC, dir_fd=d)\n"
        "os.write(fd, b'overwritten')\n"
    )
    assert run_program(through_open, QUICK).status == "refused"
    inside = "import os\nos.mkdir('sub')\nd = os.open('sub', os.O_RDONLY)\nos.mkdir('x', dir_fd=d)\n"
    assert run_program(inside, QUICK).status == "refused"  # any dir_fd in a change is refused
    assert keep.read_text() == "precious"


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)", "import os\nos._exit(0)"])
def test_a_program_that_exits_0_before_its_tests_fails(exit_call: str):
    verdict = run_program(f"{exit_call}\nassert False, 'the tests'\n", QUICK)
    assert (verdict.status, verdict.detail) == ("failed", "exited before its tests finished")


def test_writes_inside_the_working_directory_are_allowed():
    source = "open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n"
    assert run_program(source, QUICK).status == "passed"


@pytest.mark.parametrize(
    "source",
    [
        "import socket\nsocket.create_connection(('127.0.0.1', 9))\n",
        "import subprocess\nsubprocess.run(['true'])\n",
        "import os\nos.system('true')\n",
    ],
)
def test_network_and_new_processes_are_refused(source: str):
    assert run_program(source, QUICK).status == "refused"


def test_output_flood_is_capped():
    verdict = run_program("while True:\n    print('x' * 4096)\n", Limits(seconds=10.0, file_bytes=1 << 20))
    assert verdict.status in ("failed", "timeout")


def test_classify_reads_exit_codes_and_errors():
    assert classify(0, "", False).status == "passed"
    assert classify(0, "", False, completed=False).status == "failed"
    assert classify(1, "Traceback\nMemoryError\n", False).status == "memory"
    assert classify(-9, "", False).status == "timeout"
    assert classify(0, "", True).status == "timeout"
    assert classify(1, "NameError: x\n", False).detail == "NameError: x"


def test_canonical_middles_pass_and_wrong_ones_fail(single_line):
    multi_line = load_humaneval("multi-line")
    tasks = spread(single_line, 12) + spread(multi_line, 12)
    # Several sandboxes at once: results still come back in task order.
    canonical = list(run_tests(tasks, lambda t: Completion(t.middle, 0, 0.0), QUICK, jobs=4))
    assert [r.task_id for r in canonical] == [t.task_id for t in tasks]
    assert [r.verdict.status for r in canonical] == ["passed"] * len(tasks)
    emptied = list(run_tests(tasks, lambda t: Completion("\n", 0, 0.0), QUICK))
    assert sum(r.verdict.passed for r in emptied) < len(tasks) // 4


@pytest.mark.parametrize("jobs", [1, 3])
def test_evaluation_carries_on_past_bad_completions(single_line, tmp_path: Path, jobs: int):
    # A `return` line: replacing it with another statement keeps the program's shape.
    task = next(t for t in single_line if t.middle.strip().startswith("return "))
    indent = task.middle[: len(task.middle) - len(task.middle.lstrip())]
    outside = tmp_path / "out.txt"
    bad = {
        "loop": f"{indent}while True: pass\n",
        "allocate": f"{indent}hog = [bytearray(1 << 24) for _ in range(10 ** 6)]\n",
        "write": f"{indent}open({str(outside)!r}, 'w').write('x')\n",
        "good": task.middle,
    }
    tasks = [
        type(task)(name, task.prefix, task.suffix, task.middle, task.test, task.entry_point) for name in bad
    ]
    limits = Limits(seconds=2.0, memory_bytes=256 << 20)
    results = list(run_tests(tasks, lambda t: Completion(bad[t.task_id], 1, 0.0), limits, jobs=jobs))
    assert [r.verdict.status for r in results] == ["timeout", "memory", "refused", "passed"]
    assert pass_at_1(results) == 25.0
    assert not outside.exists()


def test_metrics():
    assert levenshtein("kitten", "sitting") == 3
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("", "") == 1.0
    assert edit_similarity("abcd", "abxd") == 0.75
    assert exact_match("x = 1  \n", "x = 1\n")
    assert not exact_match("x = 2\n", "x = 1\n")
    assert python_parses("def f():\n    return 1\n")
    assert not python_parses("def f(:\n")


def test_spread_covers_the_whole_set(single_line):
    picked = spread(single_line, 10)
    assert len(picked) == 10
    assert picked[0] == single_line[0]
    assert picked[-1] == single_line[(9 * len(single_line)) // 10]
    assert spread(single_line, None) == single_line
    assert spread(single_line, 0) == []


def test_jsonl_tasks_report_the_bad_line():
    good = json.dumps({"task_id": "a", "prefix": "x = ", "suffix": "\n", "middle": "1"})
    assert parse_jsonl_tasks([good])[0].middle == "1"
    with pytest.raises(ValueError, match="<jsonl>:2: not JSON"):
        parse_jsonl_tasks([good, "{"])
    with pytest.raises(ValueError, match=":1: needs string fields middle"):
        parse_jsonl_tasks([json.dumps({"task_id": "a", "prefix": "", "suffix": ""})])


def test_length_policies(single_line):
    task = single_line[0]
    assert span_request(task, LengthPolicy("oracle", 0), len) == ((len(task.middle),), True)
    assert span_request(task, LengthPolicy("fixed", 16), len) == ((16,), False)
    # auto asks what the server asks: several lengths for a line, the budget for a block
    assert span_request(task, LengthPolicy("auto", 24, one_line=True), len) == ((8, 16, 24), False)
    assert span_request(task, LengthPolicy("auto", 64), len) == ((64,), False)
    assert (
        shape_completion("    return x\n    y = 2\n", LengthPolicy("auto", 24, one_line=True))
        == "    return x\n"
    )
    assert shape_completion("a\nb", LengthPolicy("auto", 64)) == "a\nb"


def test_oracle_length_fills_every_position_with_real_tokens(engine, single_line):
    task = single_line[3]
    k = engine.count_tokens(task.middle)
    *_, free = engine.infill(task.prefix, task.suffix, [48])
    *_, exact = engine.infill(task.prefix, task.suffix, [k], exact_length=True)
    assert free.best.nulls > 0  # the model ends a roomy span early on its own
    assert exact.best.nulls == 0 and exact.best.span_length == k
    completion = engine_completer(engine, LengthPolicy("oracle", 0))(task)
    assert completion.steps >= 1 and completion.text


def run_eval_command(output: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "lsp_server.cli",
                "eval",
                "humaneval-infilling",
                "--subset",
                "single-line",
            ),
            *("--limit", "3", "--length", "auto", "--json", "--output", str(output), *MODEL, *extra),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_eval_command_runs_the_real_model(tmp_path: Path):
    output = tmp_path / "tasks.jsonl"
    result = run_eval_command(output)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tasks"] == 3 and summary["length"] == "auto" and summary["tau"] == 0.9
    assert sum(summary["statuses"].values()) == 3
    assert "eval 3/3 pass " in result.stderr  # progress reaches a log file too, not only a terminal
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == [t.task_id for t in spread(load_humaneval("single-line"), 3)]
    assert all(r["completion"].endswith("\n") and r["completion"].count("\n") == 1 for r in rows)

    # An interrupted run (one task written, the next cut off mid-line) resumes: the kept task
    # is not scored again, the cut line is.
    first = output.read_text().splitlines()[0]
    output.write_text(first + "\n" + '{"task_id": "SingleLine')
    resumed = run_eval_command(output, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming: 1 tasks kept" in resumed.stderr and "2 to score" in resumed.stderr
    assert json.loads(resumed.stdout)["tasks"] == 3
    lines = output.read_text().splitlines()
    assert lines[0] == first and [json.loads(line)["task_id"] for line in lines] == [
        r["task_id"] for r in rows
    ]
    # Resumed with a smaller --limit: the rows of tasks outside it stay in the file.
    smaller = run_eval_command(output, "--resume", "--limit", "1")
    assert smaller.returncode == 0, smaller.stderr
    assert json.loads(smaller.stdout)["tasks"] == 1
    assert output.read_text().splitlines() == lines

    # --tau sets the commit threshold: at 0 every position clears it on the first step.
    eager = run_eval_command(tmp_path / "eager.jsonl", "--tau", "0")
    assert eager.returncode == 0, eager.stderr
    assert json.loads(eager.stdout)["tau"] == 0.0 and json.loads(eager.stdout)["mean_steps"] == 1.0


def test_eval_jsonl_scores_text(tmp_path: Path):
    tasks = tmp_path / "tasks.jsonl"
    rows = [
        {"task_id": "1", "prefix": "def add(a, b):\n    return ", "suffix": "\n", "middle": "a + b"},
        {"task_id": "2", "prefix": "import os\n", "suffix": "\n", "middle": "import sys"},
    ]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = subprocess.run(
        [sys.executable, "-m", "lsp_server.cli", "eval", "jsonl", str(tasks), "--k", "8", "--json", *MODEL],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tasks"] == 2
    assert 0 <= summary["exact_match"] <= 100 and 0 <= summary["edit_similarity"] <= 100
    bad = tmp_path / "bad.jsonl"
    for content, message in (
        (b"{}\n", "bad.jsonl:1"),
        (b"", "holds no tasks"),
        (
            b'{"task_id": "a", "prefix": "", "suffix": "", "middle": ""}\n{"x": "\xe9"}\n',
            "bad.jsonl:2: not UTF-8",
        ),
    ):
        bad.write_bytes(content)
        failed = subprocess.run(
            [sys.executable, "-m", "lsp_server.cli", "eval", "jsonl", str(bad), *MODEL],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert failed.returncode == 2 and message in failed.stderr and "Traceback" not in failed.stderr


def test_resume_refuses_a_file_an_eval_did_not_write(tmp_path: Path):
    """Resuming rewrites the file: one that is something else is left alone, before the model loads."""
    notes = tmp_path / "notes.jsonl"
    text = '{"task_id": "SingleLineInfilling/HumanEval/0/L0", "completion": "x\\n", "status": "passed"}\n'
    text += "my own notes, not a row\n{}\n"
    notes.write_text(text)
    run = run_eval_command(notes, "--resume")
    assert run.returncode == 2
    assert "line 2 is not a row an eval wrote" in run.stderr and "Traceback" not in run.stderr
    assert notes.read_text() == text
