"""`unmask preview`: the pure renderers, target parsing, the atomic apply, bad input, and a real run.

The renderers are snapshot-tested as plain text (rendered with no colour at a
fixed width) and their colours checked through the styles on each line.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from rich.console import Console

from lsp_server import preview
from lsp_server.cli import build_parser, main
from lsp_server.preview import (
    FileChangedError,
    Plan,
    PreviewError,
    Target,
    apply_atomically,
    decode_source,
    locate,
    parse_target,
    run_preview,
    show_steps,
)
from lsp_server.preview_render import (
    StepState,
    context_around,
    render_diff,
    render_step,
    render_summary,
)

SOURCE = """import math


def area(radius):
    scale = math.pi
    return scale * radius * radius


print(area(2.0))
"""


@pytest.fixture(scope="module")
def engine_types():
    # Imported lazily: diffusion.engine pulls in torch, which only some tests need.
    from diffusion import engine

    return engine


def as_text(renderable, width: int = 80) -> str:
    console = Console(record=True, width=width, color_system=None, file=io.StringIO())
    console.print(renderable, soft_wrap=True)
    return console.export_text()


def line_styles(text) -> dict[str, str]:
    """Each line of a rich Text mapped to the style that covers its start (for colour checks)."""
    styles, offset = {}, 0
    for line in text.plain.split("\n"):
        covering = [str(span.style) for span in text.spans if span.start <= offset < span.end]
        styles[line] = covering[-1] if covering else ""
        offset += len(line) + 1
    return styles


# --- render_step -------------------------------------------------------------------------------


def test_render_step_draws_context_resolved_text_and_one_glyph_per_masked_token(engine_types):
    Segment = engine_types.Segment
    start = SOURCE.index("scale * radius")
    end = start + len("scale * radius * radius")
    before, after = context_around(SOURCE, start, end, lines=2)
    segments = (Segment("scale", True, 1), Segment("", False, 3), Segment(" radius", True, 1))
    state = StepState("geo.py", "rewrite", 3, 8, before, segments, after)

    assert as_text(render_step(state)) == (
        "geo.py · rewrite · step 3/8\n"
        "│ def area(radius):\n"
        "│     scale = math.pi\n"
        "┃     return scale░░░ radius\n"
        "│ \n"
        "│ \n"
    )


def test_render_step_marks_every_line_a_multi_line_block_touches(engine_types):
    Segment = engine_types.Segment
    state = StepState(
        "f.py",
        "infill",
        1,
        4,
        "def f():\n    ",
        (Segment("x = 1\n    y", True, 4), Segment("", False, 5)),
        "\nprint(f())",
    )
    rendered = as_text(render_step(state))
    assert rendered == ("f.py · infill · step 1/4\n│ def f():\n┃     x = 1\n┃     y░░░░░\n│ print(f())\n")
    assert rendered.count("░") == 5


def test_render_step_of_an_empty_block_marks_the_insertion_line():
    state = StepState("e.py", "infill", 8, 8, "a = 1\nb = ", (), "\nc = 3")
    assert as_text(render_step(state)) == "e.py · infill · step 8/8\n│ a = 1\n┃ b = \n│ c = 3\n"


def test_render_step_styles_masked_glyphs_dim(engine_types):
    Segment = engine_types.Segment
    text = render_step(StepState("g.py", "infill", 0, 2, "x = ", (Segment("", False, 2),), ""))
    glyphs = [span for span in text.spans if text.plain[span.start : span.end] == "░░"]
    assert [str(span.style) for span in glyphs] == ["dim"]
    assert str(text.style) == ""  # the header's bold stays on the header


def test_context_around_keeps_a_few_whole_lines_each_side():
    text = "1\n2\n3\n4 cursor here\n5\n6\n7\n"
    start = text.index("cursor")
    before, after = context_around(text, start, start + len("cursor"), lines=2)
    assert before == "2\n3\n4 "
    assert after == " here\n5\n6"
    assert context_around("only", 0, 4, lines=3) == ("", "")


# --- render_diff -------------------------------------------------------------------------------


def test_render_diff_is_a_unified_diff_with_file_headers_and_hunks():
    new = SOURCE.replace("    return scale * radius * radius\n", "    return scale * radius**2\n")
    assert as_text(render_diff(SOURCE, new, "geo.py")) == (
        "--- a/geo.py\n"
        "+++ b/geo.py\n"
        "@@ -3,7 +3,7 @@\n"
        " \n"
        " def area(radius):\n"
        "     scale = math.pi\n"
        "-    return scale * radius * radius\n"
        "+    return scale * radius**2\n"
        " \n"
        " \n"
        " print(area(2.0))\n"
    )


def test_render_diff_colours_additions_deletions_and_hunk_headers():
    styles = line_styles(render_diff("a\nb\n", "a\nc\n", "x.py"))
    assert styles["-b"] == "red"
    assert styles["+c"] == "green"
    assert styles["@@ -1,2 +1,2 @@"] == "cyan"
    assert styles[" a"] == ""
    # A deleted line that itself begins with "--" is still a deletion, not a file header.
    assert line_styles(render_diff("-- x\n", "", "y.lua"))["--- x"] == "red"


def test_render_diff_is_empty_when_nothing_changed_and_shows_line_ending_changes():
    assert render_diff(SOURCE, SOURCE, "geo.py").plain == ""
    assert as_text(render_diff("a\r\n", "a\n", "w.py")).splitlines()[-2:] == ["-a␍␊", "+a␊"]


def test_render_summary_names_steps_forwards_seconds_and_rate():
    assert (
        as_text(render_summary(8, 9, 0.5, 24))
        == "8 steps · 9 forwards · 0.50 s · 24 tokens · 48.0 tokens/s\n"
    )
    assert "forwards" not in as_text(render_summary(8, None, 0.0, 24))


# --- targets and files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("a.py:3", Target("a.py", 3, None)),
        ("a.py:3:7", Target("a.py", 3, 7)),
        ("dir/with:colon/b.py:10:1", Target("dir/with:colon/b.py", 10, 1)),
        ("C:\\src\\c.py:2", Target("C:\\src\\c.py", 2, None)),
        ("12:3:4", Target("12", 3, 4)),
    ],
)
def test_parse_target_accepts_file_line_and_optional_column(target, expected):
    assert parse_target(target) == expected


@pytest.mark.parametrize(
    "target", ["a.py", "a.py:", ":3", "a.py:x", "a.py:3:", "a.py:-1", "a.py:0", "a.py:2:0"]
)
def test_parse_target_refuses_malformed_targets(target):
    with pytest.raises(PreviewError, match="bad target"):
        parse_target(target)


def test_locate_counts_lines_and_columns_from_one():
    text = "ab\r\ncd\n\nlast"
    assert locate(text, 1, 1) == 0
    assert locate(text, 1, None) == 2  # the end of the line, before its "\r"
    assert locate(text, 2, 3) == 6
    assert locate(text, 3, None) == 7
    assert locate(text, 4, 5) == len(text)
    with pytest.raises(PreviewError, match="line 5 is out of range: the file has 4 lines"):
        locate(text, 5, 1)
    # A final newline ends the last line: three lines, as `wc -l` and editors count them, though
    # the place after it can still be targeted.
    assert locate("a\nb\nc\n", 4, None) == 6
    with pytest.raises(PreviewError, match="the file has 3 lines"):
        locate("a\nb\nc\n", 5, 1)
    with pytest.raises(PreviewError, match="column 4 is out of range"):
        locate(text, 2, 4)


def test_decode_source_refuses_binary_and_non_utf8():
    assert decode_source("naïve = 1\n".encode(), "ok.py") == "naïve = 1\n"
    with pytest.raises(PreviewError, match="binary"):
        decode_source(b"abc\0def", "b.py")
    with pytest.raises(PreviewError, match="not UTF-8"):
        decode_source("café = 1\n".encode("latin-1"), "l.py")


# --- apply_atomically --------------------------------------------------------------------------


def test_apply_atomically_refuses_when_the_file_changed_since_it_was_read(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("x = 1\n")
    original = path.read_bytes()
    path.write_text("x = 2  # an editor saved this meanwhile\n")
    with pytest.raises(FileChangedError, match="changed on disk"):
        apply_atomically(path, original, "x = 3\n")
    assert path.read_text() == "x = 2  # an editor saved this meanwhile\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.py"]


@pytest.mark.parametrize("failing", ["tempfile.mkstemp", "os.replace"])
def test_apply_atomically_that_cannot_write_says_so_and_leaves_the_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "m.py"
    path.write_text("x = 1\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(failing, refuse)
    with pytest.raises(PreviewError, match=r"cannot be written .*Permission denied"):
        apply_atomically(path, path.read_bytes(), "x = 2\n")
    assert path.read_text() == "x = 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"]  # no temporary file left behind


def test_apply_atomically_refuses_a_read_only_file(tmp_path):
    path = tmp_path / "ro.py"
    path.write_text("x = 1\n")
    path.chmod(0o444)
    with pytest.raises(PreviewError, match="read-only"):
        apply_atomically(path, path.read_bytes(), "x = 2\n")
    assert path.read_text() == "x = 1\n"


def test_apply_atomically_writes_and_keeps_the_mode(tmp_path):
    path = tmp_path / "run.py"
    path.write_text("print('old')\n")
    os.chmod(path, 0o751)
    before = path.stat().st_ino
    apply_atomically(path, path.read_bytes(), "print('nëw')\n")
    assert path.read_bytes() == "print('nëw')\n".encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    assert path.stat().st_ino != before  # a new file renamed into place, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.py"]


def test_apply_atomically_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path):
    real = tmp_path / "real.py"
    real.write_text("a = 1\n")
    link = tmp_path / "link.py"
    link.symlink_to(real)
    apply_atomically(link, real.read_bytes(), "a = 2\n")
    assert link.is_symlink()
    assert real.read_text() == "a = 2\n"


# --- the live display, without a model ---------------------------------------------------------


def fake_plan(engine_types, steps: int = 3) -> Plan:
    Candidate, Segment, Snapshot = engine_types.Candidate, engine_types.Segment, engine_types.InfillSnapshot

    def snapshots():
        for step in range(steps + 1):
            masked = steps - step
            segments = (Segment("y" * step, True, step), Segment("", False, masked))
            segments = tuple(s for s in segments if s.tokens)
            yield Snapshot(step, steps, step, step == steps, (Candidate(steps, segments, -0.1),))

    return Plan(4, 4, snapshots(), lambda snapshot: snapshot.best, lambda last: None)


def frame_for(snapshot) -> StepState:
    return StepState("f.py", "infill", snapshot.step, snapshot.steps, "x = ", snapshot.best.segments, "\n")


def test_show_steps_prints_every_step_into_a_pipe(engine_types):
    console = Console(record=True, width=80, color_system=None, file=io.StringIO())
    last, seconds = show_steps(console, fake_plan(engine_types), frame_for)
    out = console.export_text()
    assert last.final and seconds >= 0
    assert [line for line in out.splitlines() if "step" in line] == [
        f"f.py · infill · step {i}/3" for i in range(4)
    ]
    assert "┃ x = ░░░\n" in out and "┃ x = y░░\n" in out and "┃ x = yyy\n" in out


def test_show_steps_redraws_in_place_on_a_terminal(engine_types):
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=80, color_system="standard")
    last, _ = show_steps(console, fake_plan(engine_types), frame_for)
    assert last.step == 3
    out = stream.getvalue()
    assert "step 3/3" in out
    assert "\x1b[" in out  # cursor movement: the frames overwrite each other


# --- run_preview: bad input (no model needed) ---------------------------------------------------


def preview_args(*argv: str):
    return build_parser().parse_args(["preview", *argv])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = run_preview(preview_args(*argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("content", "target_suffix", "message"),
    [
        ("café = 1\n".encode("latin-1"), ":1", "not UTF-8"),
        (b"x = 1\n", ":9", "line 9 is out of range"),
        (b"x = 1\n", ":1:40", "column 40 is out of range"),
        (b"\x7fELF\0\0\x01", ":1", "binary"),
        (b"x = 1\n", ":one", "bad target"),
    ],
)
def test_bad_files_and_targets_exit_2_with_a_message(tmp_path, capsys, content, target_suffix, message):
    path = tmp_path / "bad.py"
    path.write_bytes(content)
    code, out, err = run(capsys, f"{path}{target_suffix}")
    assert code == 2
    assert message in err
    assert "Traceback" not in err and out == ""
    assert path.read_bytes() == content


def test_missing_file_and_directory_exit_2(tmp_path, capsys):
    code, _, err = run(capsys, f"{tmp_path / 'absent.py'}:1")
    assert (code, "no such file" in err) == (2, True)
    code, _, err = run(capsys, f"{tmp_path}:1")
    assert (code, "is a directory" in err) == (2, True)


def test_a_model_folder_that_fails_to_load_exits_2(tmp_path, capsys):
    path = tmp_path / "ok.py"
    path.write_text("x = 1\n")
    (tmp_path / "not_a_model").mkdir()
    code, _, err = run(capsys, f"{path}:1", "--model", str(tmp_path / "not_a_model"))
    assert code == 2
    assert "cannot load the model" in err and "config.json" in err


# --- end to end, with a real model -------------------------------------------------------------


def model_folder() -> str | None:
    """UNMASK_TEST_MODEL, else the built-in model when it has been copied in; None: neither."""
    from diffusion.checkpoint import BUILTIN_MODEL_DIR

    chosen = os.environ.get("UNMASK_TEST_MODEL")
    if chosen:
        return chosen
    return str(BUILTIN_MODEL_DIR) if (BUILTIN_MODEL_DIR / "config.json").is_file() else None


@pytest.fixture
def model(request) -> str:
    folder = model_folder()
    if folder is None:
        pytest.skip("no model: diffusion/builtin/config.json is absent and UNMASK_TEST_MODEL is unset")
    pytest.importorskip("lsp_server.regions", reason="lsp_server/regions.py is not there yet")
    return folder


@pytest.fixture
def shared_engine(model, request, monkeypatch):
    """The session's engine (conftest) instead of a fresh load per run: the CPU is shared."""
    engine = request.getfixturevalue("engine")
    monkeypatch.setattr(preview, "load_engine", lambda model, device, dtype=None: engine)
    return engine


