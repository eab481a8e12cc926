"""The one progress facility: a Rich bar on a terminal; plain timestamped lines with the elapsed time
and an ETA otherwise (a log file, a pipe, CI), so that a long ``compare`` or ``train`` written to a
file still shows how far it is.

Example::

    >>> import io
    >>> from rich.console import Console
    >>> out = io.StringIO()
    >>> bar = Progress(Console(file=out), total=4, description="demo", lines=2)
    >>> for _ in range(4):
    ...     bar.advance()
    >>> bar.close()
    >>> [line.split(" ", 1)[1][:13] for line in out.getvalue().splitlines()]
    ['demo: 2/4 (50', 'demo: 4/4 (10']
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = ["Progress"]


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """``Progress(enabled, total, start=0, description="", fields=())``.

    ``enabled``: False/None → silent; True → the default Rich console; a ``rich.console.Console`` →
    that one. On a terminal: a Rich bar (description, bar, n/total, the ``fields`` such as the loss,
    time remaining). Elsewhere: a line ``<UTC time> <description>: n/total (p%) elapsed h:mm:ss,
    ETA h:mm:ss[, field value …]`` each time another ``1/lines`` of the total is done, and at the end.
    ``update(completed=None, advance=0, description=None, **fields)``, ``advance(n)``, ``close()``."""

    def __init__(self, enabled, total: int, start: int = 0, description: str = "", *, fields=(), lines: int = 20):
        self.total, self.completed, self.description = max(1, int(total)), int(start), description
        self.fields = {f: "–" for f in fields}
        self._bar = self._console = None
        self._t0, self._start = time.perf_counter(), int(start)
        self._step = max(1, -(-self.total // max(1, int(lines))))
        self._next = (self.completed // self._step + 1) * self._step
        from cropmeta.logs import quiet

        if not enabled or quiet():
            return
        from rich.console import Console

        self._console = enabled if isinstance(enabled, Console) else Console()
        if self._console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            cols = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    *(TextColumn(f"{f} {{task.fields[{f}]}}") for f in self.fields), TimeRemainingColumn()]
            self._bar = Bar(*cols, console=self._console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(description, total=self.total, completed=self.completed, **self.fields)

    @property
    def enabled(self) -> bool:
        return self._console is not None

    def update(self, completed: int | None = None, *, advance: int = 0, description: str | None = None,
               **fields) -> None:
        if self._console is None:
            return
        self.completed = (self.completed if completed is None else int(completed)) + int(advance)
        if description is not None:
            self.description = description
        self.fields.update({k: (f"{v:.3f}" if isinstance(v, float) else str(v)) for k, v in fields.items()
                            if v is not None})
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed, description=self.description, **self.fields)
        elif self.completed >= self._next or self.completed >= self.total:
            self._line()
            self._next = (self.completed // self._step + 1) * self._step

    def advance(self, n: int = 1) -> None:
        self.update(advance=n)

    def _line(self) -> None:
        elapsed = time.perf_counter() - self._t0
        done = self.completed - self._start
        eta = elapsed / done * (self.total - self.completed) if done > 0 else float("nan")
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        extra = "".join(f", {k} {v}" for k, v in self.fields.items())
        pct = 100 * self.completed / self.total
        eta_s = _clock(eta) if eta == eta else "–"
        self._console.file.write(f"{now} {self.description}: {self.completed}/{self.total} ({pct:.0f}%) "
                                 f"elapsed {_clock(elapsed)}, ETA {eta_s}{extra}\n")
        self._console.file.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
