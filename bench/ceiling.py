"""The raw batched ceiling, each time on an Azurite of its own: a fresh, empty process started
for the measure and stopped after it, whatever the scenario's own Azurite holds.

Issue 26: a ceiling measured on a busy or grown Azurite came out at a quarter of another of the
same day and flattered every ratio above it. So every ratio's ceiling is measured next to its
figure (right before it, or right after it on its own Azurite, before anything else runs), the
report prints it beside the ratio and warns when it is far below the run's best.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from acctsync.azurite import start_azurite
from bench import baseline

# A ceiling below this share of the run's best is reported as suspect.
LOW_SHARE = 0.7


@dataclass(frozen=True)
class Ceiling:
    entities: int
    seconds: float

    @property
    def entities_per_s(self) -> float:
        return self.entities / self.seconds

    def against(self, *, entities: int, wall_s: float) -> dict[str, Any]:
        """The ceiling as the results keep it, with `ratio`: acctsync's entities/s over it."""
        return {
            **asdict(self),
            "entities_per_s": self.entities_per_s,
            "ratio": (entities / wall_s) / self.entities_per_s,
        }


def measure(entities: int) -> Ceiling:
    """Seconds to upsert `entities` entities raw, on a fresh Azurite of its own."""
    with start_azurite() as azurite:
        return Ceiling(entities, baseline.batched_upserts(azurite.connection_string, entities))


def best(*ceilings: Ceiling) -> Ceiling:
    """The highest of ceilings measured around one figure: a lower one was a busier moment."""
    return max(ceilings, key=lambda c: c.entities_per_s)


def warning(ceiling: dict[str, Any], run_best: float) -> str:
    """A note for a ceiling far below the best of the run ("" when it is not)."""
    share = ceiling["entities_per_s"] / run_best if run_best else 1.0
    return f" LOW: {share:.2f}x the run's best {run_best:,.0f}" if share < LOW_SHARE else ""


def run_best(results: Any) -> float:
    """The highest entities/s of every ceiling anywhere in `results`."""
    found = 0.0
    if isinstance(results, dict):
        for key, value in results.items():
            if key == "ceiling" and isinstance(value, dict) and "entities_per_s" in value:
                found = max(found, float(value["entities_per_s"]))
            else:
                found = max(found, run_best(value))
    elif isinstance(results, list):
        for value in results:
            found = max(found, run_best(value))
    return found
