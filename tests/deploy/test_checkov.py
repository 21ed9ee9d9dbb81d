"""checkov over infra/ (Bicep): no failed check, and every skip is deliberate.

A check may only be skipped in the Bicep itself, inside the resource it concerns, as
`// checkov:skip=CKV_AZURE_NN: reason` (checkov reads skips from the resource's own lines).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ._support import INFRA, bicep_files

CHECKOV_TIMEOUT_S = 120
SKIP_COMMENT = re.compile(r"//\s*checkov:skip=([A-Z0-9_]+)\s*:\s*(\S.*)?$", re.MULTILINE)


@pytest.fixture(scope="module")
def report(checkov: Path, checkov_env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(INFRA),
            "--framework",
            "bicep",
            "--skip-download",
            "--output",
            "json",
        ],
        cwd=INFRA,
        env=checkov_env,
        capture_output=True,
        text=True,
        timeout=CHECKOV_TIMEOUT_S,
        check=False,
    )
    try:
        parsed: Any = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"checkov printed no JSON report (exit {done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    reports = parsed if isinstance(parsed, list) else [parsed]
    bicep = [r for r in reports if isinstance(r, dict) and r.get("check_type") == "bicep"]
    assert bicep, f"checkov found no Bicep to scan: {done.stdout[-2000:]}"
    result: dict[str, Any] = bicep[0]
    return result


def _describe(check: dict[str, Any]) -> str:
    lines = check.get("file_line_range") or ["?", "?"]
    return (
        f"{check['check_id']} {check['check_name']}\n"
        f"    resource {check['resource']} in infra{check['file_path']}:{lines[0]}-{lines[1]}\n"
        f"    evaluated: {check.get('check_result', {}).get('evaluated_keys')}\n"
        f"    guide: {check.get('guideline') or '-'}"
    )


def test_no_failed_checks(report: dict[str, Any]) -> None:
    summary = report["summary"]
    failed = report["results"].get("failed_checks", [])
    skipped = report["results"].get("skipped_checks", [])
    print(
        f"checkov {summary.get('checkov_version')}: passed {summary['passed']}, "
        f"failed {summary['failed']}, skipped {summary['skipped']}"
    )
    for check in skipped:
        reason = check.get("check_result", {}).get("suppress_comment", "")
        print(f"  skipped {check['check_id']} on {check['resource']}: {reason}")
    assert summary["parsing_errors"] == 0, f"checkov could not parse: {summary}"
    assert not failed, (
        f"{len(failed)} checkov check(s) failed; fix the Bicep, or skip the check inside the "
        "resource with `// checkov:skip=ID: reason`:\n" + "\n".join(_describe(c) for c in failed)
    )
    assert summary["passed"] > 0, "checkov ran no check: is infra/ empty?"


def test_every_skip_has_a_reason_and_is_used(report: dict[str, Any]) -> None:
    used: set[tuple[str, str]] = set()
    for check in report["results"].get("skipped_checks", []):
        used.add((check["file_path"].lstrip("/"), check["check_id"]))
    problems: list[str] = []
    for path in bicep_files():
        relative = path.relative_to(INFRA).as_posix()
        for match in SKIP_COMMENT.finditer(path.read_text(encoding="utf-8")):
            check_id, reason = match.group(1), (match.group(2) or "").strip()
            if len(reason) < 20:
                problems.append(f"{relative}: {check_id} needs a real reason, got {reason!r}")
            if (relative, check_id) not in used:
                problems.append(
                    f"{relative}: skip of {check_id} had no effect (the check passes, or the "
                    "comment is outside the resource body): remove or move it"
                )
    assert not problems, "\n".join(problems)
