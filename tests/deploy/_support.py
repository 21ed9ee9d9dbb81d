"""Shared helpers: repository paths, a faithful port of Core Tools' .funcignore matcher, and
small readers for the Bicep files (no Bicep compiler is available here)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
MAIN_BICEP = INFRA / "main.bicep"
APP_DIR = INFRA / "app"
CHECKOV_LOCK = Path(__file__).with_name("requirements-checkov.txt")
# checkov pins packaging<24 and pytest 9 needs packaging>=24, so checkov cannot live in the
# project venv: it gets a venv of its own inside it (removed by `make clean` with .venv).
CHECKOV_VENV = REPO_ROOT / ".venv" / "tools" / "checkov"

# Metric instruments the code emits (OpenTelemetry -> App Insights customMetrics).
METRIC_NAMES = frozenset(
    {
        "acctsync.accounts_applied",
        "acctsync.contacts_applied",
        "acctsync.activities_logged",
        "acctsync.activities_suppressed",
        "acctsync.cycle_duration_s",
        "acctsync.change_lag_s",
        "acctsync.dataverse_requests",
        "acctsync.dataverse_throttled",
        "acctsync.poison_messages",
        "acctsync.sync_errors",
    }
)


class CoreToolsFuncIgnore:
    """Python port of Azure Functions Core Tools' GitIgnoreParser (src/Cli/func/Common/
    GitIgnoreParser.cs, itself a port of the npm gitignore-parser), which decides what
    `func azure functionapp publish` zips.

    It is *not* git's matcher: every pattern is anchored at the start of the
    root-relative path and must end on a word boundary, so `tests` drops `tests/...` but
    `__pycache__` only drops a top-level `__pycache__/`.
    """

    _ESCAPE = re.compile(r"[\-\[\]/{}()+?.\\^$|]")

    def __init__(self, content: str) -> None:
        positive: list[str] = []
        negative: list[str] = []
        for raw in content.split("\n"):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            is_negative = line.startswith("!")
            if is_negative:
                line = line[1:]
            if line.startswith("/"):
                line = line[1:]
            (negative if is_negative else positive).append(line)
        self._positive = self._compile(positive)
        self._negative = self._compile(negative)

    @classmethod
    def _prepare(cls, pattern: str) -> str:
        escaped = cls._ESCAPE.sub(lambda m: "\\" + m.group(0), pattern)
        return escaped.replace("**", "(.+)").replace("*", "([^\\/]+)")

    @classmethod
    def _compile(cls, patterns: list[str]) -> re.Pattern[str]:
        if not patterns:
            return re.compile("$^")
        body = ")|(".join(cls._prepare(p) for p in sorted(patterns))
        return re.compile("^((" + body + "))\\b", re.ASCII)

    def accepts(self, relative_path: str) -> bool:
        if relative_path == "/":
            relative_path = ""
        return bool(self._negative.search(relative_path)) or not self._positive.search(
            relative_path
        )


# Core Tools' FileSystemHelpers.GetLocalFiles skips these before the matcher runs.
_CORE_TOOLS_SKIPPED_DIRS = frozenset({".git", ".vscode"})
_CORE_TOOLS_SKIPPED_FILES = frozenset(
    {".funcignore", ".gitignore", "local.settings.json", "project.lock.json"}
)


def core_tools_package(files: Iterable[str], funcignore: str) -> set[str]:
    """The root-relative paths Core Tools would zip out of `files`."""
    matcher = CoreToolsFuncIgnore(funcignore)
    package: set[str] = set()
    for path in files:
        parts = path.split("/")
        if any(part.lower() in _CORE_TOOLS_SKIPPED_DIRS for part in parts[:-1]):
            continue
        if parts[-1].lower() in _CORE_TOOLS_SKIPPED_FILES:
            continue
        if matcher.accepts(path):
            package.add(path)
    return package


def strip_bicep_comments(text: str) -> str:
    """Drop // and /* */ comments outside string literals. Bicep strings are '...', with
    backslash escapes and ${...} interpolations that may hold strings of their own."""
    out: list[str] = []
    # Each entry is "string" or the brace depth of an open code context (0 = top level).
    stack: list[str | int] = [0]
    i = 0
    while i < len(text):
        ch = text[i]
        top = stack[-1]
        if top == "string":
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i : i + 2])
                i += 2
                continue
            if text.startswith("${", i):
                stack.append(1)
                out.append("${")
                i += 2
                continue
            if ch == "'":
                stack.pop()
            out.append(ch)
            i += 1
            continue
        assert isinstance(top, int)
        if ch == "'":
            stack.append("string")
        elif ch == "{" and len(stack) > 1:
            stack[-1] = top + 1
        elif ch == "}" and len(stack) > 1:
            if top == 1:
                stack.pop()
            else:
                stack[-1] = top - 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end == -1 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end == -1 else end + 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def read_bicep(path: Path) -> str:
    return strip_bicep_comments(path.read_text(encoding="utf-8"))


_PARAM = re.compile(r"^param\s+(\w+)\s+(\w+)(\s*=)?", re.MULTILINE)


def bicep_params(path: Path) -> dict[str, bool]:
    """Parameter name -> whether it has a default value."""
    return {m.group(1): m.group(3) is not None for m in _PARAM.finditer(read_bicep(path))}


_MODULE = re.compile(r"^module\s+\w+\s+'([^']+)'", re.MULTILINE)


def bicep_module_paths(path: Path) -> list[str]:
    return _MODULE.findall(read_bicep(path))


_SETTING = re.compile(r"name:\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*\n\s*value:\s*([^\n]+)")


def app_settings(path: Path) -> dict[str, str]:
    """App setting name -> the Bicep expression of its value, from {name, value} objects."""
    return {m.group(1): m.group(2).strip() for m in _SETTING.finditer(read_bicep(path))}
