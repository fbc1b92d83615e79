"""Progress bars that suit both a terminal and a log.

On a terminal a tqdm bar redraws itself in place. Written to a pipe or a file (a stage run by
the Prefect flow, a CI log) every redraw would become a line of its own, hundreds per stage; there
the bar is a few plain lines instead: one when it starts, one at each tenth of the total (unless
the previous line is under ``MIN_GAP`` seconds old: a fast bar is just its first and last line),
one when it ends; one per ``INTERVAL`` seconds when the total is unknown.

    for batch in progress(batches, desc="sample", unit="batch"):
        ...
    bar = progress(total=steps, initial=step, desc="sft", unit="step")
    bar.update(1); bar.close()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from tqdm import tqdm

EVERY = 0.1  # a line per tenth of the total
MIN_GAP = 1.0  # seconds: no intermediate line sooner than this after the previous one
INTERVAL = 30.0  # seconds between lines when the total is unknown


class LineProgress:
    """A progress bar for a log: tqdm's bar API, a bounded number of newline-terminated lines."""

    def __init__(self, iterable: Iterable | None = None, total: float | None = None, desc: str = "",
                 initial: float = 0, unit: str = "it", file: IO[str] | None = None,
                 every: float = EVERY, min_gap: float = MIN_GAP, interval: float = INTERVAL) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.initial = initial
        self.file = file if file is not None else sys.stderr
        self.every, self.min_gap, self.interval = every, min_gap, interval
        self.postfix = ""
        self.start_t = self.last_t = time.monotonic()
        self.closed = False
        self._bucket = self._bucket_of(initial)
        self._written_n: float | None = None
        self._write()

    def _bucket_of(self, n: float) -> int:
        # n * parts // total, not n / total / every: 300 / 1000 / 0.1 is 2.999...
        return int(n * round(1 / self.every) // self.total) if self.total else 0

    def _write(self) -> None:
        now = time.monotonic()
        line = tqdm.format_meter(self.n, self.total, now - self.start_t, ncols=0, prefix=self.desc,
                                 unit=self.unit, postfix=self.postfix or None, initial=self.initial)
        self.file.write(line + "\n")
        self.file.flush()
        self.last_t, self._written_n = now, self.n

    def update(self, n: float = 1) -> None:
        self.n += n
        if self.total:
            bucket = self._bucket_of(self.n)
            if bucket > self._bucket:
                self._bucket = bucket
                if time.monotonic() - self.last_t >= self.min_gap:
                    self._write()
        elif time.monotonic() - self.last_t >= self.interval:
            self._write()

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:  # noqa: ARG002 - tqdm's signature
        self.postfix = s  # shown with the next line, not a line of its own

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in items.items()), refresh)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._written_n != self.n:
                self._write()

    def __iter__(self) -> Iterator:
        assert self.iterable is not None, "LineProgress without an iterable cannot be iterated"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", initial: float = 0,
             unit: str = "it", disable: bool = False, leave: bool = True, file: IO[str] | None = None) -> Any:
    """A tqdm bar on a terminal, a :class:`LineProgress` elsewhere (``file`` defaults to stderr)."""
    stream = file if file is not None else sys.stderr
    if disable or _isatty(stream):
        return tqdm(iterable, total=total, desc=desc, initial=initial, unit=unit, disable=disable, leave=leave,
                    file=stream)
    return LineProgress(iterable, total=total, desc=desc, initial=initial, unit=unit, file=stream)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
