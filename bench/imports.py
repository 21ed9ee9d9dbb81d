"""Cold import time of the Function App (`python -X importtime`), now and before the API
moved to FastAPI, in the same run.

What every new Flex Consumption instance pays before its first heartbeat or batch is
`import function_app`; the HTTP app (FastAPI, pydantic) is imported at the first request only,
so it is measured apart.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

from bench.stack import ROOT

# The last version with the hand-written ASGI router and OpenAPI description (0.2.0).
BEFORE = "b248be0"
RUNS = 7


def _import_ms(root: Path, statement: str) -> float:
    """Median cumulative import time of `statement`'s top module, in a fresh interpreter."""
    times = []
    for _ in range(RUNS):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", statement],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        module = statement.split()[-1]
        for line in done.stderr.splitlines():
            # "import time: self [us] | cumulative | imported package"
            parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
            if len(parts) == 3 and parts[2] == module:
                times.append(int(parts[1]) / 1000)
    return statistics.median(times)


def _checkout(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def import_times() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="acctsync-before-") as folder:
        before = _import_ms(_checkout(BEFORE, Path(folder)), "import function_app")
    return {
        "before_ref": BEFORE,
        "function_app_before_ms": before,
        "function_app_ms": _import_ms(ROOT, "import function_app"),
        "web_app_ms": _import_ms(ROOT, "import shared.web.app"),
    }
