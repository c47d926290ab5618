"""Keeping one process's manifest current: start-up load, last-known-good copy, refresh.

Start-up (:func:`initial_load`) reads the source once, synchronously, within an
overall deadline (:mod:`.deadline`; a refresh has its own). When that fails, the
last-known-good copy on local disk is served (a WARNING); with neither,
start-up fails with a :class:`ConfigError`, or, when the app allows it, starts
with no manifest (the CDN off) and logs an ERROR.

Afterwards :class:`ManifestRefresher` polls the source from one daemon thread per
process. Pre-fork servers (gunicorn) load the app in the parent and fork workers:
a thread does not survive a fork, so no thread is created at load time. The app
calls :meth:`ManifestRefresher.ensure_started` on first use; it records the
process id and starts a thread again whenever that id changed.

Requests never wait on the network: a refresh builds the new table off to the
side and hands it to ``apply``, which replaces one reference. An invalid
manifest (bad JSON, wrong version, keys outside the prefix, the wrong release)
is never applied; failures keep the current table, are logged once per streak
and retried with exponential backoff.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ManifestError, PipelineError
from ..localfs import write_atomic
from ..manifest import Manifest
from ..storage.base import NotModified
from .deadline import BoundedFetch
from .source import DEFAULT_REFRESH_DEADLINE, PINNED, Loaded, ManifestSource, SourceSettings

log = logging.getLogger(__name__)

#: Where the table being served came from.
FROM_SOURCE = "source"
FROM_LAST_GOOD = "last-known-good"
FROM_NOTHING = "none"

#: Backoff after failures doubles up to this many intervals, and never beyond the cap.
_BACKOFF_INTERVALS = 10
_BACKOFF_CAP_SECONDS = 300.0
#: How long ``stop`` waits for the thread (it may be inside one request).
_JOIN_SECONDS = 5.0

#: Guards thread creation; replaced in a forked child, where it may have been held.
_start_lock = threading.Lock()


def _new_start_lock() -> None:
    global _start_lock
    _start_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_start_lock)


@dataclass(frozen=True)
class RefreshStatus:
    """What one process serves and how fresh it is (for ``flask cdn status`` and health checks)."""

    mode: str
    source: str
    release: str | None
    files: int
    loaded_from: str
    refresh_seconds: float | None = None
    #: Last successful contact with the source (a full read or a 304).
    last_refresh: datetime | None = None
    #: When the table served now was put in place.
    last_change: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    #: Failed refreshes in a row (0 when the last one worked).
    failures: int = 0
    #: When the read of the source still running started (``None``: none is running).
    #: A read that overran its deadline and could not be cut off still counts.
    reading_since: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "source": self.source, "release": self.release,
            "files": self.files, "loaded_from": self.loaded_from,
            "refresh_seconds": self.refresh_seconds,
            "last_refresh": _iso(self.last_refresh), "last_change": _iso(self.last_change),
            "last_error": self.last_error, "last_error_at": _iso(self.last_error_at),
            "failures": self.failures, "reading_since": _iso(self.reading_since),
            "pid": os.getpid(),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def _now() -> datetime:
    return datetime.now(UTC)


# --- start-up ------------------------------------------------------------------------------


#: What start-up yields: the document loaded (or None: the CDN is off) and the status.
Start = tuple[Loaded | None, RefreshStatus]


def initial_load(source: ManifestSource, settings: SourceSettings, *,
                 fetcher: BoundedFetch | None = None) -> Start:
    """Load at start-up: the source, else the last-known-good copy, else fail or start off.

    The source gets ``settings.startup_deadline`` seconds in all: an app must start even
    when its source answers too slowly to be useful.
    """
    status = RefreshStatus(mode=source.mode, source=source.description, release=None, files=0,
                           loaded_from=FROM_NOTHING, refresh_seconds=settings.refresh_seconds)
    try:
        loaded = (fetcher or BoundedFetch(source)).fetch(None, seconds=settings.startup_deadline)
        assert isinstance(loaded, Loaded)  # an unconditional read is never a 304
    except PipelineError as exc:
        return _start_without_source(source, settings, status, exc)
    save_last_good(settings.last_good, loaded.data)
    now = _now()
    return loaded, replace(status, release=loaded.release_id, files=len(loaded.manifest),
                           loaded_from=FROM_SOURCE, last_refresh=now, last_change=now)


def _start_without_source(source: ManifestSource, settings: SourceSettings,
                          status: RefreshStatus, error: PipelineError) -> Start:
    now = _now()
    status = replace(status, last_error=str(error), last_error_at=now, failures=1)
    loaded, why = read_last_good(source, settings.last_good)
    if loaded is not None:
        log.warning("cannot load the CDN manifest (%s); serving release %s from the "
                    "last-known-good copy %s until the source is reachable",
                    error, loaded.release_id or "(no id)", settings.last_good)
        return loaded, replace(status, release=loaded.release_id, files=len(loaded.manifest),
                               loaded_from=FROM_LAST_GOOD, last_change=now)
    message = (f"cannot load the CDN manifest ({error}), and there is no usable "
               f"last-known-good copy ({why})")
    if settings.fallback_local:
        log.error("%s; CDN_FALLBACK_LOCAL is on: static URLs stay local until it loads", message)
        return None, status
    raise ConfigError(f"{message}: check CDN_MANIFEST and the credentials, or set "
                      "CDN_FALLBACK_LOCAL=True to start with local static URLs") from error


def read_last_good(source: ManifestSource, path: Path) -> tuple[Loaded | None, str]:
    """The last-known-good copy, validated as if the source had sent it, or why not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{str(path)!r}: {exc.strerror}"
    try:
        doc = source.validate(data, what=f"last-known-good copy {str(path)!r}")
    except ManifestError as exc:
        return None, str(exc)
    return Loaded(doc, None, data), ""


