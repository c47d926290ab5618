"""Child processes this process must end on every exit path, the moments a stop signal must
wait for, and the modules worth loading once for all of them.

A leaf, so that the code that starts processes (:mod:`pipeline.build.variant_pool`) and the
code that ends the process (:mod:`pipeline.cli.interrupt`, which may ``os._exit`` without
unwinding) meet without importing each other. Why a registry at all: encoding workers are
forked by multiprocessing's fork server, so they are its children, not ours; when this process
ends without killing them (a watchdog's ``os._exit``, a SIGTERM), nothing else does, and a
worker in the middle of a large AVIF encode would keep a CI runner's cores busy after the job
was cancelled.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import site
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from importlib.machinery import PathFinder
from pathlib import Path
from typing import NoReturn

_lock = threading.Lock()
_enders: dict[int, Callable[[], object]] = {}
_tokens = itertools.count()

#: Modules a fork server should import before forking workers, beyond the ones the pool
#: itself needs: the entry point's module, which every worker would otherwise import again
#: (multiprocessing re-runs the main script of a ``cdn-deploy``/``deploy.py`` process in each
#: child to find ``__main__``'s names, and that script imports the whole CLI).
_preload: list[str] = []


class _Starting:
    """Whether the main thread is starting a process, and what a signal left to do after."""

    def __init__(self) -> None:
        self.depth = 0
        self.held: list[Callable[[], object]] = []


_starting = _Starting()


@contextlib.contextmanager
def starting_processes() -> Iterator[None]:
    """Within the block (main thread only), a stop signal's exception waits for its end.

    A pool starts a worker inside ``submit`` and records it only after the start returns; a
    ``KeyboardInterrupt`` raised in between (Ctrl-C, SIGTERM) would leave a worker nobody
    knows to kill, which then fails to read its start-up data once the pool is gone and
    prints a traceback. The signal's handler calls :func:`hold_if_starting` and the block's
    end raises for it, once the worker is recorded.

    Processes started here begin with SIGINT blocked, and keep it so: the terminal's Ctrl-C
    goes to the whole process group, and only this process should act on it (by killing
    them). A fork server would otherwise take it while importing its preload, before it
    ignores SIGINT itself, and print a ``KeyboardInterrupt`` traceback, as would a worker
    inside a libvips callback. Here the signal stays pending until the block ends."""
    _starting.depth += 1
    blocked = _block_sigint()
    try:
        yield
    finally:
        _unblock_sigint(blocked)
        _starting.depth -= 1
        if not _starting.depth and _starting.held:
            act = _starting.held[0]
            _starting.held.clear()
            act()


def _block_sigint() -> bool:
    """Block SIGINT in this thread (children inherit the mask); ``False`` where the platform
    has no signal masks (Windows) or it was blocked already."""
    if not hasattr(signal, "pthread_sigmask"):
        return False
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    return signal.SIGINT not in before


def _unblock_sigint(blocked: bool) -> None:
    if blocked:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def hold_if_starting(act: Callable[[], object]) -> bool:
    """Keep ``act`` (which raises) for the end of :func:`starting_processes` if one is under
    way and say so; ``False``: the caller acts now."""
    if not _starting.depth:
        return False
    _starting.held.append(act)
    return True


@contextlib.contextmanager
def ended_on_exit(end: Callable[[], object]) -> Iterator[None]:
    """Within the block, :func:`end_all` calls ``end`` (which kills some processes)."""
    with _lock:
        token = next(_tokens)
        _enders[token] = end
    try:
        yield
    finally:
        with _lock:
            _enders.pop(token, None)


def end_all() -> None:
    """End every registered group of processes now (the process is about to exit). Never
    raises: it runs on the way out, where a failure would only hide the real reason."""
    with _lock:
        enders = list(_enders.values())
    for end in enders:
        with contextlib.suppress(Exception):
            end()


def exit_now(code: int) -> NoReturn:
    """``os._exit(code)``, but first remove multiprocessing's ``pymp-*`` temp folder (it holds
    the fork server's socket): multiprocessing removes it at interpreter exit, which
    ``os._exit`` skips, and every interrupted run left one behind. Only here, on the way
    out: the fork server of a process that goes on keeps using it."""
    util = sys.modules.get("multiprocessing.util")  # not loaded: there is no such folder
    if util is not None:
        with contextlib.suppress(Exception):
            shutil.rmtree(util.get_temp_dir(), ignore_errors=True)  # made if absent, removed
    os._exit(code)


def preload_in_workers(module: str) -> None:
    """Ask future fork servers to import ``module`` once for all their workers."""
    if module not in _preload:
        _preload.append(module)


def worker_preload(modules: Sequence[str]) -> list[str]:
    """``modules`` of this package and those registered with :func:`preload_in_workers`, if a
    fork server would import them from this copy of the package; otherwise none.

    Python 3.11's fork server does not take its parent's ``sys.path`` (it passes it, and
    ignores it): it has a fresh ``python -c``'s, the working directory, ``PYTHONPATH`` and
    site-packages. There it could find another copy of ``pipeline`` (an installed release
    while a checkout's ``deploy.py`` runs), and workers forked from it would encode with that
    copy's code. Not preloading costs time only: each worker then imports the package from
    its parent's path, as multiprocessing sets it."""
    ours = Path(__file__).resolve().parent / "__init__.py"
    path = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
            *site.getsitepackages(), site.getusersitepackages()]
    spec = PathFinder.find_spec(__name__.partition(".")[0], path)
    found = spec.origin if spec is not None else None
    if found is None or Path(found).resolve() != ours:
        return []
    return [*modules, *_preload]
