"""An overall deadline for one read of the manifest source, and which read is in flight.

Socket timeouts bound each operation, never a whole response: a source that trickles
its body (one byte every two seconds) would hold start-up, or the refresher, forever.
:class:`BoundedFetch` runs each :meth:`ManifestSource.fetch` on a short-lived worker
thread and waits for it at most ``seconds``; past that the caller gets a
:class:`SourceError` (start-up then falls back to the last-known-good copy, a refresh
counts a failure) and the source's ``abort`` (an HTTP source: shut its sockets) ends
the worker.

A source without ``abort`` (an ``s3://`` bucket: botocore hides its sockets) leaves the
overrun read running until botocore or the server ends it. Only one read runs at a
time: the next fetch first waits (within its own deadline) for such a read to end, and
fails if it does not, instead of starting a second, so a stuck source costs one thread,
never one per refresh.
:attr:`BoundedFetch.in_flight_since` says since when, for ``flask cdn status``.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

from ..errors import SourceError
from ..storage.base import NotModified
from .source import Loaded, ManifestSource

#: How long an aborted read may take to notice (its blocked recv returns at once).
_ABORT_GRACE = 2.0


class _Read:
    """One read on its worker thread: the result or the error, once it ends."""

    def __init__(self, source: ManifestSource, etag: str | None) -> None:
        self.since = datetime.now(UTC)
        self.result: Loaded | NotModified | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(source, etag),
                                       name="cdn-manifest-read", daemon=True)

    def _run(self, source: ManifestSource, etag: str | None) -> None:
        try:
            self.result = source.fetch(etag)
        except BaseException as exc:  # handed to the waiting thread, which raises it
            self.error = exc


class BoundedFetch:
    """``source.fetch`` with an overall deadline, one read at a time."""

    def __init__(self, source: ManifestSource) -> None:
        self.source = source
        self._read: _Read | None = None
        self._lock = threading.Lock()

    @property
    def in_flight_since(self) -> datetime | None:
        """When the read still running started (``None``: no read is running).

        A worker thread does not survive a fork, so a child never sees its parent's read
        as running.
        """
        read = self._read
        return read.since if read is not None and read.thread.is_alive() else None

    def fetch(self, etag: str | None, *, seconds: float) -> Loaded | NotModified:
        """What ``source.fetch(etag)`` returns or raises, if it ends within ``seconds``."""
        with self._lock:
            self._wait_for_previous(seconds)
            read = self._read = _Read(self.source, etag)
            read.thread.start()
        read.thread.join(seconds)
        if read.thread.is_alive():
            abort: Any = getattr(self.source, "abort", None)
            if abort is not None:
                abort()
                read.thread.join(_ABORT_GRACE)  # so the next fetch does not find it running
            raise SourceError(f"cannot read {self.source.description}: no complete answer "
                              f"within {seconds:g} s (a slow or stalled source)")
        if read.error is not None:
            raise read.error
        assert read.result is not None
        return read.result

    def _wait_for_previous(self, seconds: float) -> None:
        """Let a read that overran an earlier deadline end first (up to ``seconds``), so a
        source that was only slow is read again, and a stuck one never gets a second read."""
        previous = self._read
        if previous is None or not previous.thread.is_alive():
            return
        previous.thread.join(seconds)
        if previous.thread.is_alive():
            raise SourceError(f"cannot read {self.source.description}: the read started at "
                              f"{previous.since.isoformat(timespec='seconds')} is still running")
