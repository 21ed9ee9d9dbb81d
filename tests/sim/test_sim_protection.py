"""Service protection limits and injected faults."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from acctsync.sim.harness import SimulatorHandle


def test_request_limit_answers_429_with_retry_after(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    sim.control.set_limits(requests_per_window=3, window_s=300)
    assert [api.get("WhoAmI").status_code for _ in range(3)] == [200, 200, 200]
    throttled = api.get("WhoAmI")
    assert throttled.status_code == 429
    assert 290 <= int(throttled.headers["retry-after"]) <= 300
    assert throttled.json()["error"] == {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 3 over time window of 300 seconds.",
    }
    sim.control.set_limits(requests_per_window=1, window_s=1, retry_after_s=1)
    assert api.get("WhoAmI").status_code == 200
    assert api.get("WhoAmI").headers["retry-after"] == "1"
    time.sleep(1.05)
    assert api.get("WhoAmI").status_code == 200


def test_concurrency_limit_answers_429(sim: SimulatorHandle, app_token: str) -> None:
    sim.control.set_limits(concurrency=2)
    sim.control.inject_faults(slow_ms=600, slow_rate=1.0)

    def call(_: int) -> httpx.Response:
        with httpx.Client(verify=sim.ssl_context(), timeout=10) as client:
            return client.get(
                f"{sim.dataverse_url}/api/data/v9.2/WhoAmI",
                headers={"Authorization": f"Bearer {app_token}"},
            )

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(call, range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429]
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.json()["error"] == {
        "code": "0x80072326",
        "message": "Number of concurrent requests exceeded the limit of 2.",
    }
    assert throttled.headers["retry-after"].isdigit()


def test_dop_hint_is_configurable(sim: SimulatorHandle, api: httpx.Client) -> None:
    sim.control.set_limits(dop_hint=7)
    assert api.get("WhoAmI").headers["x-ms-dop-hint"] == "7"


def test_injected_server_errors_throttling_and_slowness(
    sim: SimulatorHandle, api: httpx.Client
) -> None:
    sim.control.inject_faults(rate_5xx=1.0, count=2)
    statuses = [api.get("WhoAmI").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]

    sim.control.inject_faults(rate_429=1.0, count=1)
    throttled = api.get("WhoAmI")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "0x80072322"
    assert throttled.headers["retry-after"] == "1"

    sim.control.inject_faults(slow_ms=300, slow_rate=1.0, count=1)
    started = time.monotonic()
    assert api.get("WhoAmI").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    api.get("WhoAmI")
    assert time.monotonic() - started < 0.3


def test_dropped_connection_has_no_response(sim: SimulatorHandle, api: httpx.Client) -> None:
    sim.control.inject_faults(rate_drop=1.0, count=1)
    sim.control.requests(clear=True)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.get("WhoAmI")
    assert api.get("WhoAmI").status_code == 200
    log = sim.control.requests()
    assert [(r["status"], r["dropped"]) for r in log] == [(None, True), (200, False)]


def test_faults_are_deterministic_for_a_seed(sim: SimulatorHandle, api: httpx.Client) -> None:
    def pattern() -> list[int]:
        sim.control.inject_faults(rate_5xx=0.3, rate_429=0.2, seed=42)
        return [api.get("WhoAmI").status_code for _ in range(20)]

    first = pattern()
    assert {200, 429, 503} == set(first)
    assert pattern() == first
    sim.control.clear_faults()
    assert {api.get("WhoAmI").status_code for _ in range(5)} == {200}
