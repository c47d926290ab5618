"""Login state for the demo site, in memory: failed-login throttling and logout.

Plain Python (no Flask), so the rules are tested without requests. Both are per
process: every worker process counts on its own and a restart forgets everything,
which is fine for a demo and documented in the README; a real application keeps
this state with its user records or in a shared store.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class LoginThrottle:
    """Failed logins per account and per client address, with exponential backoff.

    After ``free`` failures a key is blocked for ``base_delay`` seconds, doubling with
    each further failure (one try is allowed each time a block ends) up to
    ``max_delay``; a key quiet for ``forget_after`` seconds starts afresh. Addresses get
    more free attempts than accounts, because many users may share one address (NAT,
    a proxy). A blocked attempt is refused without the password being checked, so it
    tells the client nothing.

    The check of the password runs under the throttle's lock, together with the
    bookkeeping: parallel guesses cannot all pass the "is it blocked?" test before the
    first failure is counted. (The check is two SHA-256 digests: serialising it costs
    microseconds.)

    In memory, per process: every worker process counts on its own and a restart
    forgets everything. At most ``max_entries`` keys are kept (least recently failed
    dropped first), so a flood of names or addresses cannot exhaust memory.
    """

    def __init__(
        self,
        *,
        free_per_account: int = 5,
        free_per_address: int = 20,
        base_delay: float = 1.0,
        max_delay: float = 900.0,
        forget_after: float = 3600.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = {"account": free_per_account, "address": free_per_address}
        self.base_delay, self.max_delay, self.forget_after = base_delay, max_delay, forget_after
        self.max_entries = max_entries
        self.clock = clock
        #: (kind, value) -> (failures, blocked until, last failure)
        self._entries: OrderedDict[tuple[str, str], tuple[int, float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(username: str, address: str | None) -> list[tuple[str, str]]:
        return [("account", username.casefold()[:256]), ("address", client_network(address))]

    def attempt(self, keys: list[tuple[str, str]], verify: Callable[[], bool]) -> tuple[bool, int]:
        """``(verified, retry_after)``: when any key is blocked, ``verify`` is not called
        and ``retry_after`` is the whole seconds to wait; otherwise it is 0 and the
        outcome is counted. A success clears the account; the address keeps its count,
        or one valid account would let its owner guess others' passwords without limit.
        """
        with self._lock:
            now = self.clock()
            wait = max(self._entry(key, now)[1] - now for key in keys)
            if wait > 0:
                return False, math.ceil(wait)
            if verify():
                self._entries.pop(keys[0], None)
                return True, 0
            for key in keys:
                self._count_failure(key, now)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return False, 0

    def _count_failure(self, key: tuple[str, str], now: float) -> None:
        failures = self._entry(key, now)[0] + 1
        over = failures - self.free[key[0]]  # 0 at the last free failure: base_delay
        delay = min(self.max_delay, self.base_delay * 2 ** over) if over >= 0 else 0
        self._entries[key] = (failures, now + delay, now)
        self._entries.move_to_end(key)

    def _entry(self, key: tuple[str, str], now: float) -> tuple[int, float, float]:
        entry = self._entries.get(key)
        if entry is None or now - entry[2] > self.forget_after:
            return (0, 0.0, now)
        return entry


class SessionGenerations:
    """Per-user session generation: logging out bumps it, and every session cookie
    issued before (on any device) stops working although its signature is still valid.

    In memory, per process, like :class:`LoginThrottle`: a logout is not seen by other
    worker processes, and a restart revives cookies from before it (until they expire).
    A real application keeps the generation with the user record.
    """

    def __init__(self) -> None:
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def current(self, user: str) -> int:
        return self._generations.get(user, 0)

    def end_sessions(self, user: str) -> None:
        with self._lock:
            self._generations[user] = self.current(user) + 1


def client_network(address: str | None) -> str:
    """What one client controls: an IPv4 address, or an IPv6 /64 (the usual smallest
    allocation, so rotating addresses inside it does not reset the count)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
