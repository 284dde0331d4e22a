"""What a long command says while it works: a start line, resume counts, progress, slow steps, total time.

The console also keeps the time spent waiting for simulated chunks, so that a manifest can say which
share of the command the client's serial work took. Progress is a tqdm bar on a terminal and,
without one (a batch job's log), a line every 10% of the
work or every 30 seconds, whichever comes later. Every post-processing step that takes more than a
second gets a line with its time. All times count from the start of the command, so the total at the
end includes every fixed cost. Messages go to stderr, results to stdout.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

SLOW_STEP_SECONDS = 1.0
LOG_EVERY_FRACTION = 0.1
LOG_EVERY_SECONDS = 30.0


class Console:
    """Status lines for one command; `quiet` silences progress but not the start and end lines."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None, started: float | None = None) -> None:
        self.started = time.monotonic() if started is None else started
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.runs: list[Progress] = []

    def elapsed(self) -> float:
        """Seconds since the command started."""
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        print(message, file=self.stream, flush=True)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Time a post-processing step; say so when it took more than a second."""
        start = time.monotonic()
        yield
        seconds = time.monotonic() - start
        if seconds > SLOW_STEP_SECONDS:
            self.say(f"  {what}: {seconds:.1f} s")

    def progress(self, total: int, what: str = "replicates") -> Progress:
        """A progress callback for run_study: its first call is the number reused from an earlier run."""
        self.runs.append(Progress(self, total, what))
        return self.runs[-1]

    def timing(self) -> dict[str, float]:
        """Where the command's time went so far: waiting for the simulated chunks (workers) and everything else
        (the client: imports, calibration, truths, summaries, forecast, files), from the start of the command; of
        the client's seconds, those before the first chunk started and those after the last one was collected."""
        total = self.elapsed()
        workers = sum(run.window() for run in self.runs)
        ran = [run for run in self.runs if run.calls]
        # The client's fixed cost before the first chunk can start, and its summaries after the last one.
        before = ran[0].first_call - self.started if ran else total
        after = total - (ran[-1].last_call - self.started) if ran else 0.0
        return {"command_seconds": round(total, 2), "worker_wait_seconds": round(workers, 2),
                "client_seconds": round(total - workers, 2),
                "client_before_chunks_seconds": round(before, 2), "client_after_chunks_seconds": round(after, 2),
                "client_share": round((total - workers) / total, 4) if total > 0 else 0.0}


class Progress:
    """Callable progress for run_study (first call: replicates reused; then each finished chunk)."""

    def __init__(self, console: Console, total: int, what: str) -> None:
        self.console = console
        self.total = total
        self.what = what
        self.done = 0
        self.calls = 0
        self.bar = None
        self.last_logged = (0, time.monotonic())
        self.first_call = self.last_call = 0.0

    def window(self) -> float:
        """Seconds from the start of the chunks' simulation (the first call) to the last chunk collected."""
        return self.last_call - self.first_call

    def __call__(self, k: int) -> None:
        self.calls += 1
        self.last_call = time.monotonic()
        if self.calls == 1:
            self.first_call = self.last_call
        if self.calls == 1:
            self._start(k)
        self.done += k
        if self.bar is not None:
            self.bar.update(k)
        elif not self.console.quiet and self.calls > 1:
            self._log_line()
        if self.done >= self.total:
            self.close()

    def _start(self, reused: int) -> None:
        if reused:
            left = self.total - reused
            self.console.say(f"  resuming: {reused} of {self.total} {self.what} reused from an earlier run, "
                             f"{left} to go")
        if self.console.quiet or reused >= self.total:
            return
        if self.console.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=0, unit="rep", desc=f"  {self.what}", dynamic_ncols=True,
                            file=self.console.stream)

    def _log_line(self) -> None:
        done_before, logged_at = self.last_logged
        now = time.monotonic()
        step = max(1, int(self.total * LOG_EVERY_FRACTION))
        if self.done < self.total and (self.done - done_before < step or now - logged_at < LOG_EVERY_SECONDS):
            return
        self.last_logged = (self.done, now)
        self.console.say(f"  {self.what}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                         f"{self.console.elapsed():.0f} s since the start")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
