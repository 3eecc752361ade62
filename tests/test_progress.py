"""Progress off a terminal: plain lines, throttled, and always a last one."""

import io

from rich.console import Console

from diffusion.progress import LineProgress, progress


def test_a_redirected_console_gets_lines_not_a_live_bar():
    console = Console(file=io.StringIO(), force_terminal=False)
    assert isinstance(progress(console, "eval"), LineProgress)
    assert not isinstance(progress(Console(file=io.StringIO(), force_terminal=True), "eval"), LineProgress)


def test_lines_are_throttled_and_the_last_state_is_printed_on_exit():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with LineProgress(console, "train", every=3600) as bar:
        task = bar.add_task("train", total=10, loss=float("nan"))
        for step in range(1, 11):
            bar.update(task, completed=step, loss=1.0 / step)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first update, then the exit; none in between
    assert lines[0].startswith("train 1/10 loss 1 ")
    assert lines[-1].startswith("train 10/10 loss 0.1 ")


def test_advance_accumulates():
    out = io.StringIO()
    with LineProgress(Console(file=out, force_terminal=False, width=200), "eval", every=0) as bar:
        task = bar.add_task("eval", total=3, rate=0.0)
        for _ in range(3):
            bar.update(task, advance=1, rate=50.0)
    assert out.getvalue().splitlines()[-1].startswith("eval 3/3 rate 50 ")


def test_lines_word_fields_as_the_bar_does_and_say_dash_before_a_measurement():
    out = io.StringIO()
    formats = {"loss": "loss {:.3f}", "held": "held-out {:.3f}"}
    with LineProgress(
        Console(file=out, force_terminal=False, width=200), "train", every=0, formats=formats
    ) as bar:
        task = bar.add_task("train", total=2, loss=float("nan"), held=float("nan"))
        bar.update(task)
        bar.update(task, advance=1, loss=2.5, held=float("nan"))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("train 0/2 loss - held-out - ")
    assert lines[-1].startswith("train 1/2 loss 2.500 held-out - ")
