"""Shared helpers: repository paths, a faithful port of Core Tools' .funcignore matcher, and
small readers for the Bicep files (no Bicep compiler is available here)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

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
# Metrics the alert rules (infra/app/alerts.bicep) watch on top of those: the heartbeat's
# health gauges, the planning failures and the verify's (with the drift a verify found before
# repair, which the drift alert's doc names). They have no workbook tile of their own.
ALERT_METRIC_NAMES = frozenset(
    {
        "acctsync.heartbeats",
        "acctsync.since_last_success_s",
        "acctsync.poison_backlog",
        "acctsync.planning_failures",
        "acctsync.sync_errors",
        "acctsync.verify_drift",
        "acctsync.verify_drift_found",
        "acctsync.since_last_verify_s",
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


# --- A small evaluator for the Bicep this repository writes -------------------------------
#
# Enough of the language to answer "with these parameters, which modules and resources are
# deployed, and with what values?" without a Bicep compiler or Azure: literals, strings with
# interpolations, arrays, objects, the boolean, comparison and arithmetic operators, ternaries
# and a few functions. What only Azure knows (module outputs, resource IDs, tenant(), utcNow(),
# unknown functions) stays as its own source text wrapped in ${...}, so a test can still see
# where a value comes from, e.g. "${identity.outputs.clientId}".


class Unresolved(str):
    """A value known only at deployment time, shown as `${<its Bicep source>}`."""

    def __new__(cls, source: str) -> Unresolved:
        return super().__new__(cls, "${" + source + "}")


class BicepError(Exception):
    """The evaluator met something it cannot decide (e.g. a condition on a runtime value)."""


@dataclass(frozen=True)
class Declared:
    """A resource or module declaration with its condition and body evaluated."""

    kind: str  # "resource" or "module"
    symbol: str
    target: str  # resource type@api-version, or the module path
    deployed: bool
    body: dict[str, Any]


_BICEP_LANGUAGE = Language(tree_sitter_bicep.language())


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8")


def _named(node: Node) -> list[Node]:
    return [child for child in node.children if child.is_named and child.type != "comment"]


class BicepFile:
    """One .bicep file evaluated with the given parameter values; parameters not given take
    their default, or stay Unresolved when they have none."""

    def __init__(self, path: Path, params: dict[str, Any] | None = None) -> None:
        self.path = path
        self.params = dict(params or {})
        tree = Parser(_BICEP_LANGUAGE).parse(path.read_bytes())
        self._declarations: dict[str, tuple[str, Node]] = {}
        self._ordered: list[tuple[str, Node]] = []
        for node in _named(tree.root_node):
            if node.type in {"parameter_declaration", "variable_declaration"}:
                name = _text(_named(node)[0])
                self._declarations[name] = (node.type, node)
            elif node.type in {"resource_declaration", "module_declaration", "output_declaration"}:
                self._ordered.append((node.type, node))
        self._cache: dict[str, Any] = {}
        self._locals: list[dict[str, Any]] = []  # loop variables, innermost last

    # -- declarations ------------------------------------------------------------------

    def value(self, name: str) -> Any:
        for scope in reversed(self._locals):
            if name in scope:
                return scope[name]
        if name in self.params:
            return self.params[name]
        if name in self._cache:
            return self._cache[name]
        kind, node = self._declarations.get(name, ("", None))
        if node is None:
            result: Any = Unresolved(name)  # a resource or module symbol
        elif kind == "variable_declaration":
            result = self.evaluate(_named(node)[-1])
        else:
            parts = node.children
            equals = [i for i, child in enumerate(parts) if child.type == "="]
            result = self.evaluate(parts[equals[0] + 1]) if equals else Unresolved(name)
        self._cache[name] = result
        return result

    def _declared(self, node_type: str) -> list[Declared]:
        found: list[Declared] = []
        for kind, node in self._ordered:
            if kind != node_type:
                continue
            parts = _named(node)
            symbol, target = _text(parts[0]), self.evaluate(parts[1])
            kind_name = kind.split("_")[0]
            if parts[-1].type == "for_statement":
                for index, (scope, body_node) in enumerate(self._iterations(parts[-1])):
                    self._locals.append(scope)
                    try:
                        deployed, body = self._conditional(body_node)
                    finally:
                        self._locals.pop()
                    found.append(Declared(kind_name, f"{symbol}[{index}]", target, deployed, body))
                continue
            deployed, body = self._conditional(parts[-1])
            found.append(Declared(kind_name, symbol, target, deployed, body))
        return found

    def _conditional(self, node: Node) -> tuple[bool, Any]:
        """(deployed, body) of `if (condition) {body}` or of a plain body."""
        if node.type != "if_statement":
            return True, self.evaluate(node)
        condition, body = _named(node)
        return (True, self.evaluate(body)) if self._bool(condition) else (False, {})

    def _iterations(self, node: Node) -> list[tuple[dict[str, Any], Node]]:
        """The loop scopes and body of `[for x in items: body]` / `[for (x, i) in ...]`."""
        parts = _named(node)
        head, items, body = parts[0], self.evaluate(parts[1]), parts[-1]
        if not isinstance(items, list):
            raise BicepError(f"cannot loop over {_text(parts[1])!r}")
        if head.type == "for_loop_parameters":
            item_name, index_name = (_text(part) for part in _named(head))
        else:
            item_name, index_name = _text(head), ""
        scopes = []
        for index, item in enumerate(items):
            scope = {item_name: item}
            if index_name:
                scope[index_name] = index
            scopes.append((scope, body))
        return scopes

    def resources(self) -> list[Declared]:
        return self._declared("resource_declaration")

    def modules(self) -> list[Declared]:
        return self._declared("module_declaration")

    def module(self, path: str) -> Declared:
        (found,) = [m for m in self.modules() if m.target == path]
        return found

    def outputs(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for kind, node in self._ordered:
            if kind == "output_declaration":
                parts = _named(node)
                result[_text(parts[0])] = self.evaluate(parts[-1])
        return result

    # -- expressions -------------------------------------------------------------------

    def _bool(self, node: Node) -> bool:
        result = self.evaluate(node)
        if not isinstance(result, bool):
            raise BicepError(f"{self.path.name}: cannot decide {_text(node)!r} (got {result!r})")
        return result

    def evaluate(self, node: Node) -> Any:
        kind = node.type
        parts = _named(node)
        if kind == "identifier":
            return self.value(_text(node))
        if kind in {"parenthesized_expression", "if_statement"} and len(parts) == 1:
            return self.evaluate(parts[0])
        if kind == "number":
            return int(_text(node))
        if kind == "boolean":
            return _text(node) == "true"
        if kind == "null":
            return None
        if kind == "string":
            return self._string(node)
        if kind == "array":
            return [self.evaluate(item) for item in parts]
        if kind == "object":
            result: dict[str, Any] = {}
            for prop in parts:
                if prop.type != "object_property":
                    continue
                key_node, value_node = _named(prop)[0], _named(prop)[-1]
                key = _text(key_node) if key_node.type == "identifier" else self.evaluate(key_node)
                result[str(key)] = self.evaluate(value_node)
            return result
        if kind == "unary_expression":
            operator, operand = node.children[0].type, self.evaluate(parts[0])
            if operator == "!":
                if not isinstance(operand, bool):
                    raise BicepError(f"cannot negate {_text(parts[0])!r}")
                return not operand
            return -operand if isinstance(operand, int) else Unresolved(_text(node))
        if kind == "binary_expression":
            return self._binary(node)
        if kind == "ternary_expression":
            condition, when_true, when_false = parts
            return self.evaluate(when_true if self._bool(condition) else when_false)
        if kind in {"member_expression", "subscript_expression"}:
            return self._postfix(node)
        if kind == "call_expression":
            return self._call(node)
        if kind == "for_statement":
            values = []
            for scope, body in self._iterations(node):
                self._locals.append(scope)
                try:
                    deployed, value = self._conditional(body)
                finally:
                    self._locals.pop()
                if deployed:
                    values.append(value)
            return values
        return Unresolved(_text(node))

    def _postfix(self, node: Node) -> Any:
        """a.b, a.?b and a[i] chains. The tree-sitter grammar binds `c ? x : y.b` as
        `(c ? x : y).b`; Bicep applies `.b` to `y` alone, and so does this."""
        chain: list[Node] = []
        base = node
        while base.type in {"member_expression", "subscript_expression"}:
            chain.append(base)
            base = _named(base)[0]
        if base.type == "ternary_expression":
            condition, when_true, when_false = _named(base)
            if self._bool(condition):
                return self.evaluate(when_true)
            value = self.evaluate(when_false)
        else:
            value = self.evaluate(base)
        for access in reversed(chain):
            value = self._access(value, access)
        return value

    def _access(self, value: Any, access: Node) -> Any:
        key_node = _named(access)[-1]
        if access.type == "member_expression":
            key = _text(key_node)
            if isinstance(value, dict):
                safe = any(child.type == ".?" for child in access.children)
                return value.get(key) if safe else value[key]
            return Unresolved(f"{_literal(value)}.{key}")
        index = self.evaluate(key_node)
        if isinstance(value, list | dict) and not isinstance(index, Unresolved):
            return value[index]
        return Unresolved(f"{_literal(value)}[{_literal(index)}]")

    def _string(self, node: Node) -> str:
        pieces: list[str] = []
        unresolved = False
        for child in node.children:
            if child.type == "string_content":
                pieces.append(_text(child))
            elif child.type == "escape_sequence":
                escaped = _text(child)[1:]
                pieces.append({"n": "\n", "r": "\r", "t": "\t"}.get(escaped, escaped))
            elif child.type == "interpolation":
                value = self.evaluate(_named(child)[0])
                unresolved |= isinstance(value, Unresolved | _Interpolated)
                pieces.append(_to_string(value))
        text = "".join(pieces)
        if _text(node).startswith("'''"):
            text = text.removeprefix("\n")  # Bicep drops the newline after the opening '''
        # Keep "has a runtime part" so that empty() still says False for it.
        return _Interpolated(text) if unresolved else text

    def _binary(self, node: Node) -> Any:
        left_node, right_node = _named(node)
        operator = next(child.type for child in node.children if not child.is_named)
        left = self.evaluate(left_node)
        if operator in {"&&", "||"}:
            if not isinstance(left, bool):
                raise BicepError(f"cannot decide {_text(left_node)!r}")
            if (operator == "&&" and not left) or (operator == "||" and left):
                return left
            return self._bool(right_node)
        right = self.evaluate(right_node)
        if operator == "??":
            return right if left is None else left
        if isinstance(left, Unresolved) or isinstance(right, Unresolved):
            if operator in {"==", "!="}:
                raise BicepError(f"cannot decide {_text(node)!r}")
            return Unresolved(_text(node))
        if operator in {"==", "!="}:
            return (left == right) if operator == "==" else (left != right)
        arithmetic: dict[str, Any] = {
            "+": lambda a, b: a + b,
            "-": lambda a, b: a - b,
            "*": lambda a, b: a * b,
            "/": lambda a, b: a // b,
            "%": lambda a, b: a % b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        return arithmetic[operator](left, right)

    def _call(self, node: Node) -> Any:
        function_node, arguments_node = _named(node)
        name = _text(function_node)
        args = [self.evaluate(arg) for arg in _named(arguments_node)]
        if any(isinstance(arg, Unresolved) for arg in args) and name != "empty":
            return Unresolved(f"{name}({', '.join(_literal(arg) for arg in args)})")
        if name == "empty":
            (arg,) = args
            if isinstance(arg, Unresolved | _Interpolated):
                return False  # a runtime value: an ID, a URI, an output
            return arg is None or len(arg) == 0
        if name == "string":
            return _to_string(args[0])
        if name == "int":
            return int(args[0])
        if name == "concat":
            if all(isinstance(arg, list) for arg in args):
                return [item for arg in args for item in arg]
            return "".join(_to_string(arg) for arg in args)
        if name == "format":
            template, *values = args
            text = re.sub(r"\{(\d+)\}", lambda m: _to_string(values[int(m.group(1))]), template)
            return text.replace("{{", "{").replace("}}", "}")
        if name == "union" and all(isinstance(arg, dict) for arg in args):
            merged: dict[str, Any] = {}
            for arg in args:
                merged.update(arg)
            return merged
        if name == "toLower" and isinstance(args[0], str):
            return args[0].lower()
        return Unresolved(f"{name}({', '.join(_literal(arg) for arg in args)})")


class _Interpolated(str):
    """A string with a runtime part inside, e.g. '${keyVault.outputs.uri}secrets/x'."""


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _literal(value: Any) -> str:
    """`value` written back as Bicep, for the source text of an Unresolved call."""
    if isinstance(value, Unresolved):
        return value[2:-1]
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return _to_string(value)
