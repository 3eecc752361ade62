"""`unmask infill --jsonl` and `unmask bench --json`, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

MODEL = ["--model", os.environ["UNMASK_TEST_MODEL"]] if os.environ.get("UNMASK_TEST_MODEL") else []


def unmask(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lsp_server.cli", *args, *MODEL],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_infill_jsonl_answers_every_line_in_order():
    tasks = [
        {"task_id": "a", "prefix": "def add(x, y):\n    return ", "suffix": "\n"},
        "not json",
        {"task_id": "b", "prefix": "import os\n", "suffix": "\nprint(path)\n", "max_tokens": 8},
        {"prefix": "x"},
    ]
    stdin = "\n".join(t if isinstance(t, str) else json.dumps(t) for t in tasks) + "\n"
    run = unmask("infill", "--jsonl", stdin=stdin)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r.get("task_id") for r in rows] == ["a", None, "b", None]
    assert "line 2" in rows[1]["error"] and "missing task_id, suffix" in rows[3]["error"]
    for row in (rows[0], rows[2]):
        assert set(row) == {"task_id", "completion", "steps", "seconds"}
        assert isinstance(row["completion"], str) and "<|" not in row["completion"]
        assert row["steps"] >= 1 and row["seconds"] > 0
    assert rows[2]["steps"] <= 8


def test_bench_json_compares_threshold_with_the_typewriter_and_generate():
    run = unmask("bench", "--json", "--blocks", "16,32", "--repeats", "1", "--context", "128,256")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    modes = ("threshold", "threshold_nocache", "one_per_step", "ar_generate")
    assert sorted((r["mode"], r["block_tokens"], r["context_tokens"]) for r in rows) == sorted(
        (m, b, c) for m in modes for b in (16, 32) for c in (128, 256)
    )
    for row in rows:
        assert {"mode", "block_tokens", "forwards", "seconds_to_final", "tokens_per_second"} <= set(row)
        assert row["seconds_to_first_preview"] <= row["seconds_to_final"]
    for block in (16, 32):
        group = {r["mode"]: r for r in rows if r["block_tokens"] == block and r["context_tokens"] == 256}
        typewriter, ar = group["one_per_step"], group["ar_generate"]
        assert typewriter["forwards"] == block  # one forward per committed token
        assert ar["forwards"] == block  # one new token per generate() step
        for mode in ("threshold", "threshold_nocache"):
            threshold = group[mode]
            assert threshold["forwards"] <= typewriter["forwards"]
            assert threshold["forwards_vs_one_per_step"] == round(threshold["forwards"] / block, 3)
            assert threshold["speedup_vs_ar"] == round(
                ar["seconds_to_final"] / threshold["seconds_to_final"], 2
            )
        assert 0.0 <= group["threshold"]["agreement_with_nocache"] <= 1.0


def test_infill_jsonl_a_bad_max_tokens_fails_its_line_only():
    bad = ["ten", [4], -3, 0, True, 2.5]
    tasks = [{"task_id": i, "prefix": "x = ", "suffix": "\n", "max_tokens": v} for i, v in enumerate(bad)]
    tasks.append({"task_id": "last", "prefix": "y = ", "suffix": "\n", "max_tokens": 4})
    run = unmask("infill", "--jsonl", stdin="".join(json.dumps(t) + "\n" for t in tasks))
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["task_id"] for r in rows] == [*range(len(bad)), "last"]
    for number, row in enumerate(rows[:-1], 1):
        assert row["error"].startswith(f"line {number}: max_tokens must be a positive integer")
    assert "error" not in rows[-1] and rows[-1]["steps"] <= 4


def test_infill_jsonl_a_line_nested_too_deeply_fails_alone():
    task = {"task_id": "after", "prefix": "x = ", "suffix": "\n", "max_tokens": 4}
    run = unmask("infill", "--jsonl", stdin="[" * 3000 + "\n" + json.dumps(task) + "\n")
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert "nests too deeply" in rows[0]["error"] and rows[1]["task_id"] == "after" and "error" not in rows[1]


def test_preview_reads_regular_files_of_a_servable_size_only(tmp_path):
    large = tmp_path / "large.py"
    large.write_text("x = 1\n" * 400_000)  # 2.4 MB, over the server's 2 MB default
    run = unmask("preview", f"{large}:1")
    assert run.returncode == 2 and "unmask previews files up to 2.0 MB" in run.stderr, run.stderr
    run = unmask("preview", "/dev/zero:1")  # read whole, it would never end
    assert run.returncode == 2 and "not a regular file" in run.stderr, run.stderr


def test_infill_jsonl_text_that_is_not_unicode_fails_its_line_only():
    lines = (
        b'{"task_id": 1, "prefix": "x = \\ud800", "suffix": ""}\n'  # a lone surrogate, escaped
        b'{"task_id": 2, "prefix": "caf\xe9 = ", "suffix": ""}\n'  # a byte that is not UTF-8
        b'{"task_id": 3, "prefix": "y = ", "suffix": "\\n"}\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "lsp_server.cli", "infill", "--jsonl", *MODEL],
        input=lines,
        capture_output=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr.decode()
    rows = [json.loads(line) for line in run.stdout.decode().splitlines()]
    assert [r["task_id"] for r in rows] == [1, 2, 3]
    assert "valid Unicode" in rows[0]["error"] and "valid Unicode" in rows[1]["error"]
    assert "error" not in rows[2]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("serve", "--tcp", "99999"), "a port must be from 0 to 65535"),
        (("serve", "--tcp", "0", "--host", ""), "empty host"),
        (("serve", "--host", "0.0.0.0"), "--host needs --tcp or --ws"),
        (("train", "--hidden-size", "65", "--heads", "2"), "not a multiple of num_attention_heads 2"),
        (("train", "/nonexistent/src"), "no such file or directory: /nonexistent/src"),
        (("bench", "--blocks", "8,,16"), "comma-separated list of positive integers"),
        (("bench", "--repeats", "0"), "must be 1 or more"),
        (("bench", "--cache-refresh", "-1"), "must be 0 or more"),
        (("eval", "humaneval-infilling", "--tau", "nan"), "must be from 0 to 1"),
        (("eval", "humaneval-infilling", "--jobs", "0"), "must be 1 or more"),
        (("eval", "humaneval-infilling", "--memory-mb", "1"), "needs about 100 MB"),
        (("eval", "humaneval-infilling", "--resume"), "--resume needs --output"),
        (("eval", "humaneval-infilling", "--output", "/nonexistent/x.jsonl"), "does not exist"),
        (("infill", "--jsonl", "--model", "/nonexistent/model"), "does not exist"),
        (("serve", "--check", "--model", "/nonexistent/model"), "does not exist"),
        (("serve", "--check", "--bogus"), "unrecognized arguments: --bogus"),
        (("serve", "--check", "--device", "meta"), "meta cannot run a model"),
        (("bench", "--device", "meta"), "meta cannot run a model"),
        (("bench", "--blocks", "8", "--context", "100000", "--no-ar"), "this model has"),
    ],
)
def test_bad_arguments_get_one_line_and_no_traceback(arguments, message):
    run = unmask(*arguments)
    assert run.returncode in (1, 2), run.stderr
    assert message in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_serve_check_names_what_it_would_serve_and_serves_nothing():
    run = unmask("serve", "--check", "--tcp", "0")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("unmask serve: would serve ") and "over tcp 127.0.0.1:0" in run.stdout
    assert "cpu" in run.stdout or "cuda" in run.stdout


def test_serve_on_a_port_in_use_says_so():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for transport in ("--tcp", "--ws"):
            run = unmask("serve", transport, str(port))
            assert run.returncode == 2, run.stderr
            assert f"cannot listen on 127.0.0.1:{port}" in run.stderr and "Traceback" not in run.stderr
