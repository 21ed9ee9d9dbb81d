"""Traces and metrics through the OpenTelemetry API, with stable names.

Nothing is configured here: in Azure the Python worker sets up Azure Monitor itself
(PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true); locally `acctsync run` can send the same
telemetry to the console. Until a provider is set, every call is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any

from opentelemetry import metrics, propagate, trace
from opentelemetry.metrics import Counter, Histogram

METER = "acctsync"
COUNTERS = {
    "acctsync.accounts_applied": "accounts written into the mirror",
    "acctsync.contacts_applied": "contacts written into the mirror",
    "acctsync.activities_logged": "Change Data Value activities logged",
    "acctsync.activities_suppressed": "activities not logged: account over the contact limit",
    "acctsync.dataverse_requests": "requests sent to the Dataverse Web API",
    "acctsync.dataverse_throttled": "Dataverse answers of 429 (service protection)",
    "acctsync.poison_messages": "batches that failed for good and went to the poison queue",
    "acctsync.sync_errors": "records that could not be mirrored",
    "acctsync.planning_failures": "heartbeats whose planning failed (the cycle closes as failed)",
    "acctsync.heartbeats": "heartbeats of a host's timer (none for a while: the host is down)",
}
HISTOGRAMS = {
    "acctsync.cycle_duration_s": ("s", "from the start of a cycle to its last batch applied"),
    "acctsync.change_lag_s": ("s", "from modifiedon in Dynamics to the row in the mirror"),
    "acctsync.since_last_success_s": ("s", "at each heartbeat: since a cycle last succeeded"),
    "acctsync.poison_backlog": ("1", "at each heartbeat: batches waiting in the poison queue"),
    "acctsync.verify_drift": ("1", "after each verify: records the mirror still has wrong"),
    "acctsync.verify_drift_found": ("1", "after each verify: records found wrong, before repair"),
    "acctsync.since_last_verify_s": (
        "s",
        "at each heartbeat, scheduled verifies on: since a verify last finished without error",
    ),
}


@cache
def _counter(name: str) -> Counter:
    return metrics.get_meter(METER).create_counter(name, unit="1", description=COUNTERS[name])


@cache
def _histogram(name: str) -> Histogram:
    unit, description = HISTOGRAMS[name]
    return metrics.get_meter(METER).create_histogram(name, unit=unit, description=description)


def count(name: str, value: int, **attributes: str) -> None:
    if value:
        _counter(name).add(value, attributes)


def observe(name: str, value: float, **attributes: str) -> None:
    _histogram(name).record(value, attributes)


def current_traceparent() -> str | None:
    """The W3C traceparent of the active span, to carry in a queue message."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextmanager
def span(
    name: str, *, traceparent: str | None = None, attributes: Mapping[str, Any] | None = None
) -> Iterator[trace.Span]:
    """A span; with a traceparent it continues the trace that enqueued the work."""
    context = propagate.extract({"traceparent": traceparent}) if traceparent else None
    tracer = trace.get_tracer(METER)
    with tracer.start_as_current_span(name, context=context, attributes=attributes) as current:
        yield current
