"""Issue 25 item 3: a corpus of hostile values driven through every API route and every CLI
command that takes input. Each one gets a 4xx in the contract's error shape (the CLI: a
message and exit code 1 or 2), never a 5xx or a traceback, and nothing in storage changes.

The routes come from the app's own OpenAPI description, so a new route is attacked as soon as
it exists; a new route with a body must say here what a valid body is, or this test fails.
The commands come from the CLI's own parser in the same way. Values a parameter takes as free
text (a filter such as `fields` or a retry's `ids`) may be answered with a 200, but still
change nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from acctsync.cli import build_parser
from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.services import Services
from shared.settings import get_settings
from shared.web.app import create_app
from tests.faults.test_bad_input import assert_error_shape
from tests.utils.helpers import API_KEY, call_cli, make_account

# Text no parameter of acctsync means: structure, size, control and format characters,
# unicode look-alikes, traversal, injection and template syntax.
HOSTILE_TEXT = [
    "",
    "[" * 20_000,
    '{"a":' * 5_000,
    "x" * 40_000,
    "\x00",
    "a\x00b",
    "\t",
    "\r\n",
    "name\n",
    "\u202ename",
    "\ud800",
    "\ufeffname",
    "\uff4e\uff41\uff4d\uff45",  # "name" in full-width letters
    "../../etc/passwd",
    "..%2f..%2f",
    "%00",
    "' or PartitionKey ne '",
    "name eq 'x' or 1 eq 1",
    "{{7*7}}${7*7}",
    "<script>alert(1)</script>",
    '=HYPERLINK("https://evil.example")',
]
HOSTILE_TIMES = [
    "0001-01-01T00:00:00+05:00",  # before the year 1 in UTC: OverflowError once
    "9999-12-31T23:59:59-05:00",  # after the year 9999 in UTC
    "2026-13-45T00:00:00Z",
    "0000-00-00T00:00:00Z",
    "2026-02-30",
    "2026-01-01T00:00:00",  # no zone
    "2026-01-01T25:00:00Z",
    "1e309",
    "yesterday",
    "[" * 20_000,
    "\x00",
]
HOSTILE_NUMBERS = ["-1", "0", "1e309", "NaN", "-0", "10" + "0" * 40, "0x10", "1.5", ""]
HOSTILE_BOOLEANS = ["maybe", "2", "-1", "", "\x00", "truee", "[true]"]
GUID = "00000000-0000-4000-8000-000000000001"
HOSTILE_IDS = [
    "abc",
    "../../secret",
    "x' or PartitionKey ne '",
    GUID.replace("1", "g"),
    GUID + "/../x",
    "{" + GUID + "}",
    GUID + "\x00",
    GUID.replace("-", "\u2010"),  # a unicode hyphen
    "%2e%2e%2f",
    "[" * 2_000,
]
# Values that a JSON body can hold and that are of no use to any field.
HOSTILE_JSON: list[Any] = [
    None,
    True,
    -1,
    2**64,
    1.5e308,
    [],
    {},
    [[[[[["x"]]]]]],
    {"$ref": "#/"},
    *HOSTILE_TEXT[:6],
]

# Query parameters whose values are free text (a filter): a 200 is fine, a 5xx is not.
FREE_TEXT = {("GET", "/api/activities", "fields")}
# Text searched for: any text is a search (it finds what starts with it, perhaps nothing).
FREE_TEXT |= {
    ("GET", path, "search")
    for path in ("/api/accounts", "/api/contacts", "/api/accounts/{accountid}/contacts")
}


def _kind(parameter: dict[str, Any]) -> str:
    name, schema = parameter["name"], parameter["schema"]
    types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    if parameter["in"] == "path":
        return "id"
    if name == "pageToken":
        return "token"
    if name in ("since", "modified_since"):
        return "time"
    if "integer" in types:
        return "number"
    if "boolean" in types:
        return "boolean"
    return "text"


VALUES = {
    "id": HOSTILE_IDS,
    "token": HOSTILE_TEXT,
    "time": HOSTILE_TIMES,
    "number": HOSTILE_NUMBERS,
    "boolean": HOSTILE_BOOLEANS,
    "text": HOSTILE_TEXT,
}


# Values of the corpus that are valid where they land: an open bound of a range, a retry of
# every error (there are none) or of no id. They are left out.
VALID_THERE: dict[tuple[str, str, str], list[Any]] = {
    ("POST", "/api/sync/resync", "modified_since"): [None, ""],
    ("POST", "/api/sync/errors/retry", "ids"): [None, []],
    ("POST", "/api/sync/errors/retry", "whole"): [{}],
    # A verify asked for with either switch, or none, is a verify: only other values are hostile.
    ("POST", "/api/sync/verify", "repair"): [True, False],
    ("POST", "/api/sync/verify", "deep"): [True, False],
    ("POST", "/api/sync/verify", "whole"): [None, {}],
    ("POST", "/api/sync/pause", "whole"): [None, {}],
}
# Properties that take any one line of printable text up to their length.
ANY_LINE = {("POST", "/api/sync/pause", "reason")}


def _bodies(route: tuple[str, str], valid: dict[str, Any]) -> Iterator[Any]:
    """Hostile variants of a valid JSON body: each property replaced by each hostile JSON
    value, an unknown property added, and the body replaced whole."""
    for name in [*valid, "whole"]:
        for value in HOSTILE_JSON:
            if value in VALID_THERE.get((*route, name), []):
                continue
            if (*route, name) in ANY_LINE and isinstance(value, str) and value.isprintable():
                continue  # a line of text, however odd, is what that property takes
            yield value if name == "whole" else {**valid, name: value}
    yield {**valid, "__proto__": {"admin": True}}


# A valid body of each route that takes one, and which of its properties are free text.
def _valid_bodies(contact_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        ("PATCH", "/api/contacts/{contactid}/account"): {"fields": {"name": "Renamed"}},
        ("PUT", "/api/sync/fields"): {"selected": ["name", "revenue"]},
        ("POST", "/api/sync/resync"): {"field": "name", "modified_since": "2026-01-01T00:00:00Z"},
        ("POST", "/api/sync/errors/retry"): {"ids": [contact_id]},
        ("POST", "/api/sync/verify"): {"repair": False, "deep": False},
        ("POST", "/api/sync/pause"): {"reason": "maintenance"},
    }


def _edit_values() -> Iterator[dict[str, Any]]:
    """Values of account fields Dynamics could not hold, per type of column."""
    for value in [v for v in HOSTILE_JSON if v is not None] + ["1e309", "NaN"]:
        if not isinstance(value, str):
            yield {"name": value}
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            yield {"revenue": value}
        yield {"industrycode": value}
        yield {"numberofemployees": value}
    for text in ["\x00", "a\x01b", "\ud800", "\ufffe", "x" * 40_000]:
        yield {"name": text}
    yield {"numberofemployees": 2**31}
    yield {"industrycode": 10**6}
    yield {"nosuch": 1}
    yield {"name": "ok", "revenue": "not a number"}  # one bad field: none applied


def storage_state(services: Services) -> dict[str, Any]:
    """Every row of every table and the messages waiting on every queue, but the audit
    trail's: a refused admin action is recorded there, refused, by design."""
    account = services.storage
    tables = {
        table.name: sorted(
            json.dumps(dict(row), sort_keys=True, default=str)
            for row in account.table(table.name).list_entities()
            if row["PartitionKey"] != services.audit.PARTITION
        )
        for table in account._table_service.list_tables()
    }
    queues = {
        queue.name: account.queue_length(queue.name)
        for queue in account._queue_service.list_queues()
    }
    return {"tables": tables, "queues": queues}


