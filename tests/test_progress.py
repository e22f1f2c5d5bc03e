"""Progress output: a bar on a terminal, a few plain lines elsewhere (logs are not flooded)."""

from __future__ import annotations

import io

import pytest

from imcpnn.progress import LineProgress, is_interactive, progress_bar


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_not_a_terminal_gives_few_lines_and_the_final_count():
    out = io.StringIO()
    with progress_bar(total=1000, desc="ngspice", unit="sim", stream=out) as bar:
        for _ in range(1000):
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) <= 2 and "\r" not in out.getvalue()
    assert lines[-1].startswith("ngspice: 1000/1000 sim (") and lines[-1].endswith(" s)")


def test_lines_at_most_every_interval():
    out, clock = io.StringIO(), _Clock()
    bar = LineProgress(total=100, desc="train", stream=out, interval_s=10.0, clock=clock)
    for _ in range(100):
        clock.t += 1.0  # 100 s in all: one line per 10 s, not one per update
        bar.update()
    bar.set_postfix(loss="0.1234", acc="0.500")
    bar.close()
    bar.close()  # the final line once
    lines = out.getvalue().splitlines()
    assert lines[0] == "train: 10/100 it" and len(lines) == 11
    assert lines[-1] == "train: 100/100 it [loss=0.1234, acc=0.500] (100.0 s)"


def test_iterating_reports_and_closes():
    out, clock = io.StringIO(), _Clock()
    items = []
    for x in LineProgress(range(5), desc="epoch 1/3", stream=out, clock=clock):
        items.append(x)
        clock.t += 4.0
    assert items == [0, 1, 2, 3, 4]
    assert out.getvalue().splitlines() == ["epoch 1/3: 3/5 it", "epoch 1/3: 5/5 it (20.0 s)"]


def test_interrupted_stage_still_prints_how_far_it_got():
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with progress_bar(total=10, desc="stage", stream=out) as bar:
            bar.update(3)
            raise KeyboardInterrupt
    assert out.getvalue().startswith("stage: 3/10 it (")


def test_unknown_total_and_disabled():
    out = io.StringIO()
    with progress_bar(desc="x", stream=out) as bar:
        bar.update(7)
    assert out.getvalue().startswith("x: 7 it (")
    quiet = io.StringIO()
    for bar in (progress_bar(total=3, enabled=False, stream=quiet), progress_bar(total=3, disable=True, stream=quiet)):
        with bar:
            bar.update(3)
    assert list(progress_bar(range(3), enabled=False, stream=quiet)) == [0, 1, 2]
    assert quiet.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar():
    from tqdm import tqdm

    tty = _Tty()
    assert is_interactive(tty) and not is_interactive(io.StringIO())
    with progress_bar(total=4, desc="bar", stream=tty) as bar:
        assert isinstance(bar, tqdm)
        bar.update(4)
    assert "bar: 100%" in tty.getvalue()


def test_is_interactive_survives_odd_streams():
    class Closed(io.StringIO):
        def isatty(self):
            raise ValueError("I/O operation on closed file")

    assert not is_interactive(Closed()) and not is_interactive(object())  # type: ignore[arg-type]
