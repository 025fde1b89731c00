"""Progress of a folder run on stderr: elapsed time and ETA over the whole run
(``Progress``) and the step reports of one batch's training turned into speed and ETA
(``_StepTracker``).
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np


class Progress:
    """Overall progress with elapsed time and ETA on stderr; silent when ``quiet``.

    On a terminal the per-step line is redrawn in place; otherwise every update is one line
    (logs stay readable). The ETA counts only training steps this run has measured, after
    the first report of each batch (which includes compilation), plus the mean time of the
    final (non-network) stage per image; it reads ``ETA ?`` until it can be measured.
    """

    def __init__(self, total: int, quiet: bool = False, stream=None):
        self.total, self.quiet, self.done = total, quiet, 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.todo_steps = 0  # image-steps still to train in this run
        self.todo_images = 0  # images still to finish (post-processing)
        self.step_seconds = 0.0  # measured training seconds and their image-steps
        self.steps_measured = 0
        self.finish_seconds: list[float] = []
        self._transient = False
        # Lines come from the training thread and the reader/finisher threads (overlap).
        self._lock = threading.RLock()

    def fmt(self, s: float | None) -> str:
        if s is None:
            return "?"
        s = int(s)
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"

    def rate(self) -> float | None:
        return self.step_seconds / self.steps_measured if self.steps_measured else None

    def eta(self, steps: int | None = None, images: int | None = None) -> float | None:
        rate = self.rate()
        steps = self.todo_steps if steps is None else steps
        images = self.todo_images if images is None else images
        steps, images = max(steps, 0), max(images, 0)
        if steps and rate is None:
            return None
        finish = float(np.mean(self.finish_seconds)) if self.finish_seconds else 0.0
        return (rate or 0.0) * steps + finish * images

    def line(self, text: str) -> None:
        if self.quiet:
            return
        text = printable(text)
        with self._lock:
            if self._transient:
                self.stream.write("\r\033[K")
                self._transient = False
            print(text, file=self.stream, flush=True)

    def status(self, text: str) -> None:
        """A line that the next update replaces, on a terminal."""
        if self.quiet:
            return
        if not self.tty:
            self.line(text)
            return
        with self._lock:
            self.stream.write("\r\033[K" + printable(text))
            self.stream.flush()
            self._transient = True

    def advance(self, n: int, text: str) -> None:
        with self._lock:
            self._advance(n, text)

    def _advance(self, n: int, text: str) -> None:
        self.done += n
        elapsed = time.perf_counter() - self.start
        eta = self.eta() if self.steps_measured or self.done >= self.total else None
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.line(
            f"[{bar}] {self.done}/{self.total} elapsed {self.fmt(elapsed)} "
            f"ETA {self.fmt(eta)}  {text}"
        )


class _StepTracker:
    """Progress of one batch's training: turns the step reports into speed and ETA. The first
    report of a batch is only a reference point (its interval holds the compilation, and after
    a resume the steps done by the interrupted run), so only this run's steps are timed."""

    def __init__(self, progress: Progress, label: str, num_steps: int, batch: int):
        self.progress, self.label, self.num_steps, self.batch = progress, label, num_steps, batch
        self.t = self.step = None
        self.counted = 0

    def report(self, step: int, metrics: dict, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        p = self.progress
        if self.t is not None and step > self.step:
            steps = (step - self.step) * self.batch
            p.step_seconds += now - self.t
            p.steps_measured += steps
            p.todo_steps -= steps
            self.counted += steps
        self.t, self.step = now, step
        eta = p.eta((self.num_steps - step) * self.batch, 0)
        p.status(
            f"    {self.label}: step {step}/{self.num_steps} loss {metrics['loss']:.2e} "
            f"ETA {p.fmt(eta)} (all: {p.fmt(p.eta())})"
        )

    def close(self) -> None:
        """The batch is over: its steps are no longer to do."""
        self.progress.todo_steps -= self.num_steps * self.batch - self.counted
        self.counted = self.num_steps * self.batch


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def printable(text: str) -> str:
    """``text`` with control characters (a newline in a file name, a carriage return, an
    escape sequence) written as escapes, so one message stays one line."""
    return text.translate(_CONTROL)


def _log(text: str) -> None:
    print(printable(text), file=sys.stderr)