@pytest.fixture
def mirrored(simulator: SimulatorHandle, services: Services, api_base: str) -> tuple[str, str]:
    account_id, contacts = make_account(simulator, "Contoso", 2)
    run_cycle_now(services)
    with httpx.Client(base_url=api_base, headers={"x-functions-key": API_KEY}) as api:
        # The paging-token key is made with the first token: before the state is taken.
        api.get("/api/activities/pagingtoken", params={"since": "2026-01-01T00:00:00Z"})
    return account_id, contacts[0]


def _quoted(value: str) -> str:
    """Percent-encoded as a client would send it; a lone surrogate as the bytes it would be."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _query(params: dict[str, str]) -> str:
    return "?" + "&".join(f"{k}={_quoted(v)}" for k, v in params.items()) if params else ""


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    paths = create_app().openapi()["paths"]
    return [(m.upper(), path, op) for path, ops in paths.items() for m, op in ops.items()]


def test_every_route_refuses_the_hostile_corpus(
    api_base: str, services: Services, mirrored: tuple[str, str]
) -> None:
    account_id, contact_id = mirrored
    before = storage_state(services)
    bodies = _valid_bodies(contact_id)
    sent = 0
    failures: list[str] = []
    with httpx.Client(base_url=api_base, headers={"x-functions-key": API_KEY}, timeout=120) as api:
        tokens = {
            walk: api.get(
                f"/api/{walk}/pagingtoken", params={"since": "2026-01-01T00:00:00Z"}
            ).json()["nextPageToken"]
            for walk in ("activities", "deleted")
        }

        def send(method: str, path: str, *, free: bool, **request: Any) -> None:
            nonlocal sent
            sent += 1
            if "json" in request:  # as JSON escapes: a lone surrogate reaches the server as one
                request["content"] = json.dumps(request.pop("json"))
                request["headers"] = {"content-type": "application/json"}
            response = api.request(method, path, **request)
            where = f"{method} {path} {str(request)[:160]}"
            if response.status_code >= 500 or (response.status_code < 400 and not free):
                failures.append(f"{where} -> {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400:
                assert_error_shape(response)

        for method, template, operation in _operations():
            parameters = operation.get("parameters", [])
            ids = {"accountid": account_id, "contactid": contact_id}
            valid_query = {
                p["name"]: tokens[template.split("/")[2]]
                for p in parameters
                if p["name"] == "pageToken" and p.get("required")
            }
            body_key = (method, template)
            has_body = "requestBody" in operation
            assert not has_body or body_key in bodies, f"add a valid body for {body_key}"
            body = {"json": bodies[body_key]} if has_body else {}
            for parameter in parameters:
                name, kind = parameter["name"], _kind(parameter)
                free = (method, template, name) in FREE_TEXT
                for value in VALUES[kind]:
                    if parameter["in"] == "path":
                        path = template.format(**{**ids, name: _quoted(value)})
                        send(method, path + _query(valid_query), free=free, **body)
                    else:
                        path = template.format(**ids)
                        query = {**valid_query, name: value}
                        send(method, path + _query(query), free=free, **body)
            if has_body:
                path = template.format(**ids)
                for hostile in _bodies(body_key, bodies[body_key]):
                    send(method, path, free=False, json=hostile)
        for fields in _edit_values():
            path = f"/api/contacts/{contact_id}/account"
            send("PATCH", path, free=False, json={"fields": fields})
        for raw in ("[" * 60_000, '{"fields": ' * 10_000, "\xff\xfe", '{"fields": {"name": NaN}}'):
            path = f"/api/contacts/{contact_id}/account"
            headers = {"content-type": "application/json"}
            send(
                "PATCH",
                path,
                free=False,
                content=raw.encode(errors="surrogatepass"),
                headers=headers,
            )
    assert not failures, f"{len(failures)} of {sent}:\n" + "\n".join(failures[:40])
    assert storage_state(services) == before
    assert sent > 400  # the corpus went through every route


# -- the CLI ------------------------------------------------------------------------------------

# Commands that take no input from the command line beyond switches, or serve until stopped.
NO_INPUT = {"cycle", "run", "status", "replay-poison", "reset-cursors", "worker", "sim"}
NO_INPUT |= {"validate", "resume", "verify"}


def _cli_cases(tmp_path: Path) -> Iterator[tuple[list[str], bool]]:
    """(argv, free): each command's input replaced by each hostile value."""
    for text in HOSTILE_TEXT:
        if text.strip() != "name":  # names are taken without the whitespace around them
            yield ["fields", "select", text], False
            yield ["resync", text], False
        yield ["export", text], False
        yield ["export", "accounts", "--format", text], False
        yield ["retry-errors", "--code", text], False
        yield ["retry-errors", "--id", text], True  # a retry of nothing changes nothing
        if not text.isprintable() or len(text) > 500:  # any other line is a reason
            yield ["pause", "--reason", text], False
    for moment in HOSTILE_TIMES:
        yield ["resync", "name", "--modified-since", moment], False
        yield ["resync", "name", "--modified-until", moment], False
        yield ["export", "accounts", "--since", moment], False
        yield ["audit", "--since", moment], False
    # Times Dynamics cannot filter on (it holds 1753 to 9999).
    for moment in ("1600-01-01T00:00:00Z", "1752-12-31T23:59:59Z"):
        yield ["resync", "name", "--modified-since", moment], False
    yield (
        ["resync", "name", "--modified-since", "2026-02-01Z", "--modified-until", "2026-01-01Z"],
        False,
    )
    (tmp_path / "a-directory").mkdir()
    for output in ("", str(tmp_path / "no" / "such" / "dir.csv"), str(tmp_path / "a-directory")):
        yield ["export", "accounts", "--output", output], False


