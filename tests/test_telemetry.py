"""What a cycle emits, captured with OpenTelemetry's in-memory exporters."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.telemetry import COUNTERS, HISTOGRAMS
from tests.utils.helpers import make_account


@pytest.fixture(scope="module")
def exporters() -> tuple[InMemorySpanExporter, InMemoryMetricReader]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return spans, reader


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[dict[str, object]]]:
    data = reader.get_metrics_data()
    found: dict[str, list[dict[str, object]]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(
                    dict(point.attributes or {}) for point in metric.data.data_points
                )
    return found


def test_a_cycle_emits_linked_traces_metrics_and_ids(
    exporters: tuple[InMemorySpanExporter, InMemoryMetricReader],
    simulator: SimulatorHandle,
    services: Services,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spans, reader = exporters
    account_id, _ = make_account(simulator, "Contoso", 2)
    caplog.set_level(logging.INFO)
    run_cycle_now(services)
    simulator.control.update_account(account_id, {"name": "Renamed"})
    summary = run_cycle_now(services)

    finished = spans.get_finished_spans()
    cycles = [s for s in finished if s.name == "acctsync.cycle"]
    batches = [s for s in finished if s.name == "acctsync.apply_batch"]
    assert cycles and batches
    last_cycle = next(
        s for s in cycles if s.attributes and s.attributes["cycle_id"] == summary.cycle_id
    )
    linked = [b for b in batches if b.context.trace_id == last_cycle.context.trace_id]
    assert linked, "a batch continues the trace of the cycle that enqueued it"
    assert linked[0].attributes and linked[0].attributes["cycle_id"] == summary.cycle_id

    points = metric_points(reader)
    for name in (
        "acctsync.accounts_applied",
        "acctsync.contacts_applied",
        "acctsync.activities_logged",
        "acctsync.dataverse_requests",
        "acctsync.cycle_duration_s",
        "acctsync.change_lag_s",
    ):
        assert name in points, name
    assert set(points) <= set(COUNTERS) | set(HISTOGRAMS)

    records = [r for r in caplog.records if r.getMessage() in ("cycle finished", "batch applied")]
    assert {r.getMessage() for r in records} == {"cycle finished", "batch applied"}
    assert all(getattr(r, "cycle_id", None) for r in records)
    assert all(getattr(r, "batch_id", None) for r in records if r.getMessage() == "batch applied")
    secret = simulator.env["DATAVERSE_CLIENT_SECRET"]
    assert all(
        secret not in r.getMessage() and secret not in str(r.__dict__) for r in caplog.records
    )
