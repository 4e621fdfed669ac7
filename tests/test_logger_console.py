"""Tests for the terminal display: the live progress bar as a terminal of a given width shows it."""

import io

import pytest
from rich.console import Console

from ganlab.logger import console as console_module
from ganlab.logger.console import ProgressDisplay

TOTAL = 100_000
STEP = 12_345
SCALARS = {
    "Speed/steps_per_sec": 47.2,
    "Loss/D": -0.33821234,
    "Loss/G": 1.2345678,
    "Wasserstein/estimate": -0.000123456,
    "Penalty/gp": 0.0123,  # not one of SHOWN_LOSSES: must not appear
}


def last_frame(terminal_output: str) -> list[str]:
    """The lines of the live display's last frame, the one left on screen after the run.

    rich redraws a live display by erasing the previous frame line by line (ESC [2K) and writing
    the new one, so the last frame is what follows the last erase; ESC [?25h shows the cursor.
    """
    frame = terminal_output.rsplit("\x1b[2K", 1)[-1].replace("\x1b[?25h", "")
    return frame.rstrip("\n").split("\n")


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_live_bar_keeps_step_count_speed_and_times_whole(monkeypatch, width):
    now = [1000.0]  # a fake clock: rich's elapsed time and ETA come from console.get_time
    terminal = io.StringIO()
    rich_console = Console(width=width, file=terminal, force_terminal=True, color_system=None, get_time=lambda: now[0])
    monkeypatch.setattr(console_module, "console", lambda: rich_console)

    # A resumed run that advances 50 steps a second for 30 s, ending at STEP.
    start = STEP - 30 * 50
    with ProgressDisplay(TOTAL, live=True, start_step=start) as display:
        for second in range(1, 31):
            now[0] += 1.0
            display.advance(start + 50 * second)
        display.report(STEP, SCALARS)

    lines = last_frame(terminal.getvalue())
    text = "\n".join(lines)
    assert max(len(line) for line in lines) <= width, text
    bar_row = lines[0]
    assert "12345/100000" in bar_row, text
    assert "47.2 steps/s" in bar_row, text
    assert "0:00:30" in bar_row, text  # elapsed
    assert "ETA 0:29:14" in bar_row, text  # (100000 - 12345) steps / 50 steps/s = 1753.1 s, rounded up by rich
    assert "…" not in text, text
    # The losses have the line below to themselves, each tag=value whole.
    losses = " ".join(lines[1:]).split()
    assert losses == ["Loss/D=-0.3382", "Loss/G=1.235", "Wasserstein/estimate=-0.0001235"], text


def test_the_tensorboard_command_can_be_pasted_for_any_run_directory(monkeypatch, tmp_path):
    """A sweep job's folder may hold spaces, quotes or '$' (its values): the printed command quotes it."""
    import shlex

    out = io.StringIO()
    monkeypatch.setattr(console_module, "console", lambda: Console(file=out, width=80, color_system=None))
    run_dir = tmp_path / "sweep" / "dataset.root=_data_a dir_x,name='$HOME'~0123456789"
    console_module.print_summary({"Metrics/w1": 0.5}, run_dir)
    line = next(line for line in out.getvalue().splitlines() if line.startswith("TensorBoard: "))
    assert shlex.split(line.removeprefix("TensorBoard: ")) == ["tensorboard", "--logdir", str(run_dir)]
