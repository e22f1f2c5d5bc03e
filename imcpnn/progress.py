"""Progress bars that do not flood logs.

:func:`progress_bar` gives a tqdm bar when its stream (default: stderr) is a terminal or a Jupyter
output, and otherwise a :class:`LineProgress` that prints one plain line ``desc: k/n unit`` at most
every ``interval_s`` seconds (default 10) and a last line with the final count and the time taken
when it closes. A redirected run (``imcpnn validate ... 2> log``, CI, a batch job) then logs a few
lines per stage instead of one carriage-return update per step.

Both kinds share the subset of tqdm used here: ``update``, ``set_postfix``, ``set_postfix_str``,
``set_description``, ``close``, iteration over ``iterable``, and use as a context manager.

This module is a leaf: it imports only the standard library and tqdm, so ``spice`` and ``pnn``
may both use it.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable, Iterable, TextIO

#: Seconds between two progress lines when the stream is not a terminal.
LINE_INTERVAL_S = 10.0


def is_interactive(stream: TextIO) -> bool:
    """Does ``stream`` redraw a bar in place: a terminal, or a Jupyter/IPython kernel's output?"""
    if type(stream).__module__.split(".")[0] == "ipykernel":
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


class LineProgress:
    """A progress report of plain lines: ``desc: k/n unit [postfix]`` at most every ``interval_s``
    seconds while it runs, and ``desc: k/n unit [postfix] (12.3 s)`` once when it closes."""

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 unit: str = "it", stream: TextIO | None = None, interval_s: float = LINE_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic):
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self.postfix = ""
        self._stream = stream
        self._interval_s = interval_s
        self._clock = clock
        self._start = self._last = clock()
        self._closed = False

    def _line(self) -> str:
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        head = f"{self.desc}: " if self.desc else ""
        tail = f" [{self.postfix}]" if self.postfix else ""
        return f"{head}{count} {self.unit}{tail}"

    def _print(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        print(text, file=stream, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self._interval_s and not self._closed:
            self._last = now
            self._print(self._line())

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        """Nothing to redraw: lines are printed by ``update`` and ``close``."""

    def close(self) -> None:
        """Print the final count and the time taken (once)."""
        if not self._closed:
            self._closed = True
            self._print(f"{self._line()} ({self._clock() - self._start:.1f} s)")

    def __iter__(self):
        if self.iterable is None:
            raise TypeError("LineProgress made without an iterable cannot be iterated")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("progress total unknown")
        return self.total

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _NoProgress(LineProgress):
    """A disabled bar: the same interface, prints nothing."""

    def _print(self, text: str) -> None:
        pass


def progress_bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
                 enabled: bool = True, unit: str = "it", stream: TextIO | None = None,
                 interval_s: float = LINE_INTERVAL_S, **tqdm_kwargs: Any):
    """A tqdm bar on a terminal, else a :class:`LineProgress` (or nothing when not ``enabled``).

    iterable/total/desc/unit: as for tqdm. stream: where to report (default ``sys.stderr`` at
    call time). interval_s: the least time between two lines when ``stream`` is not a terminal.
    tqdm_kwargs go to tqdm only (e.g. ``leave=False``; ``disable=True`` works like
    ``enabled=False``).
    """
    if tqdm_kwargs.pop("disable", False):
        enabled = False
    if not enabled:
        return _NoProgress(iterable, total=total, desc=desc, unit=unit)
    out = stream if stream is not None else sys.stderr
    if is_interactive(out):
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, file=out, **tqdm_kwargs)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, stream=out, interval_s=interval_s)
