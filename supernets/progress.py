"""Progress of long work, with rate and ETA, on a terminal and in a log file alike.

On a terminal it is a tqdm bar. Otherwise (output redirected to a file, a batch job) tqdm would
stay silent, so a line is written every `interval_s` seconds instead (work shorter than that
stays quiet, so a failing command still prints its one error line alone):
`supernet nb201/spos: 1200/9300 steps (12.9%), 4.10 steps/s, ETA 0:32:55, loss=1.234`.
"""
from __future__ import annotations

import datetime
import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


class Progress:
    """`update(n, **postfix)` after each unit of work; `total` may change while it runs."""

    def __init__(self, total: int, *, initial: int = 0, desc: str, unit: str,
                 interval_s: float = LOG_INTERVAL_S, enabled: bool = True,
                 file: TextIO | None = None) -> None:
        self.file = file if file is not None else sys.stderr
        self.total, self.done, self.desc, self.unit = total, initial, desc, unit
        self.interval_s, self.enabled = interval_s, enabled
        self._start_done, self._start = initial, time.monotonic()
        self._last_line = self._start
        self._postfix: dict[str, Any] = {}
        is_terminal = hasattr(self.file, "isatty") and self.file.isatty()
        self._bar = (tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                          file=self.file) if enabled and is_terminal else None)

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def set_postfix(self, **postfix: Any) -> None:
        """Figures shown after the rate until replaced (the loss, read at logging intervals)."""
        self._postfix = postfix
        if self._bar is not None:
            self._bar.set_postfix(postfix, refresh=False)

    def update(self, n: int = 1, **postfix: Any) -> None:
        self.done += n
        if postfix:
            self.set_postfix(**postfix)
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last_line >= self.interval_s:
            self._write_line()

    def line(self) -> str:
        """The log line for where the work is now."""
        elapsed = time.monotonic() - self._start
        rate = (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0
        share = f" ({100 * self.done / self.total:.1f}%)" if self.total else ""
        left = max(self.total - self.done, 0)
        eta = (str(datetime.timedelta(seconds=round(left / rate))) if rate > 0 else "unknown")
        extra = "".join(f", {k}={v}" for k, v in self._postfix.items())
        return (f"{self.desc}: {self.done}/{self.total} {self.unit}s{share}, "
                f"{rate:.2f} {self.unit}s/s, ETA {eta}{extra}")

    def _write_line(self) -> None:
        print(self.line(), file=self.file, flush=True)
        self._last_line = time.monotonic()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
