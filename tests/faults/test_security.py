"""Claim 9: security. A request without the right key is refused (401) on every route; the
client secret, the user's password and bearer tokens never reach logs, status or command
output; TLS verification cannot be switched off; ids from outside are validated before they
reach a URL or a table query; the local host listens on 127.0.0.1 only.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import msal
import pytest
import trustme

from acctsync.ports import free_port, wait_for_port
from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.dataverse.client import ChangePage, DataverseAuthError
from shared.services import Services
from shared.state.schedule import LoadMode
from shared.storage import BATCH_CONTAINER, BATCH_QUEUE
from shared.sync.claims import ClaimStore
from shared.sync.column_access import check_columns
from shared.sync.cycle import _NoProgress
from shared.sync.readers import AccountReader, ContactReader, RowErrors, TableReader
from shared.sync.sender import BatchSender
from shared.sync.status import sync_status
from shared.web.app import create_app
from tests.utils.faults import ACCTSYNC, Figures, Process, run, services_for, snapshot
from tests.utils.helpers import API_KEY, make_account

GUID = "00000000-0000-4000-8000-000000000001"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")
ROUTES = [
    (method.upper(), path.replace("{accountid}", GUID).replace("{contactid}", GUID))
    for path, methods in create_app().openapi()["paths"].items()
    for method in methods
] + [("GET", "/api/nosuchroute"), ("DELETE", f"/api/accounts/{GUID}"), ("GET", "/api")]
# The console at / signs people in itself (tests/console): a redirect to its sign-in page.


def test_every_route_refuses_a_missing_or_wrong_key(
    api_base: str, simulator: SimulatorHandle, services: Services, figures: Figures
) -> None:
    make_account(simulator, "Contoso", 1)
    run_cycle_now(services)
    before = snapshot(services)
    wrong_keys: list[dict[str, str]] = [
        {},
        {"x-functions-key": ""},
        {"x-functions-key": "wrong"},
        {"x-functions-key": API_KEY[:-1]},
        {"x-functions-key": API_KEY + "x"},
        {"x-functions-key": API_KEY.upper()},
        {"authorization": f"Bearer {API_KEY}"},
        {"x-api-key": API_KEY},
    ]
    refused = 0
    with httpx.Client(base_url=api_base, timeout=30) as client:
        for method, path in ROUTES:
            body = {"fields": {"name": "x"}} if method in ("PATCH", "PUT", "POST") else None
            for headers in wrong_keys:
                response = client.request(method, path, headers=headers, json=body)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.json()["error"]["code"] == "unauthorized"
                refused += 1
            for query in ({"code": "wrong"}, {"code": ""}):
                response = client.request(method, path, params=query, json=body)
                assert response.status_code == 401, (method, path, query)
                refused += 1
            # The right key gets through, so the refusals above are about the key.
            allowed = client.request(method, path, headers={"x-functions-key": API_KEY})
            assert allowed.status_code != 401, (method, path)
    assert snapshot(services) == before
    figures.record("security_keys", routes=len(ROUTES), refused_requests=refused)


# -- secrets ------------------------------------------------------------------------------------


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log record of this process, at DEBUG, from every library."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s %(args)s"))
    root = logging.getLogger()
    saved = (
        root.level,
        {
            name: logging.getLogger(name).level
            for name in ("msal", "httpx", "httpcore", "azure", "urllib3", "uvicorn")
        },
    )
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in saved[1]:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


def _tokens_of(services: Services) -> set[str]:
    """The access and refresh tokens msal holds in this process (what the simulator issued)."""
    app = services.dataverse().transport._tokens._app  # type: ignore[attr-defined]  # msal's, behind Tokens
    cache = app.token_cache
    found = set()
    for kind in (msal.TokenCache.CredentialType.ACCESS_TOKEN, "RefreshToken"):
        for item in cache.search(kind):
            found.add(str(item["secret"]))
    return found


def _leaks(text: str, secrets: set[str]) -> list[str]:
    found = [s[:12] + "..." for s in secrets if s and s in text]
    found += [m[:20] + "..." for m in JWT.findall(text)]
    if re.search(r"Bearer\s+[A-Za-z0-9_.-]{20,}", text):
        found.append("Bearer <token>")
    return found


def test_secrets_never_reach_logs_status_or_output(
    api_base: str,
    simulator: SimulatorHandle,
    services: Services,
    env: dict[str, str],
    captured_logs: io.StringIO,
    figures: Figures,
) -> None:
    secret = simulator.env["DATAVERSE_CLIENT_SECRET"]
    password = simulator.env["SIM_PASSWORD"]
    account_id, contacts = make_account(simulator, "Contoso", 2)
    run_cycle_now(services)
    tokens = _tokens_of(services)
    simulator.control.expire_tokens()  # the 401-and-refresh path too
    simulator.control.update_account(account_id, {"name": "Renamed"})
    run_cycle_now(services)
    tokens |= _tokens_of(services)
    assert len(tokens) >= 2  # the test knows what to look for: before and after expiry
    outputs: list[str] = []
    with httpx.Client(base_url=api_base, headers={"x-functions-key": API_KEY}) as api:
        for path in ("/api/sync/status", "/api/sync/fields", f"/api/accounts/{account_id}"):
            outputs.append(api.get(path).text)
        outputs.append(
            api.patch(f"/api/contacts/{contacts[0]}/account", json={"fields": {"name": "L"}}).text
        )
    outputs.append(json.dumps(sync_status(services).to_json(), default=str))

    # Refused credentials: the error and what it logs name no secret either.
    wrong = {**env, "DATAVERSE_CLIENT_SECRET": "wrong-" + secret[::-1]}
    refused = services_for(wrong)
    with pytest.raises(DataverseAuthError) as error:
        refused.dataverse().metadata.who_am_i()
    outputs.append(str(error.value))
    refused.close()

    # The ROPC sync user, when the simulator could open its user realm on port 443.
    ropc_checked = simulator.env.get("SIM_USERREALM_443") == "1"
    if ropc_checked:
        ropc_env = {
            **env,
            "DATAVERSE_USERNAME": simulator.env["SIM_USERNAME"],
            "DATAVERSE_PASSWORD": password,
        }
        ropc = services_for(ropc_env)
        assert ropc.dataverse().metadata.who_am_i()["UserId"]
        tokens |= _tokens_of(ropc)
        ropc.close()

    # The command line, as real processes.
    processes = [run(["cycle"], env), run(["status"], env), run(["fields", "list"], env)]
    processes.append(run(["cycle"], {**env, "DATAVERSE_CLIENT_SECRET": "wrong-secret"}))
    assert [p.returncode for p in processes] == [0, 0, 0, 1]
    assert "Traceback" not in processes[-1].stderr
    outputs += [p.stdout + p.stderr for p in processes]

    logs = captured_logs.getvalue()
    # DEBUG records of the HTTP stack, msal and the storage SDK were all captured.
    assert "httpcore" in logs and "msal" in logs and "azure" in logs, logs[:2000]
    secrets = {secret, password, "wrong-" + secret[::-1], *tokens}
    assert _leaks(logs, secrets) == []
    for text in outputs:
        assert _leaks(text, secrets) == [], text[:500]
    figures.record(
        "security_secrets",
        log_bytes_scanned=len(logs),
        outputs_scanned=len(outputs),
        tokens_known=len(tokens),
        ropc_checked=ropc_checked,
        leaks=0,
    )


# -- TLS ----------------------------------------------------------------------------------------

# Names under which other tools let verification be switched off; none may work here.
NO_VERIFY = {
    "PYTHONHTTPSVERIFY": "0",
    "CURL_CA_BUNDLE": "",
    "REQUESTS_CA_BUNDLE": "",
    "SSL_CERT_FILE": "",
    "HTTPX_SSL_VERIFY": "0",
    "DATAVERSE_VERIFY": "false",
    "DATAVERSE_TLS_VERIFY": "0",
    "DATAVERSE_INSECURE": "1",
    "DATAVERSE_SKIP_TLS_VERIFY": "true",
    "ACCTSYNC_INSECURE": "1",
    "ACCTSYNC_TLS_VERIFY": "0",
}


def test_tls_verification_cannot_be_switched_off(
    simulator: SimulatorHandle, services: Services, env: dict[str, str], tmp_path: Path
) -> None:
    wrong_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(wrong_ca))
    without = {k: v for k, v in env.items() if k != "DATAVERSE_CA_BUNDLE"}
    simulator.control.requests(clear=True)
    for case in (
        {**env, "DATAVERSE_CA_BUNDLE": str(wrong_ca)},
        {**env, "DATAVERSE_CA_BUNDLE": str(wrong_ca), **NO_VERIFY},
        {**without, **NO_VERIFY},
    ):
        done = run(["cycle"], case, timeout=120)
        assert done.returncode == 1, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert "TLS certificate" in done.stderr and "DATAVERSE_CA_BUNDLE" in done.stderr
    # Not one request got through to the simulator (Web API or authority).
    assert simulator.control.requests() == []
    # And with the right CA the same settings work.
    assert run(["status"], env).returncode == 0


# -- ids from outside ---------------------------------------------------------------------------

HOSTILE_IDS = [
    "abc",
    "../../secret",
    "x' or PartitionKey ne '",
    "00000000-0000-0000-0000-00000000000g",
    "00000000-0000-4000-8000-000000000001/../x",
    "%2e%2e%2f",
    "",
]


def test_api_ids_are_validated_before_any_lookup(api_base: str, services: Services) -> None:
    with httpx.Client(base_url=api_base, headers={"x-functions-key": API_KEY}) as api:
        for bad in [*HOSTILE_IDS[:-1], "{" + GUID + "}", GUID.replace("-", "")]:
            for path in (
                f"/api/accounts/{bad}",
                f"/api/contacts/{bad}",
                f"/api/contacts/{bad}/activities",
            ):
                response = api.get(path)
                assert response.status_code in (400, 404), (path, response.text)
                code = response.json()["error"]["code"]
                assert code in ("invalid_id", "not_found"), (path, code)
            patched = api.patch(f"/api/contacts/{bad}/account", json={"fields": {"name": "x"}})
            assert patched.status_code in (400, 404, 405), bad


@pytest.mark.no_oracle(
    "it queues a batch of made-up rows (GUIDs no Dynamics holds) straight from the readers; "
    "applying it mirrors records Dynamics never had, which is what verify must call drift"
)
def test_ids_in_dataverse_rows_are_validated_before_they_become_keys(
    simulator: SimulatorHandle, services: Services
) -> None:
    """Rows as the Web API sends them go through the readers and the sender: a row whose id is
    not a GUID becomes a sync error that status shows, and never a table key or a queued
    batch."""
    errors = RowErrors(services.errors, "20260101T000000-security")
    good = {
        "accountid": GUID,
        "versionnumber": 5,
        "modifiedon": "2026-01-01T00:00:00Z",
        "name": "ok",
    }
    rows = (
        [good]
        + [{**good, "accountid": bad} for bad in HOSTILE_IDS]
        + [{**good, "accountid": GUID.replace("1", "2"), "versionnumber": "five"}]
    )
    columns = check_columns(services, services.dataverse())
    accounts = AccountReader(columns.account, errors)
    contacts = ContactReader(columns.contact, errors)
    contact_rows = [
        {"contactid": GUID, "versionnumber": 3, "_parentcustomerid_value": "'; drop"},
        {"contactid": "../y", "versionnumber": 3},
    ]
    pages: list[tuple[TableReader, ChangePage]] = [
        (accounts, ChangePage(rows, ["../x", GUID.replace("1", "3")], None, "delta")),
        (contacts, ChangePage(contact_rows, [], None, "delta")),
    ]
    for reader, page in pages:
        sender = BatchSender(
            services.storage.queue(BATCH_QUEUE),
            ClaimStore(services.storage.container(BATCH_CONTAINER)),
            reader.header(errors.cycle_id, LoadMode.DELTA, 0),
            sent_before=0,
            progress=_NoProgress(),
        )
        for fragment in reader.fragments(page):
            sender.add(fragment)
        sender.end_page()
    queued = services.storage.queue(BATCH_QUEUE).peek_messages(max_messages=32)
    ids = [
        change["id"]
        for message in queued
        for change in json.loads(bytes(message.content))["accounts"]
        + json.loads(bytes(message.content))["contacts"]
    ]
    assert sorted(ids) == sorted([GUID, GUID.replace("1", "3")])
    status_errors = sync_status(services).last_errors
    assert len(status_errors) == len(HOSTILE_IDS) + 1 + 1 + 2
    assert all(e.operation == "read" for e in status_errors)


# -- the local host's socket --------------------------------------------------------------------


def _listening(port: int) -> list[str]:
    """Local addresses listening on `port`, from the kernel's own tables."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.append(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_local_host_listens_on_loopback_only(
    services: Services, env: dict[str, str], tmp_path: Path, figures: Figures
) -> None:
    port = free_port()
    host_env = {**env, "ACCTSYNC_API_PORT": str(port), "ACCTSYNC_API_KEY": API_KEY}
    with (tmp_path / "host.log").open("a") as log:
        host = Process.start([*ACCTSYNC, "run"], host_env, log)
        try:
            wait_for_port(port, timeout=60)
            addresses = _listening(port)
            reply = httpx.get(f"http://127.0.0.1:{port}/api/sync/status")
        finally:
            host.popen.terminate()
            host.finish(timeout=60)
    assert addresses == ["127.0.0.1"], addresses
    assert reply.status_code == 401
    figures.record("security_loopback", api_listens_on=addresses)