def test_every_command_refuses_the_hostile_corpus(
    simulator: SimulatorHandle, services: Services, mirrored: tuple[str, str], tmp_path: Path
) -> None:
    commands = {
        name
        for action in build_parser()._subparsers._group_actions  # type: ignore[union-attr]
        for name in getattr(action, "choices", {}) or {}
    }
    cases = list(_cli_cases(tmp_path))
    covered = {argv[0] for argv, _ in cases}
    assert commands - NO_INPUT == covered, "a command that takes input is not in the corpus"
    before = storage_state(services)
    failures: list[str] = []
    for argv, free in cases:
        try:
            code, err = call_cli(argv)
        except Exception as error:  # a traceback, had it run as a process
            failures.append(f"{argv!r:.120} raised {type(error).__name__}: {error}")
            continue
        if code == 0 and free:
            continue
        if code not in (1, 2) or not err.strip() or "Traceback" in err:
            failures.append(f"{argv!r:.120} -> {code} {err[:200]!r}")
    assert not failures, "\n".join(failures[:40])
    assert storage_state(services) == before
    assert not list((tmp_path / "a-directory").iterdir())


# -- settings -----------------------------------------------------------------------------------

NUMERIC_SETTINGS = [
    "SYNC_INTERVAL_MINUTES",
    "ACTIVITY_CONTACT_LIMIT",
    "ACCTSYNC_PLAN_BUDGET_SECONDS",
    "ACCTSYNC_LEASE_SECONDS",
    "ACCTSYNC_PAGE_SIZE",
    "SYNC_ERROR_RETENTION_DAYS",
    "FEED_RETENTION_DAYS",
    "ACCTSYNC_FEED_SETTLE_SECONDS",
    "VERIFY_INTERVAL_HOURS",
]
HOSTILE_SETTINGS = [
    *[
        (name, value)
        for name in NUMERIC_SETTINGS
        for value in ("nan", "inf", "-inf", "1e309", "-1", "five")
    ],
    ("VERIFY_REPAIR", "maybe"),
    ("VERIFY_REPAIR", "yes please"),
    ("SYNC_FILTER_COLUMN", "x' or 1 eq 1"),
    ("SYNC_FILTER_COLUMN", "../x"),
    ("DATAVERSE_URL", "javascript:alert(1)"),
    ("DATAVERSE_URL", "http://contoso.crm.dynamics.com"),
    ("DATAVERSE_URL", "file:///etc/passwd"),
]


@pytest.mark.parametrize(("name", "value"), HOSTILE_SETTINGS)
def test_every_setting_refuses_hostile_values_by_name(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad setting is a configuration error naming it (exit 2), never a traceback: NaN and
    infinity passed the minimum check, and int() of them raised later."""
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        code, err = call_cli(["status"])
    finally:
        get_settings.cache_clear()
    assert code == 2 and "configuration error" in err and name in err, (code, err)
