"""function_app.py indexes the triggers with the bindings host.json and the settings expect,
and importing it needs no settings at all (an import error would hide every function)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_functions_index_with_no_settings() -> None:
    script = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): json.loads(f.get_function_json())"
        " for f in function_app.app.get_functions()}))"
    )
    # A bare environment: no storage, no Dataverse settings, nothing acctsync reads.
    output = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    functions = json.loads(output.strip().splitlines()[-1])
    (timer,) = functions["heartbeat"]["bindings"]
    assert timer["type"] == "timerTrigger"
    assert timer["schedule"] == "*/30 * * * * *"
    assert timer["runOnStartup"] is False
    (queue,) = functions["apply_batch"]["bindings"]
    assert queue["type"] == "queueTrigger"
    assert queue["queueName"] == "acctsync-batches"
    assert queue["connection"] == "AzureWebJobsStorage"
    http, response = functions["api"]["bindings"]
    assert http["type"] == "httpTrigger"
    assert http["authLevel"] == "FUNCTION"  # function keys guard the API in Azure
    assert http["route"] == "api/{*route}"  # routePrefix is empty: the console is at /
    assert response["type"] == "http"
    # The docs and the description only (no data) are open: the docs page fetches the
    # description without a key.
    docs, _ = functions["api_docs"]["bindings"]
    assert docs["authLevel"] == "ANONYMOUS" and docs["methods"] == ["GET"]
    assert re.fullmatch(r"api/\{page:regex\((.+)\)\}", docs["route"])
    pattern = re.fullmatch(r"api/\{page:regex\((.+)\)\}", docs["route"]).group(1)  # type: ignore[union-attr]
    assert [
        p for p in ("docs", "openapi.json", "sync/status", "docsx") if re.search(pattern, p)
    ] == [
        "docs",
        "openapi.json",
    ]
    # The console: anonymous to the host (it signs users in itself), pages only.
    console, _ = functions["console"]["bindings"]
    assert console["authLevel"] == "ANONYMOUS" and console["route"] == "{*path}"
    assert sorted(console["methods"]) == ["GET", "POST"]
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""
    # FastAPI is not imported with the function app: only at the first HTTP request.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, function_app; print(sorted(sys.modules))"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "'fastapi'" not in loaded and "'httpx'" not in loaded and "'msal'" not in loaded
    # Nor the storage SDKs, telemetry or the apply step: every new instance pays its import
    # before any trigger runs; each trigger imports what it needs at its first call.
    for module in ("azure.data.tables", "azure.storage.queue", "azure.storage.blob"):
        assert f"'{module}'" not in loaded, module
    assert "'opentelemetry'" not in loaded and "'shared.sync.apply'" not in loaded


def test_host_json_sends_failing_batches_to_poison_after_five_tries() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] == 5
    assert queues["messageEncoding"] == "base64"  # what the cycle's queue client sends
    assert host["telemetryMode"] == "OpenTelemetry"