def write_sample(tmp_path: Path) -> Path:
    path = tmp_path / "geo.py"
    path.write_text(SOURCE)
    return path


def test_preview_runs_end_to_end_and_leaves_the_file_alone_without_apply(model, tmp_path, capsys):
    path = write_sample(tmp_path)
    code = main(["preview", f"{path}:6:11", "--model", model, "--device", "cpu", "--max-tokens", "8"])
    out = capsys.readouterr().out
    assert code == 0
    assert "step 0/" in out and "steps ·" in out
    assert "--- a/" in out or "no change" in out
    assert path.read_text() == SOURCE


def test_rewrite_apply_writes_exactly_the_diff_it_showed(shared_engine, tmp_path, capsys):
    path = write_sample(tmp_path)
    target = f"{path}:6:5"
    code, dry, _ = run(capsys, target, "--mode", "rewrite")
    assert code == 0
    assert "rewrite · step" in dry and f"--- a/{path}" in dry and "@@ " in dry
    assert path.read_text() == SOURCE

    code, out, _ = run(capsys, target, "--mode", "rewrite", "--apply")
    assert code == 0
    after = path.read_text()
    assert after != SOURCE
    assert render_diff(SOURCE, after, str(path)).plain in out
    assert f"wrote {path}" in out


def test_apply_refuses_when_the_file_changes_while_denoising(shared_engine, tmp_path, capsys, monkeypatch):
    path = write_sample(tmp_path)
    edited = SOURCE + "# saved by an editor meanwhile\n"
    real_show_steps = preview.show_steps

    def show_steps_while_someone_saves(*args):
        result = real_show_steps(*args)
        path.write_text(edited)
        return result

    monkeypatch.setattr(preview, "show_steps", show_steps_while_someone_saves)
    code, _, err = run(capsys, f"{path}:6:5", "--mode", "rewrite", "--apply")
    assert code == 3
    assert "changed on disk" in err
    assert path.read_text() == edited


