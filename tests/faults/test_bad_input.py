"""Claim 8: bad input to every API route and CLI command, generated, never gives a 5xx or a
traceback and never writes part of a change; the batch decoder and the mapping refuse bad
values with their own errors only.

The API is attacked through its own OpenAPI description by schemathesis (valid and invalid
requests), the edit route also with generated bodies on a real contact, the CLI with generated
arguments; Batch.decode and the mapping with hypothesis.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mapping import ColumnType, UnstorableValue, check_entity, to_json, to_stored
from shared.services import Services
from shared.state.schedule import LoadMode
from shared.sync.batches import AccountChange, BadBatch, Batch, ContactChange
from tests.utils.faults import Figures, run, snapshot
from tests.utils.helpers import API_KEY, call_cli, make_account

FAST = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
GUID = "00000000-0000-4000-8000-000000000001"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


# Admin actions any well-formed body starts, by design: a verify asked for (202), a retry of
# the Sync Errors (none here). Accepted, they must still change nothing of the mirror.
ACTIONS = ("POST /api/sync/verify ->", "POST /api/sync/errors/retry ->")


def assert_error_shape(response: httpx.Response | Any) -> None:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)


def state(services: Services) -> tuple[Any, Any]:
    selection = services.fields.get()
    return snapshot(services), selection.to_json() if selection else None


def test_schemathesis_never_gets_a_5xx_or_a_partial_write(
    api_base: str, simulator: SimulatorHandle, services: Services, figures: Figures
) -> None:
    make_account(simulator, "Contoso", 3)
    run_cycle_now(services)
    before = state(services)
    schema = schemathesis.openapi.from_url(
        f"{api_base}/api/openapi.json", headers={"x-functions-key": API_KEY}
    ).exclude(path_regex=r"/api/sync/(pause|resume)$")  # bodiless switches: always valid
    seen: dict[str, int] = {}
    writes_accepted: list[str] = []

    def check(case: Any) -> None:
        response = case.call(base_url=api_base, headers={"x-functions-key": API_KEY})
        key = f"{case.method} {case.operation.path} -> {response.status_code}"
        seen[key] = seen.get(key, 0) + 1
        assert response.status_code < 500, (key, case.path_parameters, case.body, response.text)
        sent_key = response.request.headers.get("x-functions-key")
        # Negative cases may replace the key with a generated one: then, and only then, 401.
        assert (response.status_code == 401) == (sent_key != API_KEY), (key, sent_key)
        if response.status_code >= 400:
            assert_error_shape(response)
        elif case.method in ("PATCH", "PUT", "POST") and not key.startswith(ACTIONS):
            writes_accepted.append(key)

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(FAST, max_examples=150)
        @given(case=schema.as_strategy(generation_mode=mode))
        def fuzz(case: Any) -> None:
            check(case)

        fuzz()

    assert not writes_accepted, writes_accepted  # random ids and bodies cannot be valid edits
    assert state(services) == before  # so nothing changed at all
    requests = sum(seen.values())
    assert requests >= 200
    assert sum(n for k, n in seen.items() if not k.endswith("-> 401")) >= 150
    figures.record(
        "bad_input_api",
        schemathesis_version=schemathesis.__version__,
        requests=requests,
        operations=sorted({k.split(" -> ")[0] for k in seen}),
        statuses=sorted({int(k.rsplit(" ", 1)[1]) for k in seen}),
        server_errors=0,
        state_changed=False,
    )


@pytest.fixture
def one_contact(simulator: SimulatorHandle, services: Services) -> tuple[str, str]:
    account_id, contacts = make_account(simulator, "Contoso", 2)
    run_cycle_now(services)
    return account_id, contacts[0]


KINDS = {
    "name": ColumnType.STRING,
    "revenue": ColumnType.MONEY,
    "numberofemployees": ColumnType.INTEGER,
    "industrycode": ColumnType.CHOICE,
    "websiteurl": ColumnType.STRING,
}
FIELD_NAMES = [*KINDS, "nosuch", "creditlimit"]
valid_fields = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=40),
        # Within the columns' own limits (MinValue, MaxValue, Precision): Dynamics could hold them.
        "revenue": st.integers(0, 10**9) | st.floats(0, 1e12).map(lambda x: round(x, 2)),
        "numberofemployees": st.integers(0, 10**9),
        "industrycode": st.integers(1, 30),
        "websiteurl": st.text(max_size=40) | st.none(),
    },
)


def test_edits_are_all_or_nothing(
    api_base: str, services: Services, one_contact: tuple[str, str], figures: Figures
) -> None:
    account_id, contact_id = one_contact
    outcomes: dict[int, int] = {}
    with httpx.Client(base_url=api_base, headers={"x-functions-key": API_KEY}, timeout=60) as api:

        @settings(FAST, max_examples=120)
        @given(
            fields=valid_fields
            | st.dictionaries(
                st.sampled_from(FIELD_NAMES) | st.text(max_size=12), json_values, max_size=4
            )
            # Good fields with one bad one: the good ones must not be applied alone.
            | st.tuples(valid_fields, st.sampled_from(["nosuch", "creditlimit", "revenue"])).map(
                lambda t: {**t[0], t[1]: "not a number" if t[1] == "revenue" else 1}
            )
        )
        def edit(fields: dict[str, Any]) -> None:
            before = api.get(f"/api/accounts/{account_id}").json()
            response = api.patch(
                f"/api/contacts/{contact_id}/account",
                content=json.dumps({"fields": fields}),  # NaN and Infinity included
                headers={"content-type": "application/json"},
            )
            outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
            after = api.get(f"/api/accounts/{account_id}").json()
            assert response.status_code in (200, 422), response.text
            if response.status_code == 422:
                assert_error_shape(response)
                assert after == before  # not one of the fields changed
                return
            for name, value in fields.items():  # all of them, as sent
                kind = KINDS[name]
                assert after["fields"][name] == to_json(to_stored(name, kind, value)), name

        edit()
    assert outcomes.get(422, 0) >= 20 and outcomes.get(200, 0) >= 20, outcomes
    figures.record("bad_input_edits", edits=sum(outcomes.values()), statuses=outcomes)


def test_raw_bodies_and_ids_never_fail_the_server(
    api_base: str, services: Services, one_contact: tuple[str, str]
) -> None:
    _, contact_id = one_contact
    before = state(services)
    with httpx.Client(base_url=api_base, headers={"x-functions-key": API_KEY}, timeout=60) as api:

        @settings(FAST, max_examples=150)
        @given(
            body=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
            path=st.sampled_from(
                [
                    f"/api/contacts/{contact_id}/account",
                    "/api/sync/fields",
                    "/api/accounts",
                    f"/api/accounts/{GUID}",
                ]
            ),
            method=st.sampled_from(["PATCH", "PUT", "POST", "DELETE"]),
        )
        def send(body: bytes, path: str, method: str) -> None:
            response = api.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
            assert 400 <= response.status_code < 500, (method, path, body, response.text)
            assert_error_shape(response)

        send()
    assert state(services) == before


# -- the batch decoder ------------------------------------------------------------------------


def _valid_batch() -> str:
    return Batch(
        cycle_id="20260101T000000-abcdef12",
        batch_id="000001",
        mode=LoadMode.DELTA,
        columns={"name": ColumnType.STRING, "revenue": ColumnType.MONEY},
        accounts=[AccountChange(id=GUID, version=7, values={"name": "x", "revenue": 1.0})],
        contacts=[ContactChange(id=GUID, version=3, parent_id=GUID, parent_type="account")],
    ).encode()


def _mutate(data: Any, path: list[int], value: Any) -> Any:
    """Replace one node of a JSON document, chosen by a list of indices."""
    if not path or not isinstance(data, dict | list) or not data:
        return value
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = keys[path[0] % len(keys)]
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[key] = _mutate(data[key], path[1:], value)
    return copy


def _decodes_or_refuses(message: str | bytes) -> None:
    try:
        batch = Batch.decode(message)
    except BadBatch:
        return
    # What decodes is a batch whose ids can go into table keys.
    changes: list[AccountChange | ContactChange] = [*batch.accounts, *batch.contacts]
    for change in changes:
        assert len(change.id) == 36 and change.id == change.id.lower()


@settings(FAST, max_examples=1500)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_decode_refuses_any_bytes(message: str | bytes) -> None:
    _decodes_or_refuses(message)


@settings(FAST, max_examples=1500)
@given(
    path=st.lists(st.integers(min_value=0, max_value=50), max_size=6),
    value=json_values | st.sampled_from([math.inf, -math.inf, math.nan, 10**30, -1, True]),
)
def test_decode_refuses_any_corrupted_batch(path: list[int], value: Any) -> None:
    document = _mutate(json.loads(_valid_batch()), path, value)
    _decodes_or_refuses(json.dumps(document))


@pytest.mark.parametrize(
    "message",
    [
        "[" * 100_000,
        '{"v": 1, "cycle": "c", "batch": "b", "mode": "delta", "columns": {}, '
        '"accounts": [{"id": "' + GUID + '", "ver": Infinity, "f": {}}], "contacts": []}',
        _valid_batch().replace(GUID, "../../other"),
        _valid_batch().replace(GUID, "x' or PartitionKey ne '"),
        _valid_batch().replace("20260101T000000-abcdef12", "a/b#c?"),
        b"\xff\xfe\x00",
    ],
)
def test_decode_refuses_known_nasty_messages(message: str | bytes) -> None:
    with pytest.raises(BadBatch):
        Batch.decode(message)


def test_a_valid_batch_round_trips() -> None:
    assert Batch.decode(_valid_batch()).encode() == _valid_batch()


# -- the mapping --------------------------------------------------------------------------------


@settings(FAST, max_examples=2000)
@given(kind=st.sampled_from(list(ColumnType)), value=json_values)
def test_mapping_stores_or_refuses_any_value(kind: ColumnType, value: Any) -> None:
    try:
        stored = to_stored("col", kind, value)
    except UnstorableValue:
        return
    if stored is None:
        assert value is None
        return
    check_entity({"PartitionKey": "p", "RowKey": "r", "f_col": stored})
    back = to_json(stored)
    if kind in (ColumnType.STRING, ColumnType.BOOLEAN):
        assert back == value
    elif kind in (ColumnType.INTEGER, ColumnType.CHOICE, ColumnType.BIGINT):
        assert back == value and isinstance(back, int)
    elif kind in (ColumnType.MONEY, ColumnType.DECIMAL):
        assert back == float(value)


# -- the CLI ------------------------------------------------------------------------------------

COMMANDS = ["cycle", "run", "status", "replay-poison", "worker", "fields", "sim-not", "bogus"]
garbage = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=20,
).filter(lambda s: not s.startswith("-"))


def test_cli_refuses_generated_arguments(
    simulator: SimulatorHandle, services: Services, figures: Figures
) -> None:
    run_cycle_now(services)
    stored = services.fields.get()
    assert stored is not None
    codes: dict[int, int] = {}

    @settings(FAST, max_examples=60)
    @given(command=st.sampled_from(COMMANDS), extra=st.lists(garbage, min_size=1, max_size=3))
    def anything_else(command: str, extra: list[str]) -> None:
        # Extra words after a command that takes none, or an unknown (sub)command: usage, 2.
        code, err = call_cli([command, *extra])
        codes[code] = codes.get(code, 0) + 1
        assert code == 2 and "usage:" in err, (command, extra, code, err)

    @settings(FAST, max_examples=60)
    @given(names=st.lists(garbage.filter(lambda s: "," not in s), min_size=1, max_size=3))
    def select(names: list[str]) -> None:
        code, err = call_cli(["fields", "select", ",".join(names)])
        codes[code] = codes.get(code, 0) + 1
        if code == 0:  # a generated list that happens to name real, readable columns
            return
        assert code == 1 and "nothing changed" in err, (names, code, err)
        assert services.fields.get() == stored

    anything_else()
    select()
    # The same as real processes: a message, an exit code, no traceback.
    env = dict(os.environ)
    for args in (
        ["bogus"],
        ["cycle", "--now"],
        ["fields", "select", ",,"],
        ["worker", "--visibility-timeout", "soon"],
    ):
        done = run(args, env)
        assert done.returncode in (1, 2), (args, done.returncode)
        assert "Traceback" not in done.stderr and done.stderr.strip()
    figures.record("bad_input_cli", invocations=sum(codes.values()), exit_codes=codes)
