"""Wrong keys at the sign-in form, counted per client address: after a few within a minute
that address waits, so the key cannot be guessed at speed while the person who mistyped it
waits a minute at most."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

LIMIT = 5
WINDOW_S = 60.0
ADDRESSES = 10_000  # remembered at most; the longest unseen are forgotten first


class WrongKeys:
    def __init__(
        self,
        *,
        limit: int = LIMIT,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, address: str) -> float:
        """How long `address` must wait before it may try a key again (0: it may now)."""
        with self._lock:
            failures = self._recent(address)
            if len(failures) < self.limit:
                return 0.0
            return max(failures[0] + self.window_s - self.clock(), 0.0)

    def failed(self, address: str) -> None:
        with self._lock:
            failures = self._recent(address)
            failures.append(self.clock())
            self._failures[address] = failures
            self._failures.move_to_end(address)
            while len(self._failures) > ADDRESSES:
                self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        failures = self._failures.get(address, deque())
        while failures and failures[0] <= self.clock() - self.window_s:
            failures.popleft()
        return failures
