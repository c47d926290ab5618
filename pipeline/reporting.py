"""Human progress output for the CLI: a bar on a terminal, plain lines in CI logs."""

from __future__ import annotations

import threading
import time
from typing import TextIO

from .plan import Plan
from .storage.base import Upload


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class ProgressReporter:
    """Implements :class:`pipeline.publish.DeployObserver` for people.

    ``out`` gets the plan (a result); ``err`` gets progress, so ``--json`` output on
    stdout stays one clean object. On a TTY the bar is redrawn at most ten times a
    second; elsewhere each stored object gets its own line, which CI logs keep.
    ``err=None`` silences progress (``--quiet``). Progress is best effort: a closed
    stream (``deploy.py | head``) ends the progress, never the uploads.
    """

    def __init__(self, *, out: TextIO, err: TextIO | None, tty: bool, verbose_plan: bool) -> None:
        self.out = out
        self.err = err
        self.tty = tty
        self.verbose_plan = verbose_plan
        self._lock = threading.Lock()
        self._done = 0
        self._bytes = 0
        self._total = 0
        self._total_bytes = 0
        self._last_draw = 0.0

    def planned(self, plan: Plan) -> None:
        self._total = len(plan.uploads)
        self._total_bytes = plan.bytes_to_upload
        if self.verbose_plan:
            for item in plan.files:
                print(f"{item.reason.value:<10} {item.logical_path} -> {item.entry.key} "
                      f"({format_size(item.entry.size)})", file=self.out)
        self._progress(f"{len(plan.files)} files: {self._total} to upload "
                       f"({format_size(self._total_bytes)}), {plan.skipped} unchanged\n")

    def warned(self, message: str) -> None:
        self._progress(f"warning: {message}\n")

    def _progress(self, text: str) -> None:
        if self.err is None:
            return
        try:
            self.err.write(text)
            self.err.flush()
        except OSError:  # the reader went away: stop reporting, keep deploying
            self.err = None

    def stored(self, upload: Upload) -> None:
        if self.err is None:
            return
        with self._lock:
            self._done += 1
            self._bytes += upload.size
            if self.tty:
                self._draw()
            else:
                self._progress(f"[{self._done}/{self._total}] uploaded {upload.key} "
                               f"({format_size(upload.size)})\n")

    def _draw(self) -> None:
        now = time.monotonic()
        if self._done < self._total and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = 30
        filled = int(width * self._bytes / self._total_bytes) if self._total_bytes else width
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if self._done == self._total else ""
        self._progress(f"\r[{bar}] {self._done}/{self._total} files, "
                       f"{format_size(self._bytes)}/{format_size(self._total_bytes)}{end}")
