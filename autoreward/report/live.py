"""What a run shows while it works: one small view object the loop reports to.

In a terminal it is a rich ``Live`` table under the scrolling log: the iteration, each
candidate's state (designing, checking, accepted, rejected with its reason, duplicate,
training with a progress bar and ETA, done with its fitness, failed), and the LLM tokens and
cost so far. When the console is not a terminal (CI, pipes, a log file) the same calls print
plain lines, one per change of state, and one per evaluation during training, so a log reads
top to bottom.

Training progress arrives as the sandboxed job's JSON events (``progress``, ``eval``) on the
pool's reader threads; :meth:`RunView.events` makes the callback for one job folder.
"""

from __future__ import annotations

import textwrap
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

STYLE = {
    "designing": "cyan", "checking": "yellow", "accepted": "green", "rejected": "red", "duplicate": "dim",
    "training": "blue", "done": "bold green", "failed": "bold red", "cut": "dim",
}


@dataclass
class _Row:
    state: str
    detail: str = ""
    step: int = 0
    total: int = 0
    fitness: float | None = None
    started: float = field(default_factory=time.monotonic)


class RunView:
    """The loop's one output: lines in the log, and in a terminal a live table of candidates."""

    def __init__(self, console: Console, live: bool | None = None) -> None:
        """``live``: None = a live table when ``console`` is a terminal, plain lines otherwise."""
        self.console = console
        self.is_live = (console.is_terminal and not console.is_dumb_terminal) if live is None else live
        self.rows: dict[str, _Row] = {}
        self.title = ""
        self.tokens, self.cost = 0, 0.0
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._live: Live | None = None

    # ----- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> "RunView":
        if self.is_live and self._live is None:
            self._live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stop redrawing while the user answers a prompt (interactive steering)."""
        live = self._live
        if live is not None:
            live.stop()
        try:
            yield
        finally:
            if live is not None:
                live.start()

    # ----- what the loop reports ----------------------------------------------------------------

    def line(self, text: str) -> None:
        """A log line (rich markup), above the live table in a terminal."""
        self.console.print(text)

    def iteration(self, i: int, total: int, samples: int) -> None:
        """A new iteration: ``samples`` candidates being designed."""
        with self._lock:
            done = self._table() if self.rows and self._live is not None else None
            self.title = f"iteration {i + 1} of {total}"
            self.rows = {f"cand{j}": _Row("designing") for j in range(samples)}
        if done is not None:  # printed outside the lock: printing redraws the live view, whose __rich__ takes it
            self.console.print(done)  # the finished iteration stays in the scroll-back

    def candidate(self, name: str, state: str, detail: str = "", fitness: float | None = None) -> None:
        """``name`` (``cand1``) is now ``state``; in plain mode one line says so."""
        with self._lock:
            row = self.rows.setdefault(name, _Row(state))
            row.state, row.detail = state, detail
            if fitness is not None:
                row.fitness = fitness
            if state == "training":
                row.started, row.step = time.monotonic(), 0
        if self._live is None and state in ("checking", "accepted", "rejected"):
            shown = textwrap.shorten(detail, 400, placeholder=" …") if state == "rejected" else detail
            self.console.print(f"  {name}: [{STYLE[state]}]{state}[/]" + (f" {escape(shown)}" if shown else ""))
        elif self._live is None and detail and state not in ("designing", "training"):  # the detail says it: "fitness a -> b"
            self.console.print(f"  {name}: {escape(detail)}")

    def usage(self, tokens: int, cost: float) -> None:
        """LLM tokens and dollars spent so far in this run."""
        self.tokens, self.cost = tokens, cost

    def events(self, out_dir: Path, total: int) -> Callable[[dict[str, Any]], None]:
        """The progress callback of the training job in ``out_dir`` (a candidate folder, or a
        halving rung ``<cand>/rung<k>``) training to ``total`` steps."""
        cand = out_dir.parent if out_dir.name.startswith("rung") else out_dir
        name, rung = cand.name, (out_dir.name if out_dir != cand else "")
        self.candidate(name, "training", rung)

        def on_event(e: dict[str, Any]) -> None:
            with self._lock:
                row = self.rows.setdefault(name, _Row("training"))
                if e.get("event") == "progress":
                    row.step, row.total = int(e["step"]), int(e.get("total") or total)
                elif e.get("event") == "eval":
                    row.fitness = float(e["fitness"])
            if e.get("event") == "eval" and self._live is None:
                self.console.print(f"  {name}: training{' ' + rung if rung else ''}, step {int(e['step'])}/{total}, fitness {float(e['fitness']):.3g}")

        return on_event

    # ----- drawing ------------------------------------------------------------------------------

    def _eta(self, row: _Row) -> str:
        if row.state != "training" or not row.step or not row.total:
            return ""
        left = (time.monotonic() - row.started) / row.step * max(row.total - row.step, 0)
        return f"ETA {int(left // 60)}:{int(left % 60):02d}"

    def _table(self) -> Table:
        table = Table(box=None, padding=(0, 1), show_header=False, expand=False)
        for _ in range(5):
            table.add_column()
        table.columns[4].overflow = "fold"
        for name, row in self.rows.items():
            bar: Any = ProgressBar(total=row.total or 1, completed=row.step, width=24) if row.state == "training" else ""
            fit = f"fitness {row.fitness:.3g}" if row.fitness is not None and row.state != "done" else ""  # done: the detail says a -> b
            detail = textwrap.shorten(row.detail, 90, placeholder=" …") if row.detail else ""
            table.add_row(name, Text(row.state, style=STYLE.get(row.state, "")), bar,
                          " ".join(x for x in (f"{row.step}/{row.total}" if row.state == "training" and row.total else "", self._eta(row)) if x),
                          " ".join(x for x in (fit, detail) if x))
        return table

    def __rich__(self) -> Group:
        """Redrawn by ``Live`` a few times a second."""
        with self._lock:
            elapsed = time.monotonic() - self._t0
            head = Text.assemble(
                (self.title or "starting", "bold"), "  ·  ", f"{self.tokens:,} LLM tokens, ${self.cost:.4f}", "  ·  ",
                f"{int(elapsed // 60)}:{int(elapsed % 60):02d} elapsed",
            )
            return Group(head, self._table())

    def watch(self, pool: Any) -> "_Watched":
        """``pool`` (an executor: ``workers``, ``submit(spec, out, on_event)``) with every job's
        progress events sent to this view, for the jobs successive halving submits too."""
        return _Watched(pool, self)


class _Watched:
    """An executor whose submitted jobs report to a :class:`RunView` (delegates the rest)."""

    def __init__(self, pool: Any, view: RunView) -> None:
        self.pool, self.view, self.workers = pool, view, pool.workers

    def submit(self, spec: Any, out_dir: Path, on_event: Callable[[dict[str, Any]], None] | None = None) -> Any:
        return self.pool.submit(spec, out_dir, on_event or self.view.events(Path(out_dir), int(spec.steps)))

    def __enter__(self) -> "_Watched":
        self.pool.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.pool.__exit__(*exc)
