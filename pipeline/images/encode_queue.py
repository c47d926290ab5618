"""A bounded background worker for work an upload asks for but must not wait for.

Why: encoding the variants of one 16-megapixel upload takes seconds to tens of seconds of CPU
(a 4000x4000 PNG: 19 s). Done inside the request it holds a server thread that long, and a few
uploads at once take every thread. The request stores the original and hands the encode to
this worker; the page shows the original until the variants exist.

Bounded three ways, so uploads cannot queue unbounded CPU: ``workers`` threads at most (one by
default: encodes run one after another, the rest of the machine keeps serving), at most
``max_pending`` jobs waiting (beyond that :class:`QueueFull`, HTTP 503 with ``Retry-After``),
and at most ``per_owner`` jobs waiting or running per owner, e.g. per user
(:class:`OwnerBusy`, HTTP 429), so one user cannot fill the queue for everyone.

Framework-neutral and in memory, per process: threads start when there is work and end when
there is none (an idle app holds no thread). A process that exits drops what is still waiting
(:func:`shutdown_all` runs at exit and lets only the running jobs finish); a job lost that way
leaves the original shown without variants. Apps that run many processes hand the work to a
real job queue instead (RQ, Celery): see the README's "Uploads" section.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable

from ..errors import PipelineError

log = logging.getLogger(__name__)

#: Seconds a refused client is told to wait: about one encode of a large upload.
DEFAULT_RETRY_AFTER = 30


class EncodeRefused(PipelineError):
    """The work was not accepted; ``status`` and ``retry_after`` are what to answer."""

    status = 503

    def __init__(self, message: str, *, retry_after: int = DEFAULT_RETRY_AFTER) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(EncodeRefused):
    """Too much work is waiting in this process (or the worker is shut down)."""

    status = 503


class OwnerBusy(EncodeRefused):
    """This owner already has as much work waiting or running as one owner may."""

    status = 429


class EncodeWorker:
    """Runs submitted jobs on at most ``workers`` background threads, bounded as above."""

    def __init__(self, *, workers: int = 1, max_pending: int = 8, per_owner: int = 2,
                 retry_after: int = DEFAULT_RETRY_AFTER) -> None:
        if workers < 1 or max_pending < 0 or per_owner < 1:
            raise ValueError("workers and per_owner must be >= 1, max_pending >= 0")
        self.workers, self.max_pending, self.per_owner = workers, max_pending, per_owner
        self.retry_after = retry_after
        self._waiting: deque[tuple[str, Callable[[], object]]] = deque()
        self._by_owner: dict[str, int] = {}  # waiting + running, per owner
        self._threads: set[threading.Thread] = set()
        self._busy = 0  # jobs running now
        self._closed = False
        self._changed = threading.Condition()
        _LIVE.add(self)

    def submit(self, job: Callable[[], object], *, owner: str) -> None:
        """Queue ``job`` for ``owner`` or raise :class:`QueueFull` / :class:`OwnerBusy`."""
        with self._changed:
            if self._closed:
                raise QueueFull("the encoder is shutting down", retry_after=self.retry_after)
            if self._by_owner.get(owner, 0) >= self.per_owner:
                raise OwnerBusy(f"{self.per_owner} of your uploads are still being processed",
                                retry_after=self.retry_after)
            if len(self._waiting) >= self.max_pending:
                raise QueueFull("too many uploads are being processed",
                                retry_after=self.retry_after)
            self._waiting.append((owner, job))
            self._by_owner[owner] = self._by_owner.get(owner, 0) + 1
            if len(self._threads) < self.workers and len(self._threads) - self._busy < len(
                    self._waiting):
                thread = threading.Thread(target=self._run, name="upload-encoder", daemon=True)
                self._threads.add(thread)
                thread.start()

    def pending(self, owner: str | None = None) -> int:
        """Jobs waiting or running (of ``owner``, or of everyone)."""
        with self._changed:
            if owner is not None:
                return self._by_owner.get(owner, 0)
            return len(self._waiting) + self._busy

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is waiting or running; ``False`` if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._waiting and not self._busy,
                                          timeout=timeout)

    def shutdown(self, *, cancel_pending: bool = True, timeout: float | None = None) -> None:
        """Refuse new work, drop (or with ``cancel_pending=False`` finish) what waits, and
        wait for the running jobs, so no encode is cut off half-way."""
        with self._changed:
            self._closed = True
            if cancel_pending:
                for owner, _ in self._waiting:
                    self._release(owner)
                self._waiting.clear()
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._changed:
                if not self._waiting:
                    self._threads.discard(threading.current_thread())
                    self._changed.notify_all()
                    return
                owner, job = self._waiting.popleft()
                self._busy += 1
            try:
                job()
            except Exception:  # one bad image must not stop the worker or lose the others
                log.exception("upload encoder: a job failed")
            finally:
                with self._changed:
                    self._busy -= 1
                    self._release(owner)
                    self._changed.notify_all()

    def _release(self, owner: str) -> None:
        left = self._by_owner.get(owner, 0) - 1
        if left > 0:
            self._by_owner[owner] = left
        else:
            self._by_owner.pop(owner, None)


#: Every worker not yet collected, so the process can stop them cleanly at exit.
_LIVE: weakref.WeakSet[EncodeWorker] = weakref.WeakSet()


@atexit.register
def shutdown_all() -> None:
    """At exit: drop waiting jobs and let the running ones finish writing (their threads are
    daemons, so without this the interpreter would stop them mid-write)."""
    for worker in list(_LIVE):
        worker.shutdown(cancel_pending=True)
