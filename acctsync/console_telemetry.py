"""Local telemetry on the console, when asked with ACCTSYNC_TELEMETRY=console.

In Azure the Python worker configures Azure Monitor; locally the same spans and metrics can be
printed instead, to see what Application Insights would receive.
"""

from __future__ import annotations

import os

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter


def configure_from_env() -> bool:
    """Send telemetry to stderr when ACCTSYNC_TELEMETRY=console; True when it did."""
    if os.environ.get("ACCTSYNC_TELEMETRY", "").lower() != "console":
        return False
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=60_000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return True