def save_last_good(path: Path, data: bytes) -> bool:
    """Write the copy atomically (several worker processes may write it at once)."""
    try:
        write_atomic(path, data, unique=True)
    except OSError as exc:
        log.warning("cannot write the last-known-good CDN manifest %s: %s", path, exc.strerror)
        return False
    return True


# --- refreshing ----------------------------------------------------------------------------


class ManifestRefresher:
    """Polls a source from one daemon thread per process and applies valid changes."""

    def __init__(
        self,
        source: ManifestSource,
        *,
        interval: float,
        last_good: Path,
        apply: Callable[[Manifest], None],
        current: Loaded | None,
        status: RefreshStatus,
        deadline: float = DEFAULT_REFRESH_DEADLINE,
        fetcher: BoundedFetch | None = None,
    ) -> None:
        self.source = source
        self.interval = interval
        #: Overall seconds one refresh may read for (see :mod:`.deadline`).
        self.deadline = deadline
        #: Shared with start-up, so a read that overran there blocks a second one here.
        self._fetcher = fetcher or BoundedFetch(source)
        #: The level the current failure streak was logged at (its end is logged at it too).
        self._streak_level = logging.WARNING
        self.last_good = last_good
        self._apply = apply
        self._current = current
        self._status = status
        self._owner_pid = 0  # the process whose thread runs (0: none started yet)
        self._thread: threading.Thread | None = None
        self._stop_event = threading.Event()
        self._closed = False
        self._at_exit_registered = False

    @property
    def status(self) -> RefreshStatus:
        return replace(self._status, reading_since=self._fetcher.in_flight_since)

    # -- thread lifecycle ---------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start this process's refresh thread if it has none (cheap when it has one)."""
        if self._owner_pid == os.getpid():
            return
        with _start_lock:
            pid = os.getpid()
            if self._owner_pid == pid or self._closed:
                return
            self._owner_pid = pid
            if self._finished():
                return  # pinned and loaded: the document can never change
            # A fresh event: one inherited through a fork may already be set.
            self._stop_event = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop_event,),
                                            name="cdn-manifest-refresh", daemon=True)
            self._thread.start()
            if not self._at_exit_registered:
                atexit.register(_stop_at_exit, weakref.ref(self))
                self._at_exit_registered = True

    def stop(self) -> None:
        """Stop this process's thread and wait for it; no thread is started afterwards."""
        self._closed = True
        self._stop_event.set()
        thread = self._thread
        if (thread is not None and self._owner_pid == os.getpid() and thread.is_alive()
                and thread is not threading.current_thread()):
            thread.join(_JOIN_SECONDS)

    @property
    def running(self) -> bool:
        thread = self._thread
        return bool(thread and self._owner_pid == os.getpid() and thread.is_alive())

    def _finished(self) -> bool:
        return self.source.mode == PINNED and self._current is not None

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.next_delay()):
            self.refresh_once()
            if self._finished():
                return

    def next_delay(self) -> float:
        """The interval, or after failures an exponential backoff with jitter.

        The jitter spreads a fleet's retries, so processes that failed together do
        not all hit the bucket in the same instant when it comes back.
        """
        failures = self._status.failures
        if failures == 0:
            return self.interval
        cap = min(self.interval * _BACKOFF_INTERVALS, max(self.interval, _BACKOFF_CAP_SECONDS))
        delay = min(self.interval * 2.0 ** min(failures - 1, 30), cap)
        return delay * random.uniform(0.75, 1.0)

    # -- one refresh --------------------------------------------------------------------------

    def refresh_once(self) -> bool:
        """Ask the source once; apply a valid change. False when the refresh failed."""
        current = self._current
        try:
            result = self._fetcher.fetch(current.etag if current else None,
                                         seconds=self.deadline)
        except Exception as exc:
            self._failed(exc)
            return False
        if isinstance(result, NotModified):
            self._note_recovery()
            self._status = replace(self._status, last_refresh=_now(), failures=0)
        else:
            self._swap(result)
        return True

    def _swap(self, loaded: Loaded) -> None:
        previous = self._current.release_id if self._current else None
        self._apply(loaded.manifest)  # one reference replaced: requests never wait
        self._current = loaded
        self._note_recovery()
        now = _now()
        self._status = replace(self._status, release=loaded.release_id, files=len(loaded.manifest),
                               loaded_from=FROM_SOURCE, last_refresh=now, last_change=now,
                               failures=0)
        save_last_good(self.last_good, loaded.data)  # after the swap: the fsync takes a while
        if loaded.release_id != previous:
            log.info("CDN manifest: now serving release %s (was %s) from %s",
                     loaded.release_id or "(no id)", previous or "none", self.source.description)

    def _note_recovery(self) -> None:
        # At the streak's own level: a WARNING without its all-clear at the same level
        # would look, to an alert on WARNING and above, like an outage that never ended.
        if self._status.failures:
            log.log(self._streak_level, "CDN manifest source %s is readable again after %d "
                    "failed refresh(es)", self.source.description, self._status.failures)

    def _failed(self, exc: Exception) -> None:
        status = self._status
        message = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
        if status.failures == 0:  # once per streak: a long outage is one line, not thousands
            level = logging.ERROR if isinstance(exc, ManifestError) else logging.WARNING
            self._streak_level = level
            log.log(level, "CDN manifest refresh failed (%s); keeping release %s and retrying "
                    "with backoff", message, status.release or "none")
        self._status = replace(status, last_error=message, last_error_at=_now(),
                               failures=status.failures + 1)


def _stop_at_exit(ref: weakref.ReferenceType[ManifestRefresher]) -> None:
    refresher = ref()
    if refresher is not None:
        refresher.stop()
