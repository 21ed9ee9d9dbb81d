"""Start the simulator as a subprocess and drive its control surface, for tests and benchmarks.

with start_simulator(accounts=10, contacts=50) as sim:
    sim.env["DATAVERSE_URL"], sim.ca_file        # what a client needs
    sim.control.update_account(account_id, {"name": "New name"})
    sim.control.requests()                       # what the client sent
"""

from __future__ import annotations

import json
import queue
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from acctsync.sim.control import KEY_HEADER


class SimulatorError(RuntimeError):
    """The simulator did not start, or its control surface refused a call."""


class SimulatorControl:
    """Typed client of the control surface (plain HTTP on SIM_CONTROL_URL)."""

    def __init__(self, url: str, key: str, *, timeout_s: float = 120.0) -> None:
        self.url = url
        self._client = httpx.Client(base_url=url, headers={KEY_HEADER: key}, timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        response = self._client.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            raise SimulatorError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    # ---- data ---------------------------------------------------------------------------------

    def reset(
        self, accounts: int = 0, contacts: int = 0, seed: int = 1, *, shape: str = "pareto"
    ) -> dict[str, Any]:
        """Replace all data with demo data of this size and shape (how contacts spread over
        accounts: "pareto" or "lognormal"); limits, faults, field security, deleted columns,
        change tracking per table, privileges, the MFA requirement, retention and the request
        log go back to their defaults, old delta tokens expire."""
        body = {"accounts": accounts, "contacts": contacts, "seed": seed, "shape": shape}
        result: dict[str, Any] = self._call("POST", "/reset", body)
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/stats")
        return result

    def create_accounts(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        ids: list[str] = self._call("POST", "/accounts", {"rows": list(rows)})["ids"]
        return ids

    def create_contacts(self, rows: Sequence[dict[str, Any]]) -> list[str]:
        """Rows use parentcustomerid plus parentcustomertype ("account" or "contact")."""
        ids: list[str] = self._call("POST", "/contacts", {"rows": list(rows)})["ids"]
        return ids

    def get_account(self, account_id: str) -> dict[str, Any]:
        row: dict[str, Any] = self._call("GET", f"/accounts/{account_id}")
        return row

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        row: dict[str, Any] = self._call("GET", f"/contacts/{contact_id}")
        return row

    def update_account(self, account_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = self._call("PATCH", f"/accounts/{account_id}", {"fields": fields})
        return row

    def update_contact(self, contact_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = self._call("PATCH", f"/contacts/{contact_id}", {"fields": fields})
        return row

    def update_untracked(
        self, entity_set: str, record_id: str, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """Change a row ("accounts" or "contacts") with a new version that no delta link ever
        returns: a change Dynamics made that the sync missed."""
        path = f"/{entity_set}/{record_id}/untracked"
        row: dict[str, Any] = self._call("PATCH", path, {"fields": fields})
        return row

    def delete_account(self, account_id: str) -> int:
        """Deletes the account and, as Dataverse does, its contacts; returns rows deleted."""
        deleted: int = self._call("DELETE", f"/accounts/{account_id}")["deleted"]
        return deleted

    def delete_contact(self, contact_id: str) -> int:
        deleted: int = self._call("DELETE", f"/contacts/{contact_id}")["deleted"]
        return deleted

    # ---- schema -------------------------------------------------------------------------------

    def delete_column(
        self, column: str, *, table: str = "account", absent: bool = False
    ) -> list[str]:
        """Delete a custom column as a maker would: gone from metadata, rows and queries
        (400 0x80060888 where named) until restored. Returns the columns that went, its
        derived ...name column included. Primary, system and standard columns are refused,
        except that `absent` takes a standard column away, as in an org that never had it."""
        body = {"table": table, "column": column, "absent": absent}
        gone: list[str] = self._call("POST", "/schema/columns/delete", body)["deleted"]
        return gone

    def restore_column(self, column: str, *, table: str = "account") -> list[str]:
        """Bring a deleted column back, stored values and all; returns the columns restored."""
        body = {"table": table, "column": column}
        back: list[str] = self._call("POST", "/schema/columns/restore", body)["restored"]
        return back

    # ---- security, limits, faults, tokens ------------------------------------------------------

    def set_column_read(
        self, principal: str, column: str, can_read: bool, *, table: str = "account"
    ) -> None:
        """Grant or deny read of a secured column through a field security profile;
        `principal` is "app" (client credentials) or "user" (the ROPC sync user)."""
        body = {"principal": principal, "table": table, "column": column, "can_read": can_read}
        self._call("POST", "/field-security/read", body)

    def set_column_secured(self, column: str, secured: bool, *, table: str = "account") -> None:
        body = {"table": table, "column": column, "secured": secured}
        self._call("POST", "/field-security/secured", body)

    def set_privilege(self, principal: str, privilege: str, depth: str | None) -> dict[str, str]:
        """Give `principal` ("app" or "user") `privilege` (e.g. prvReadAccount) at `depth`
        ("Basic", "Local", "Deep" or "Global"), or take it away with None. Returns every
        privilege the principal then holds, by name. Reads need prvRead<Table> (403
        0x80040220 without it) and change tracking needs it at Global."""
        body = {"principal": principal, "privilege": privilege, "depth": depth}
        held: dict[str, str] = self._call("POST", "/privileges", body)["privileges"]
        return held

    def set_member(self, principal: str, member: bool) -> None:
        """Make `principal` ("app" or "user") a user of the environment, or take it out as an
        admin deleting the application user does: its tokens still come from Entra, and every
        Web API request answers 403 0x80072560 "not a member of the organization"."""
        self._call("POST", "/users/member", {"principal": principal, "member": member})

    def set_limits(
        self,
        requests_per_window: int | None = None,
        window_s: float | None = None,
        concurrency: int | None = None,
        retry_after_s: float | None = None,
        dop_hint: int | None = None,
    ) -> dict[str, Any]:
        """Change the service protection limits (None keeps a value); counters restart."""
        body = {
            "requests_per_window": requests_per_window,
            "window_s": window_s,
            "concurrency": concurrency,
            "retry_after_s": retry_after_s,
            "dop_hint": dop_hint,
        }
        result: dict[str, Any] = self._call("POST", "/limits", body)
        return result

    def inject_faults(
        self,
        rate_429: float = 0.0,
        rate_5xx: float = 0.0,
        rate_drop: float = 0.0,
        slow_ms: float = 0,
        slow_rate: float = 0.0,
        seed: int = 1,
        count: int | None = None,
    ) -> dict[str, Any]:
        """Random faults on Web API requests, deterministic for `seed`; `count` caps them."""
        body = {
            "rate_429": rate_429,
            "rate_5xx": rate_5xx,
            "rate_drop": rate_drop,
            "slow_ms": slow_ms,
            "slow_rate": slow_rate,
            "seed": seed,
            "count": count,
        }
        result: dict[str, Any] = self._call("POST", "/faults", body)
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_tokens(self) -> None:
        """Every access token issued so far is expired from now on (401)."""
        self._call("POST", "/tokens/expire")

    def require_mfa(self, required: bool = True) -> None:
        """Require multi-factor authentication of the ROPC sync user: its password and
        refresh-token grants then answer 400 invalid_grant AADSTS50076."""
        self._call("POST", "/users/mfa", {"required": required})

    def sign_in_setup(
        self,
        *,
        redirect_uris: list[str],
        groups: list[str] | None = None,
        tenant_id: str | None = None,
        user: str | None = None,
        roles: list[str] | None = None,
    ) -> None:
        """The app registration's redirect URIs for interactive sign-in, the groups in the
        signed-in user's ID token, (a guest) the tenant it names, who signs in (a display
        name; None: the sync user) and the app roles assigned to them."""
        body = {
            "redirect_uris": redirect_uris,
            "groups": groups or [],
            "tenant_id": tenant_id,
            "user": user,
            "roles": roles or [],
        }
        self._call("POST", "/signin", body)

    def expire_delta_tokens(self) -> None:
        """Every delta token issued so far now fails with 0x80044352."""
        self._call("POST", "/delta-tokens/expire")

    def set_delta_token_retention(self, seconds: float) -> None:
        self._call("POST", "/change-tracking", {"retention_s": seconds})

    def set_change_tracking(self, table: str, enabled: bool) -> None:
        """ChangeTrackingEnabled of `table` ("account" or "contact"). Off: Prefer
        odata.track-changes gets plain paging (no delta link, no Preference-Applied) and a
        delta or tracking next link of the table fails with 0x80044352."""
        self._call("POST", "/change-tracking/table", {"table": table, "enabled": enabled})

    def requests(self, clear: bool = False) -> list[dict[str, Any]]:
        """Requests received on the Web API and authority listeners, oldest first: listener,
        method, path, query, status (None when dropped), dropped, principal, time, duration_ms."""
        params = {"clear": "true"} if clear else None
        entries: list[dict[str, Any]] = self._call("GET", "/requests", params=params)
        return entries


@dataclass
class SimulatorHandle:
    process: subprocess.Popen[str]
    env: dict[str, str]
    control: SimulatorControl
    log_file: Path
    _owned_dir: Path | None = field(default=None, repr=False)

    @property
    def dataverse_url(self) -> str:
        return self.env["DATAVERSE_URL"]

    @property
    def ca_file(self) -> str:
        return self.env["DATAVERSE_CA_BUNDLE"]

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the simulator's CA (httpx deprecates verify=<path>)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def stop(self) -> None:
        self.control.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _first_line(stream: IO[str], timeout_s: float) -> str | None:
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True)
    reader.start()
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        return None


def start_simulator(
    *,
    accounts: int = 0,
    contacts: int = 0,
    seed: int = 1,
    token_lifetime_s: float = 3600,
    extra_args: Sequence[str] = (),
    state_dir: Path | None = None,
    timeout_s: float = 60.0,
    on_spawn: Callable[[int], None] | None = None,
) -> SimulatorHandle:
    """Launch `python -m acctsync.sim` and wait for its settings line; `on_spawn` gets its pid
    as soon as it exists (before its demo data, which takes a while)."""
    owned = None
    if state_dir is None:
        owned = state_dir = Path(tempfile.mkdtemp(prefix="acctsync-sim-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    log_file = state_dir / "simulator.log"
    args = [
        sys.executable,
        "-m",
        "acctsync.sim",
        "--accounts",
        str(accounts),
        "--contacts",
        str(contacts),
        "--seed",
        str(seed),
        "--token-lifetime",
        str(token_lifetime_s),
        "--state-dir",
        str(state_dir),
        *extra_args,
    ]
    with open(log_file, "ab") as log:
        # A session of its own: Ctrl-C reaches the caller, which stops the simulator last.
        process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    assert process.stdout is not None
    try:
        if on_spawn is not None:
            on_spawn(process.pid)
        line = _first_line(process.stdout, timeout_s)
    except BaseException:  # Ctrl-C while it starts: it has a session of its own
        process.kill()
        process.wait()
        raise
    if not line:
        process.kill()
        process.wait()
        process.stdout.close()
        tail = log_file.read_text(errors="replace")[-4000:]
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
        raise SimulatorError(f"the simulator did not start within {timeout_s}s:\n{tail}")
    env: dict[str, str] = json.loads(line)
    control = SimulatorControl(env["SIM_CONTROL_URL"], env["SIM_CONTROL_KEY"])
    return SimulatorHandle(process, env, control, log_file, owned)
