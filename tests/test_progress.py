"""The one progress facility: a Rich bar on a terminal, plain timestamped lines (elapsed, ETA)
otherwise — what ``compare`` and the meta-trainers show."""

from __future__ import annotations

import io
import re

from rich.console import Console

from cropmeta.progress import Progress

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (.+): (\d+)/(\d+) \((\d+)%\) elapsed \d+:\d\d:\d\d, ETA (\d+:\d\d:\d\d|–)(.*)$")


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    bar = Progress(Console(file=out), total=10, description="compare", fields=("loss",), lines=5)
    for i in range(10):
        bar.update(description=f"TIML · seed 0 · {i} shots", advance=1, loss=0.5 + i / 100)
    bar.close()
    rows = [LINE.match(x) for x in out.getvalue().splitlines()]
    assert all(rows) and [int(r.group(2)) for r in rows] == [2, 4, 6, 8, 10]
    assert rows[-1].group(1) == "TIML · seed 0 · 9 shots" and rows[-1].group(4) == "100"
    assert rows[-1].group(6) == ", loss 0.590"


def test_a_rich_bar_on_a_terminal_and_silence_when_disabled():
    out = io.StringIO()
    with Progress(Console(file=out, force_terminal=True, width=100), total=3, start=1, description="meta") as bar:
        bar.update(3, loss=0.25)
    text = out.getvalue()
    assert "meta" in text and "3/3" in text and not LINE.match(text.splitlines()[-1] if text else "")
    quiet = Progress(False, total=3)
    quiet.advance()
    assert not quiet.enabled


def test_compare_in_a_log_file_shows_progress(tmp_path, monkeypatch):
    import rich.console

    from cropmeta.testing import make_samples
    from cropmeta.evaluate import compare as cmp
    from cropmeta.evaluate.methods import RandomForest

    out = io.StringIO()

    class LogFile(rich.console.Console):  # the default console, with stdout redirected to a file
        def __init__(self, *a, **k):
            super().__init__(file=out)

    monkeypatch.setattr(rich.console, "Console", LogFile)
    samples = make_samples(n_per_region=40, seed=2)
    cmp.compare("kenya", seeds=1, shots="10,all", methods="random-forest", out=tmp_path / "c", samples=samples,
                method_factory=lambda name: RandomForest(n_estimators=5), progress=True, n_boot=10)
    rows = [LINE.match(x) for x in out.getvalue().splitlines() if LINE.match(x)]
    assert [int(r.group(2)) for r in rows] == [1, 2] and rows[-1].group(3) == "2"
