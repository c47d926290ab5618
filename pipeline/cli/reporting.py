"""Human progress output for the CLI: a bar on a terminal, plain lines in CI logs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from ..release.plan import Plan
from ..storage.base import Upload

if TYPE_CHECKING:
    from ..release.result import DeployResult


def plural(count: int, noun: str) -> str:
    """``1 file``, ``2 files``: a count with its noun in the right number (``-s`` nouns only)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@dataclass(frozen=True)
class UploadCounts:
    """What a deploy uploaded, the user's files and the image variants made from them apart:
    "15 uploaded" for 3 files and 12 variants read as 15 of the user's files."""

    files: int
    file_bytes: int
    variants: int
    variant_bytes: int

    @classmethod
    def of(cls, result: DeployResult) -> UploadCounts:
        """The counts of ``result`` (all zero for a dry run: nothing was uploaded)."""
        if result.dry_run:
            return cls(0, 0, 0, 0)
        return cls(files=len(result.plan.uploads), file_bytes=result.plan.bytes_to_upload,
                   variants=result.variant_uploads, variant_bytes=result.variant_bytes)


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ProgressReporter:
    """Implements :class:`pipeline.release.confirm.DeployObserver` for people.

    ``out`` gets the plan (a result); ``err`` gets progress, so ``--json`` output on
    stdout stays one clean object. On a TTY a bar with rate and ETA is redrawn at
    most ten times a second. Elsewhere (CI logs) a summary line comes every
    ``every_seconds`` or ``every_files`` stored files and at the end, so 20,000 files
    do not make 20,000 lines; ``verbose`` gives one line per file instead.
    ``quiet`` (``-q``) silences progress but not warnings: a warning is about the user's
    files (a broken CSS reference under ``--no-strict``), which a quiet CI log must still
    show. Progress is best effort: a closed stream (``deploy.py | head``) ends the
    progress, never the uploads.
    """

    def __init__(self, *, out: TextIO, err: TextIO | None, tty: bool, verbose_plan: bool,
                 verbose: bool = False, quiet: bool = False, every_seconds: float = 5.0,
                 every_files: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.err = err
        self.quiet = quiet
        self.tty = tty
        self.verbose_plan = verbose_plan
        self.verbose = verbose
        self.every_seconds = every_seconds
        self.every_files = every_files
        self._clock = clock
        self._lock = threading.Lock()
        self._done = 0
        self._bytes = 0
        self._total = 0
        self._total_bytes = 0
        self._started = clock()
        self._last_draw = float("-inf")
        self._last_line_done = 0
        #: Uploads may start before the plan (while hashing): until then the totals are unknown.
        self._planned = False
        #: What the progress counts: files, or objects once image variants join them.
        self._unit = "files"
        #: Held while writing; re-entrant because :meth:`stop` runs in a signal handler, which
        #: may interrupt the main thread in the middle of a write of its own.
        self._write_lock = threading.RLock()
        self._stopped = False
        #: A bar was drawn without its newline: the next text must start on a line of its own.
        self._mid_line = False

    def planned(self, plan: Plan) -> None:
        with self._lock:
            self._total = len(plan.uploads)
            self._total_bytes = plan.bytes_to_upload
            self._planned = True
            if not self._done:  # else uploads began while hashing: the rate counts from then
                self._started = self._clock()
                self._last_draw = self._started
        if self.verbose_plan:
            for item in plan.files:
                print(f"{item.reason.value:<10} {item.logical_path} -> {item.entry.key} "
                      f"({format_size(item.entry.size)})", file=self.out)
        self._progress(f"{plural(len(plan.files), 'file')}: {self._total} to upload "
                       f"({format_size(self._total_bytes)}), {plan.skipped} unchanged\n")

    def warned(self, message: str) -> None:
        self._write(f"warning: {message}\n")

    def encoding(self, sources: int, variants: int, *, dry_run: bool) -> None:
        if variants == 0:
            self._progress("image variants: 0 to encode\n")
            return
        verb = "would encode" if dry_run else "encoding"
        self._progress(f"image variants: {verb} {plural(variants, 'variant')} of "
                       f"{plural(sources, 'image')}\n")

    def variants_ready(self, uploads: int, size: int) -> None:
        """Variant uploads join the totals the progress counts against, which then count
        objects, not the user's files. Without a plan of files before (``cdn-deploy
        variants``), these are the totals."""
        with self._lock:
            if not self._planned:
                self._planned, self._started = True, self._clock()
                self._last_draw = self._started
            self._total += uploads
            self._total_bytes += size
            if uploads:
                self._unit = "objects"

    def encoded(self, logical_path: str, done: int, total: int) -> None:
        self._progress(f"[{done}/{total}] encoded variants of {logical_path}\n")

    def _progress(self, text: str) -> None:
        if not self.quiet:
            self._write(text)

    def stop(self) -> None:
        """Write nothing more (Ctrl-C: uploads still in flight must not redraw the bar under
        the message that follows); end a half-drawn bar's line."""
        with self._write_lock:
            if self._mid_line:
                self._write("\n")
            self._stopped = True

    def _write(self, text: str) -> None:
        with self._write_lock:
            if self.err is None or self._stopped:
                return
            try:
                self.err.write(text)
                self.err.flush()
            except OSError:  # the reader went away: stop reporting, keep deploying
                self.err = None
                return
            self._mid_line = not text.endswith("\n")

    def stored(self, upload: Upload) -> None:
        if self.err is None or self.quiet:
            return
        with self._lock:
            if not self._done and not self._planned:
                self._started = self._last_draw = self._clock()
            self._done += 1
            self._bytes += upload.size
            if self.verbose:
                total = self._total if self._planned else "?"
                self._progress(f"[{self._done}/{total}] uploaded {upload.key} "
                               f"({format_size(upload.size)})\n")
            elif self.tty and self._planned:
                self._draw()
            else:
                self._line()

    def _rate(self, now: float) -> float:
        """Bytes per second since the plan was made."""
        elapsed = now - self._started
        return self._bytes / elapsed if elapsed > 0 else 0.0

    def _counts(self, now: float) -> str:
        rate = format_size(self._rate(now))
        if not self._planned:
            return f"{self._done} files, {format_size(self._bytes)} while hashing, {rate}/s"
        return (f"{self._done}/{self._total} {self._unit}, {format_size(self._bytes)}/"
                f"{format_size(self._total_bytes)}, {rate}/s")

    def _line(self) -> None:
        """A line every ``every_seconds`` or ``every_files`` files, and one at the end (a
        terminal, too, gets these lines until the plan gives the totals the bar needs)."""
        now = self._clock()
        finished = self._planned and self._done >= self._total
        if (not finished and now - self._last_draw < self.every_seconds
                and self._done - self._last_line_done < self.every_files):
            return
        self._last_draw, self._last_line_done = now, self._done
        self._progress(f"uploaded {self._counts(now)}\n")

    def _draw(self) -> None:
        now = self._clock()
        if self._done < self._total and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = 30
        filled = int(width * self._bytes / self._total_bytes) if self._total_bytes else width
        bar = "#" * filled + "-" * (width - filled)
        rate = self._rate(now)
        finished = self._done == self._total
        if finished:
            tail = f", done in {format_duration(now - self._started)}"
        elif rate > 0:
            tail = f", ETA {format_duration((self._total_bytes - self._bytes) / rate)}"
        else:
            tail = ""
        # Padded so a shorter line fully covers the one it replaces.
        line = f"[{bar}] {self._counts(now)}{tail}".ljust(96)
        self._progress(f"\r{line}{chr(10) if finished else ''}")
