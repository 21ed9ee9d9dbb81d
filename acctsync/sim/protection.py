"""Dataverse service protection limits, evaluated per principal (user or application user).

Two of the three documented limits are modelled: the number of requests in a sliding window
(default 6,000 per 300 s) and the number of concurrent requests (default 52). Both answer 429
with Retry-After and the documented error codes and messages.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from acctsync.sim.odata import ODataError

REQUESTS_CODE = "0x80072322"
CONCURRENCY_CODE = "0x80072326"


@dataclass
class Limits:
    requests_per_window: int = 6000
    window_s: float = 300.0
    concurrency: int = 52
    # Fixed Retry-After in seconds; None lets the window decide (when the oldest counted
    # request leaves it) and uses 1 s for the concurrency limit.
    retry_after_s: float | None = None
    dop_hint: int = 4

    def __post_init__(self) -> None:
        counts = (self.requests_per_window, self.concurrency, self.dop_hint)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in counts):
            raise ValueError("requests_per_window, concurrency and dop_hint must be integers >= 1")
        if not isinstance(self.window_s, int | float) or self.window_s <= 0:
            raise ValueError("window_s must be a positive number of seconds")
        if self.retry_after_s is not None and (
            not isinstance(self.retry_after_s, int | float) or self.retry_after_s < 0
        ):
            raise ValueError("retry_after_s must be a number of seconds, or null")

    def requests_exceeded(self) -> str:
        return (
            f"Number of requests exceeded the limit of {self.requests_per_window} "
            f"over time window of {_seconds(self.window_s)} seconds."
        )


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def retry_after(seconds: float) -> str:
    """Retry-After carries whole seconds."""
    return str(max(1, math.ceil(seconds)))


class ServiceProtection:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._windows: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}

    def reset(self) -> None:
        self._windows.clear()

    def admit(self, principal: str) -> int:
        """Count a request in; returns the requests left in the window. Raises 429 errors."""
        limits = self.limits
        now = time.monotonic()
        if self._in_flight.get(principal, 0) >= limits.concurrency:
            wait = limits.retry_after_s if limits.retry_after_s is not None else 1.0
            raise ODataError(
                429,
                CONCURRENCY_CODE,
                f"Number of concurrent requests exceeded the limit of {limits.concurrency}.",
                (("retry-after", retry_after(wait)),),
            )
        window = self._windows.setdefault(principal, deque())
        while window and window[0] <= now - limits.window_s:
            window.popleft()
        if len(window) >= limits.requests_per_window:
            wait = (
                limits.retry_after_s
                if limits.retry_after_s is not None
                else window[0] + limits.window_s - now
            )
            raise ODataError(
                429,
                REQUESTS_CODE,
                limits.requests_exceeded(),
                (("retry-after", retry_after(wait)),),
            )
        window.append(now)
        self._in_flight[principal] = self._in_flight.get(principal, 0) + 1
        return limits.requests_per_window - len(window)

    def release(self, principal: str) -> None:
        self._in_flight[principal] -= 1
