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
from dataclasses import dataclass


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

    Memory is bounded without letting a flood buy guesses: accounts and addresses are
    kept in two tables of their own (``max_accounts``, ``max_addresses``), so names
    cannot push addresses out or the other way round, and a key that has used up its
    free failures (in backoff) is never evicted, only forgotten once quiet: flushing a
    blocked account with failures under other names does not reset it. When a table
    holds only such keys, a try with a new key is refused like a blocked one (fail
    closed) until the oldest is forgotten: a flood can delay newcomers' logins, never
    reopen guessing. In memory, per process: every worker process counts on its own and
    a restart forgets everything.
    """

    def __init__(
        self,
        *,
        free_per_account: int = 5,
        free_per_address: int = 20,
        base_delay: float = 1.0,
        max_delay: float = 900.0,
        forget_after: float = 3600.0,
        max_accounts: int = 10_000,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_delay, self.max_delay = base_delay, max_delay
        self.clock = clock
        self._tables = {
            "account": FailureTable(free=free_per_account, capacity=max_accounts,
                                    forget_after=forget_after),
            "address": FailureTable(free=free_per_address, capacity=max_addresses,
                                    forget_after=forget_after),
        }
        self._lock = threading.Lock()

    @staticmethod
    def keys(username: str, address: str | None) -> list[tuple[str, str]]:
        return [("account", username.casefold()[:256]), ("address", client_network(address))]

    def attempt(self, keys: list[tuple[str, str]], verify: Callable[[], bool]) -> tuple[bool, int]:
        """``(verified, retry_after)``: when any key is blocked, or a failure could not be
        counted because its table is full of keys in backoff, ``verify`` is not called and
        ``retry_after`` is the whole seconds to wait (at least 1); otherwise it is 0 and the
        outcome is counted. A success clears the account; the address keeps its count,
        or one valid account would let its owner guess others' passwords without limit.
        """
        with self._lock:
            now = self.clock()
            wait = max(max(self._tables[kind].blocked_for(value, now),
                           self._tables[kind].full_for(value, now)) for kind, value in keys)
            if wait > 0:
                return False, max(1, math.ceil(wait))
            if verify():
                self._tables[keys[0][0]].clear(keys[0][1])
                return True, 0
            for kind, value in keys:
                self._tables[kind].fail(value, now, self._delay)
            return False, 0

    def _delay(self, over: int) -> float:
        """The block after a failure ``over`` past the free ones (0: the first block)."""
        return min(self.max_delay, self.base_delay * 2 ** over) if over >= 0 else 0.0

    def __len__(self) -> int:
        """How many keys are kept (both tables)."""
        return sum(len(table) for table in self._tables.values())


@dataclass(frozen=True)
class Failures:
    """One key's record: failures counted, blocked until, last failure (clock seconds)."""

    count: int
    blocked_until: float
    last: float


class FailureTable:
    """Failure records of one kind of key, at most ``capacity`` of them.

    Two queues, each ordered by last failure: *open* keys (still within their free
    failures), which may be evicted (least recently failed first) to make room, and
    *held* keys (in backoff), which are never evicted and leave only when quiet for
    ``forget_after``. Since both are ordered by last failure, the forgotten ones are
    always at the front: every operation costs O(1), amortised, however full the table.
    """

    def __init__(self, *, free: int, capacity: int, forget_after: float) -> None:
        self.free, self.capacity, self.forget_after = free, capacity, forget_after
        self._open: OrderedDict[str, Failures] = OrderedDict()
        self._held: OrderedDict[str, Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open) + len(self._held)

    def blocked_for(self, key: str, now: float) -> float:
        """Seconds ``key`` is still blocked (0 or less: not blocked)."""
        self._forget(now)
        record = self._held.get(key)
        return record.blocked_until - now if record is not None else 0.0

    def full_for(self, key: str, now: float) -> float:
        """Seconds until a failure of ``key`` could be counted (0: now). Positive only for
        a new key while every kept key is held: the oldest is forgotten first."""
        self._forget(now)
        if key in self._open or key in self._held or len(self) < self.capacity or self._open:
            return 0.0
        oldest = next(iter(self._held.values()))
        return oldest.last + self.forget_after - now

    def fail(self, key: str, now: float, delay: Callable[[int], float]) -> None:
        """Count a failure of ``key`` (``delay(over)`` gives its block); evicts the least
        recently failed open key when the table is full (:meth:`full_for` said there is one)."""
        self._forget(now)
        previous = self._open.pop(key, None) or self._held.pop(key, None)
        count = (previous.count if previous is not None else 0) + 1
        while len(self) >= self.capacity and self._open:
            self._open.popitem(last=False)
        over = count - self.free  # 0 at the last free failure: the first block
        queue = self._held if over >= 0 else self._open
        queue[key] = Failures(count, now + delay(over), now)

    def clear(self, key: str) -> None:
        """Forget ``key`` (a correct password for an account)."""
        self._open.pop(key, None)
        self._held.pop(key, None)

    def _forget(self, now: float) -> None:
        for queue in (self._open, self._held):
            while queue and now - next(iter(queue.values())).last > self.forget_after:
                queue.popitem(last=False)


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
