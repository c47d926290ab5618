"""Ctrl-C (or SIGTERM) in a ``deploy.py`` process: one line, exit 130 (143), within seconds,
never a traceback, no worker process left behind.

Python turns SIGINT into ``KeyboardInterrupt`` in the main thread, which unwinds the
command: nothing after the interrupt runs there, so nothing is published. Two things made
that slow and noisy: worker threads in a request on a stalled link keep the process
alive (``concurrent.futures`` joins its threads at exit, for the length of a read
timeout and its retries), and they kept redrawing the progress bar meanwhile; a second
Ctrl-C during that wait raised ``KeyboardInterrupt`` inside the join, a traceback.

:class:`InterruptGuard`, installed by the process entry point (:func:`pipeline.cli.main.run`),
silences progress at the first SIGINT before unwinding, ignores every later SIGINT, and
bounds the unwinding: the entry point ends the process without joining threads, and if
the main thread is itself stuck in a wait, a watchdog says what the command would have
said and ends the process :data:`GRACE_SECONDS` after the interrupt.

SIGTERM, what CI runners send a job they cancel or time out (and ``kill``'s default), is
handled the same way: without a handler Python dies at once, leaving the encoding workers
(children of multiprocessing's fork server, not of this process) running for nobody. It
unwinds as ``KeyboardInterrupt`` does, so every ``except KeyboardInterrupt`` on the way
applies, and ends with :class:`~pipeline.errors.Terminated`'s code and word. Whatever the way
out, the processes registered with :mod:`pipeline.processes` are killed before the process
ends without unwinding.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

from ..errors import Interrupted, Terminated
from ..processes import end_all, exit_now, hold_if_starting

#: How long the main thread may take to unwind after Ctrl-C before the process is ended
#: anyway (it normally takes milliseconds; this bounds a wait nobody can interrupt).
GRACE_SECONDS = 1.5

EXIT_INTERRUPTED = Interrupted.exit_code

#: The signals handled, and the error each stands for.
STOPS: dict[signal.Signals, type[Interrupted]] = {signal.SIGINT: Interrupted,
                                                  signal.SIGTERM: Terminated}


class InterruptGuard:
    """The process's SIGINT and SIGTERM handling; see the module docstring.

    Not installed (tests calling :func:`~pipeline.cli.main.main` in process), it changes
    nothing: :meth:`report_once` just reports and the callbacks are never called.
    """

    def __init__(self, *, grace: float = GRACE_SECONDS,
                 end_process: Callable[[int], object] = exit_now) -> None:
        self.grace = grace
        self._end_process = end_process
        self.interrupted = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._reported = False
        self._installed = False
        self._on_interrupt: Callable[[], object] = _nothing
        self._report: Callable[[], object] = _nothing
        #: What stopped the command (the first signal's error), for its code and message.
        self.stopped_by: type[Interrupted] = Interrupted

    def install(self) -> None:
        """Handle SIGINT and SIGTERM from now on (main thread only, as :func:`signal.signal`
        requires)."""
        for signum in STOPS:
            signal.signal(signum, self._on_signal)
        self._installed = True

    @property
    def exit_code(self) -> int:
        """The exit code of a stopped command: 130 for Ctrl-C, 143 for SIGTERM."""
        return self.stopped_by.exit_code

    def stopped(self, what: str) -> Interrupted:
        """The error to raise for a command stopped ``what`` (e.g. "after release X was
        published"), by what stopped it."""
        return self.stopped_by(f"{self.stopped_by.said} {what}")

    def when_interrupted(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` at the first Ctrl-C, before unwinding (stop the progress bar)."""
        self._on_interrupt = callback

    def report_with(self, report: Callable[[], object]) -> None:
        """What to say if the process must be ended before the command could say it."""
        self._report = report

    def report_once(self, report: Callable[[], object]) -> None:
        """Run ``report`` unless the watchdog (or an earlier call) already reported."""
        with self._lock:
            if self._installed and self._reported:
                return
            self._reported = True
        report()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.interrupted.is_set():
            return  # a second Ctrl-C (or a SIGTERM after it): the command is already stopping
        self.stopped_by = STOPS.get(signal.Signals(signum), Interrupted)
        self.interrupted.set()
        # The watchdog first: the callback may wait (for a progress write into a full pipe).
        threading.Thread(target=self._watchdog, name="interrupt-watchdog", daemon=True).start()
        self._on_interrupt()
        if not hold_if_starting(_raise_interrupt):  # else raised once the worker is recorded
            _raise_interrupt()

    def _watchdog(self) -> None:
        if self._finished.wait(self.grace):
            return
        self.report_once(self._report)
        self.end(self.exit_code)

    def finish(self, code: int) -> NoReturn:
        """End the process with ``code``: after an interrupt without joining threads that
        may be stuck in a request (nothing of theirs is needed any more), otherwise as
        usual, with later signals ignored so interpreter shutdown cannot print a traceback."""
        self._finished.set()
        if self.interrupted.is_set():
            self.end(code)
        elif self._installed:
            for signum in STOPS:
                signal.signal(signum, signal.SIG_IGN)
        sys.exit(code)  # reached only when ``end_process`` is a test's stand-in, or normally

    def end(self, code: int) -> None:
        """End the worker processes still registered, flush what was said, then end the
        process at once."""
        end_all()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say
                stream.flush()
        self._end_process(code)


def _nothing() -> None:
    return None


def _raise_interrupt() -> NoReturn:
    raise KeyboardInterrupt


#: The one guard of this process.
GUARD = InterruptGuard()
