"""Encode many sources on every core: a process pool with a bounded number of sources in flight.

Processes, not threads: encoders hold the GIL for parts of their work and a crash in a codec
should not take the deploy with it. Workers are started with ``spawn`` so they never inherit the
parent's threads (boto3's pools, libvips' own) in a half-copied state, as ``fork`` would.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ..localfs import StrPath
from .variant_codec import EncodeResult, encode_source, limit_threads
from .variants import VariantSettings, VariantSpec


@dataclass(frozen=True)
class EncodeJob:
    """One source to encode into the given (planned, missing) variants."""

    path: StrPath
    specs: tuple[VariantSpec, ...]
    #: Make the source's placeholder in the same job.
    placeholder: bool = False


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
    workers = workers or default_workers()
    limit = max(1, max_in_flight or 2 * workers)
    results: list[EncodeResult] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=limit_threads) as pool:
        pending: set[Future[EncodeResult]] = set()
        try:
            for future in _bounded(pool, iter(jobs), pending, limit, settings, out_dir):
                result = future.result()
                results.append(result)
                if progress is not None:
                    progress(result)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return results


def _bounded(pool: ProcessPoolExecutor, jobs: Iterator[EncodeJob],
             pending: set[Future[EncodeResult]], limit: int, settings: VariantSettings,
             out_dir: Path) -> Iterator[Future[EncodeResult]]:
    """Keep up to ``limit`` jobs submitted; yield each future as it completes."""
    exhausted = False
    while True:
        while not exhausted and len(pending) < limit:
            job = next(jobs, None)
            if job is None:
                exhausted = True
                break
            pending.add(pool.submit(encode_source, job.path, job.specs, settings,
                                    out_dir=out_dir, placeholder=job.placeholder))
        if not pending:
            return
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            pending.discard(future)
            yield future