@pytest.mark.parametrize("mode", ["rewrite", "suggest"])
def test_the_last_frame_is_the_edit_that_apply_writes(shared_engine, mode):
    """The final frame draws the candidate `--apply` writes: for a rewrite, one that parses
    before a better-scored one that does not, never the unchanged block."""
    import torch

    torch.manual_seed(0)
    offset = SOURCE.index("scale = ")
    plan = preview.plan_block(shared_engine, SOURCE, offset, "python", mode, None)
    *_, last = plan.snapshots
    new = plan.result(last)
    if last is not None and mode == "rewrite":
        assert last.final
        shown = plan.shown(last).text
        block = SOURCE[plan.start : plan.end]
        if new is not None:
            assert new == SOURCE[: plan.start] + shown + SOURCE[plan.end :]
        else:  # nothing to offer: every alternative was the block itself
            assert shown == block


def test_apply_keeps_a_crlf_file_crlf(shared_engine, tmp_path, capsys):
    path = tmp_path / "geo.py"
    path.write_bytes(SOURCE.replace("\n", "\r\n").encode())
    code, out, _ = run(capsys, f"{path}:6:5", "--mode", "rewrite", "--apply")
    assert code == 0
    written = path.read_bytes()
    if written != SOURCE.replace("\n", "\r\n").encode():
        assert f"wrote {path}" in out
        assert written.count(b"\n") == written.count(b"\r\n")  # no bare \n among the \r\n lines
        assert b"\r\r" not in written
