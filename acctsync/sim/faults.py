"""Random faults on Web API requests, deterministic for a seed: throttling answers, server
errors, dropped connections and slow answers. One draw per request, in arrival order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class FaultPlan:
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    slow_ms: float = 0.0
    slow_rate: float = 0.0
    seed: int = 1
    # How many faults to inject in total (slow answers included); None: no limit.
    count: int | None = None

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_5xx, self.rate_drop, self.slow_rate)
        if any(r < 0 or r > 1 for r in rates) or self.rate_429 + self.rate_5xx + self.rate_drop > 1:
            raise ValueError("fault rates must be between 0 and 1 and add up to at most 1")
        if self.slow_ms < 0 or (self.count is not None and self.count < 0):
            raise ValueError("slow_ms and count must not be negative")


@dataclass(frozen=True)
class Fault:
    """What to do to one request: `kind` is None, "429", "5xx" or "drop"."""

    kind: str | None = None
    delay_s: float = 0.0


NO_FAULT = Fault()


class FaultInjector:
    def __init__(self) -> None:
        self.plan = FaultPlan()
        self._random = random.Random(1)
        self.injected = 0

    def configure(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._random = random.Random(plan.seed)
        self.injected = 0

    def clear(self) -> None:
        self.configure(FaultPlan())

    def draw(self) -> Fault:
        plan = self.plan
        if plan.count is not None and self.injected >= plan.count:
            return NO_FAULT
        roll, slow_roll = self._random.random(), self._random.random()
        kind: str | None = None
        if roll < plan.rate_429:
            kind = "429"
        elif roll < plan.rate_429 + plan.rate_5xx:
            kind = "5xx"
        elif roll < plan.rate_429 + plan.rate_5xx + plan.rate_drop:
            kind = "drop"
        delay = plan.slow_ms / 1000 if slow_roll < plan.slow_rate else 0.0
        if kind is None and delay == 0.0:
            return NO_FAULT
        self.injected += 1
        return Fault(kind, delay)
