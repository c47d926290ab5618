"""Uploads that start while the deploy is still hashing.

A deploy that hashed every file, then planned, then uploaded made the uploads, its long
part, wait for everything before them. When files must be read, the deploy lists the
bucket first; then each file stored as it is (:func:`pipeline.build.assemble.is_verbatim`)
is queued for upload the moment its hash is known, if the listing lacks its key. CSS, JS
and source maps, whose bytes or names depend on other files, follow once the build is done,
through the same queue and workers. The queue is bounded, so the hashing waits for the
uploads rather than piling up work, and memory stays flat for any number of files.

Nothing about publishing changes: the manifest is written only after every object it
names is confirmed. What the build refuses without hashes (a broken CSS reference, an
over-long key) is checked before the listing, so bad input still uploads nothing.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from types import TracebackType

from ..build.assemble import is_verbatim, verbatim_entry
from ..localfs import LocalFile
from ..storage.base import ProgressCallback, RemoteObject, Storage, Upload, UploadOutcome
from .plan import already_stored, entry_upload

#: Uploads waiting in the feed at most; the hashing blocks while it is full. An upload
#: waiting is a key and a path (~300 bytes), so hashing may run well ahead of the uploads
#: (fewer hand-offs between threads) while memory stays bounded.
FEED_LIMIT = 1024


class UploadsStopped(Exception):
    """Raised into the storage's upload loop when the deploy stops the feed."""


class UploadFeed:
    """A bounded queue of uploads, read as an iterable by a storage's ``upload_files`` in
    another thread while the deploy still fills it.

    :meth:`end` says nothing more comes (iteration ends once the queue is empty);
    :meth:`stop` ends it at once, dropping what waits and refusing further puts. Two
    conditions on one lock (as in :class:`queue.Queue`): a put wakes the reader only,
    a take wakes one waiting writer only, so no thread is woken for nothing.
    """

    def __init__(self, limit: int = FEED_LIMIT) -> None:
        self._items: deque[Upload] = deque()
        self._limit = limit
        lock = threading.Lock()
        self._not_full = threading.Condition(lock)
        self._not_empty = threading.Condition(lock)
        self._ended = False
        self._stopped = False

    def put(self, upload: Upload) -> bool:
        """Queue ``upload``, waiting while the feed is full; ``False`` once stopped."""
        with self._not_full:
            while len(self._items) >= self._limit and not self._stopped:
                self._not_full.wait()
            if self._stopped:
                return False
            self._items.append(upload)
            self._not_empty.notify()
            return True

    def end(self) -> None:
        with self._not_empty:
            self._ended = True
            self._not_empty.notify_all()

    def stop(self) -> None:
        with self._not_empty:
            self._stopped = True
            self._items.clear()
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def __iter__(self) -> Iterator[Upload]:
        """Uploads in order until :meth:`end`; raises :class:`UploadsStopped` after
        :meth:`stop`, so the storage drops what it has not started (a Ctrl-C)."""
        while True:
            with self._not_empty:
                while not self._items and not (self._ended or self._stopped):
                    self._not_empty.wait()
                if self._stopped:
                    raise UploadsStopped("the deploy stopped its uploads")
                if not self._items:
                    return
                upload = self._items.popleft()
                self._not_full.notify()
            yield upload


class EarlyUploads:
    """Uploads of one deploy, begun while it hashes; a context manager that waits for its
    uploads to end (on an error, only those already in flight finish; on Ctrl-C, none).

    ``offer`` is the build's ``on_hashed`` callback; ``finish`` queues what the plan adds
    and returns the outcome of every upload.
    """

    def __init__(self, storage: Storage, prefix: str, listing: Mapping[str, RemoteObject],
                 *, known_etags: Mapping[str, str], on_stored: ProgressCallback,
                 before_first: Callable[[], None] = lambda: None,
                 keep: Collection[str] = frozenset()) -> None:
        self._before_first = before_first
        #: Files named by content already (Vite's): their key is their name.
        self._keep = keep
        self._prefix = prefix
        self._listing = listing
        self._known = known_etags
        self._feed = UploadFeed()
        self._lock = threading.Lock()
        #: Every upload queued, by key (each key once).
        self.queued: dict[str, Upload] = {}
        self._outcome = UploadOutcome()
        self._crash: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(storage, on_stored), name="early-uploads", daemon=True)
        self._thread.start()

    def _run(self, storage: Storage, on_stored: ProgressCallback) -> None:
        try:
            self._outcome = storage.upload_files(self._checked_first(), on_stored=on_stored)
        except UploadsStopped:
            pass  # the deploy is failing or interrupted already: it reports that
        except BaseException as exc:  # re-raised in the deploy's thread by finish()
            self._crash = exc
            self._feed.stop()  # producers must not wait on a feed nobody reads

    def _checked_first(self) -> Iterator[Upload]:
        """The feed, with ``before_first`` run (e.g. the conditional-write probe, which
        refuses a server) before the first upload and only if there is one."""
        checked = False
        for upload in self._feed:
            if not checked:
                self._before_first()
                checked = True
            yield upload

    def offer(self, item: LocalFile, sha256_hex: str) -> None:
        """Queue ``item`` if it is stored as it is and the listing lacks its object."""
        if not is_verbatim(item.logical_path):
            return
        entry = verbatim_entry(self._prefix, item, sha256_hex,
                               named=item.logical_path in self._keep)
        if already_stored(self._listing, entry, self._known):
            return
        self.queue([entry_upload(entry, item)])

    def queue(self, uploads: Iterable[Upload]) -> None:
        """Queue each upload whose key is not queued yet."""
        for upload in uploads:
            with self._lock:
                if upload.key in self.queued:
                    continue
                self.queued[upload.key] = upload
            if not self._feed.put(upload):
                return  # the uploads stopped (a failure): finish() reports it

    def finish(self, uploads: Iterable[Upload] = ()) -> UploadOutcome:
        """Queue ``uploads`` too, wait for every upload to end, and return the outcome."""
        self.queue(uploads)
        self._feed.end()
        self._thread.join()
        if self._crash is not None:
            raise self._crash
        return self._outcome

    def __enter__(self) -> EarlyUploads:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is not None:
            self._feed.stop()
        self._feed.end()
        if kind is not None and not issubclass(kind, Exception):
            return  # Ctrl-C: the process is ending; wait for no request (the thread is a daemon)
        self._thread.join()
