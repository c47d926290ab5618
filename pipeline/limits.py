"""Ranges of the transfer settings, shared by the CLI's validation and the storage settings.

A leaf module (no storage import), so ``deploy.py --help`` can show and check them
without loading the storage layer.
"""

from __future__ import annotations

#: Concurrent requests a backend may run (``--workers``), and its default.
WORKERS_RANGE = (1, 64)
DEFAULT_WORKERS = 16
#: Tries per request before giving up (``--max-attempts``; botocore's "standard" mode:
#: jittered exponential backoff, 20 s cap), and its default.
ATTEMPTS_RANGE = (1, 20)
DEFAULT_MAX_ATTEMPTS = 6
