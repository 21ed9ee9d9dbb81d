"""The rows `acctsync validate` prints: one per check, each with what to do when it fails."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class CheckStatus(StrEnum):
    PASS = "pass"  # noqa: S105 (a status, not a password)
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: CheckStatus
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
        }


def passed(check: str, detail: str) -> CheckResult:
    return CheckResult(check, CheckStatus.PASS, detail)


def warned(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, CheckStatus.WARN, detail, fix)


def failed(check: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(check, CheckStatus.FAIL, detail, fix)


def not_checked(check: str, because: str) -> CheckResult:
    """A check that depends on one that failed: it cannot say the set-up is right."""
    return CheckResult(
        check, CheckStatus.FAIL, f"not checked: {because} failed", f"fix {because} first"
    )
