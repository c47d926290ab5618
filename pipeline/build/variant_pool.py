"""Encode many sources on every core: a process pool with a bounded number of sources in flight.

Processes, not threads: encoders hold the GIL for parts of their work and a crash in a codec
should not take the deploy with it. Workers come from multiprocessing's fork server: a fresh,
single-threaded interpreter started once per pool user, which imports libvips (and this
package's encoder) once and forks each worker from there. So no worker inherits the parent's
threads (boto3's pools) in a half-copied state, as a plain ``fork`` would, and no worker pays
for its own interpreter start and imports, as with ``spawn`` (about 0.14 s of CPU per worker
here, half of it the interpreter; the fork server pays that once, so the saving grows with
the workers, and every CI shard paid it again). Importing pyvips starts no thread, so forking
after it is safe.

The workers are children of the fork server, not of this process: they are registered with
:func:`pipeline.processes.ended_on_exit` while the pool runs and killed on every way out
(deadline, failure, Ctrl-C, SIGTERM), never left encoding for a process that is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path

from ..localfs import StrPath
from ..processes import ended_on_exit, starting_processes, worker_preload
from .variant_codec import EncodeResult, encode_source, limit_threads
from .variants import VariantSettings, VariantSpec

#: What the fork server imports before forking: libvips, found alike by any interpreter of
#: this environment, and the encoder where the fork server finds this copy of the package.
THIRD_PARTY_PRELOAD = ("pyvips",)
CODEC_MODULE = "pipeline.build.variant_codec"


@dataclass(frozen=True)
class EncodeJob:
    """One source to encode into the given (planned, missing) variants."""

    path: StrPath
    specs: tuple[VariantSpec, ...]
    #: Make the source's placeholder in the same job.
    placeholder: bool = False


@dataclass(frozen=True)
class Encoded:
    """What :func:`encode_within` finished, and the jobs it stopped when the deadline came."""

    results: tuple[EncodeResult, ...]
    #: Jobs running at the deadline, whose workers were killed: each may have left some of
    #: its variants (complete: every file is renamed into place) and temporary files.
    abandoned: tuple[EncodeJob, ...] = ()


def default_workers() -> int:
    """The cores this process may use (cgroup/affinity aware where the OS tells)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def encode_many(jobs: Iterable[EncodeJob], *, settings: VariantSettings, out_dir: Path,
                workers: int | None = None, max_in_flight: int | None = None,
                progress: Callable[[EncodeResult], None] | None = None) -> list[EncodeResult]:
    """Encode every job into ``out_dir`` and return the results in completion order.

    At most ``max_in_flight`` sources (default twice the workers) are submitted at once, so
    memory stays bounded by a few decoded images however many files there are. ``progress`` is
    called in this process after each source. The first failure cancels what has not started and
    is raised (an :class:`~pipeline.errors.ImageSourceError` names the file)."""
    return list(encode_within(jobs, settings=settings, out_dir=out_dir, deadline=None,
                              workers=workers, max_in_flight=max_in_flight,
                              progress=progress).results)


def encode_within(jobs: Iterable[EncodeJob], *, settings: VariantSettings, out_dir: Path,
                  deadline: float | None, workers: int | None = None,
                  max_in_flight: int | None = None,
                  progress: Callable[[EncodeResult], None] | None = None) -> Encoded:
    """:func:`encode_many` that stops at ``deadline`` (a ``time.monotonic()`` value; ``None``:
    never): no job starts after it, and the workers of jobs still running are killed, so
    encoding never outlasts the deadline by more than the time a kill takes, whatever the size
    of the image in flight. No pool at all for no jobs, and never more workers than jobs."""
    todo = tuple(jobs)
    if not todo:
        return Encoded(())
    workers = min(workers or default_workers(), len(todo))
    limit = max(1, max_in_flight or 2 * workers)
    results: list[EncodeResult] = []
    pending: dict[Future[EncodeResult], EncodeJob] = {}
    pool = _start_pool(workers)
    with ended_on_exit(lambda: _kill_workers(pool)):
        try:
            for future in _bounded(pool, iter(todo), pending, limit, settings, out_dir,
                                   deadline):
                result = future.result()
                results.append(result)
                if progress is not None:
                    progress(result)
        except BaseException:
            # A failure, Ctrl-C or SIGTERM: the jobs still running are of no use any more.
            _stop(pool, pending, out_dir)
            raise
        abandoned = tuple(pending.values())
        _stop(pool, pending, out_dir)
    return Encoded(tuple(results), abandoned)


def _start_pool(workers: int) -> ProcessPoolExecutor:
    """A pool whose workers are forked by a fork server that imported libvips once (``spawn``
    where the platform has no fork server: Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        context: multiprocessing.context.BaseContext = multiprocessing.get_context("spawn")
    else:
        forkserver = multiprocessing.get_context("forkserver")
        # Only read when the fork server starts (once per process): later pools reuse it.
        forkserver.set_forkserver_preload([*THIRD_PARTY_PRELOAD, *worker_preload([CODEC_MODULE])])
        context = forkserver
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=limit_threads)


def _stop(pool: ProcessPoolExecutor, pending: dict[Future[EncodeResult], EncodeJob],
          out_dir: Path) -> None:
    """Shut the pool down; jobs still pending are cancelled, their workers killed and their
    temporary files removed."""
    for future in pending:
        future.cancel()
    if pending:
        _kill_workers(pool)
    pool.shutdown(wait=True, cancel_futures=True)
    _remove_temporaries(out_dir, pending.values())


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's processes: a running job cannot be cancelled, and a codec call does not
    return to Python until it is done, so a SIGTERM handled in Python would wait for it.
    ``_processes`` is private, but the only handle on them before Python 3.14's
    ``kill_workers()``."""
    kill = getattr(pool, "kill_workers", None)
    if kill is not None:
        kill()
        return
    processes: dict[int, BaseProcess] = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        process.kill()


def _remove_temporaries(out_dir: Path, jobs: Iterable[EncodeJob]) -> None:
    """Delete the temporary files killed workers were writing (``.<name>.<random>.tmp`` beside
    each variant, see :func:`pipeline.atomic.replacing`); only those of these jobs' keys, as
    another process (the development route) may be writing into the same folder."""
    for job in jobs:
        for spec in job.specs:
            target = out_dir / spec.key
            for leftover in target.parent.glob(f".{target.name}.*.tmp"):
                leftover.unlink(missing_ok=True)


def _bounded(pool: ProcessPoolExecutor, jobs: Iterator[EncodeJob],
             pending: dict[Future[EncodeResult], EncodeJob], limit: int,
             settings: VariantSettings, out_dir: Path,
             deadline: float | None) -> Iterator[Future[EncodeResult]]:
    """Keep up to ``limit`` jobs submitted; yield each future as it completes; return at the
    deadline, leaving the jobs still running in ``pending``."""
    exhausted = False
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        while not exhausted and len(pending) < limit:
            job = next(jobs, None)
            if job is None:
                exhausted = True
                break
            with starting_processes():  # a submit may start a worker: record it first
                pending[pool.submit(encode_source, job.path, job.specs, settings,
                                    out_dir=out_dir, placeholder=job.placeholder)] = job
        if not pending:
            return
        done, _ = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
        for future in done:
            del pending[future]
            yield future
