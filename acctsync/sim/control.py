"""The control surface: plain HTTP on its own port, for tests, benchmarks and the demo.

Every request needs the `x-sim-control-key` header. Rows are read and written by logical
name; writes go through the same store as the Web API reads, so they show up in deltas.

Routes (JSON bodies):
  POST   /reset                      {"accounts", "contacts", "seed", "shape"} -> stats; every
                                     setting below goes back to its default; shape: how
                                     contacts spread over accounts, "pareto" (default) or
                                     "lognormal" (a real org's)
  GET    /stats                      row counts, versions, largest accounts
  POST   /accounts | /contacts       {"rows": [...]} -> {"ids": [...]}
  GET    /accounts/{id}              the stored row
  PATCH  /accounts/{id}              {"fields": {...}} -> the stored row
  DELETE /accounts/{id}              -> {"deleted": n} (cascades included)
  PATCH  /accounts/{id}/untracked    {"fields": {...}} -> the stored row: changed with a new
                                     version that change tracking never reports (also contacts)
  POST   /field-security/read        {"principal": "app"|"user", "table", "column", "can_read"}
  POST   /field-security/secured     {"table", "column", "secured"}
  POST   /privileges                 {"principal": "app"|"user", "privilege", "depth"}: grant
                                     at Basic/Local/Deep/Global, or take away with null
  POST   /users/member           {"principal", "member"}: the principal is a user of the
                                     environment, or not (403 0x80072560 on every request)
  POST   /limits                     any of requests_per_window, window_s, concurrency,
                                     retry_after_s, dop_hint -> the limits in force
  POST   /faults  | DELETE /faults   {"rate_429", "rate_5xx", "rate_drop", "slow_ms",
                                     "slow_rate", "seed", "count"}
  POST   /tokens/expire              every access token issued so far expires
  POST   /users/mfa                  {"required"}: the ROPC user must use MFA (AADSTS50076)
  POST   /signin                     {"redirect_uris", "groups", "tenant_id", "user", "roles"}:
                                     the app's registered redirect URIs, the signed-in user's
                                     groups, (a guest) the tenant its ID token names, who signs
                                     in (a display name; null: the sync user) and their app
                                     roles (the `roles` claim)
  POST   /delta-tokens/expire        every delta token issued so far expires
  POST   /change-tracking            {"retention_s"}: how long delta tokens stay valid
  POST   /change-tracking/table      {"table", "enabled"}: ChangeTrackingEnabled of a table
  POST   /schema/columns/delete      {"table", "column"}: a custom column is deleted
  POST   /schema/columns/restore     {"table", "column"}: it comes back with its values
  GET    /requests?clear=true        the request log of the Web API and authority listeners
"""

from __future__ import annotations

import dataclasses
import gc
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from acctsync.sim import demo
from acctsync.sim.columns import ColumnError
from acctsync.sim.faults import FaultPlan
from acctsync.sim.http import Request, Response, json_response
from acctsync.sim.privileges import PrivilegeError
from acctsync.sim.protection import Limits
from acctsync.sim.records import RecordError, RecordWriter
from acctsync.sim.schema import TABLES_BY_SET
from acctsync.sim.security import FieldSecurity, FieldSecurityError
from acctsync.sim.signin import SignInSetup
from acctsync.sim.state import DEFAULT_DELTA_RETENTION_S, Simulation, default_change_tracking
from acctsync.sim.store import Row, StoreError

log = logging.getLogger(__name__)
KEY_HEADER = "x-sim-control-key"
_ROW = re.compile(r"^/(accounts|contacts)/([^/]+?)(/untracked)?$")


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> Response:
    return json_response(status, {"error": {"code": "sim_control", "message": message}})


def _body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as error:
        raise ControlError(400, f"the body is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    return body


def _shape(value: object) -> demo.ContactShape:
    try:
        return demo.ContactShape(str(value))
    except ValueError:
        choices = ", ".join(s.value for s in demo.ContactShape)
        raise ControlError(400, f"unknown shape {value!r}: choose one of {choices}") from None


def _row(row: Row, deleted: frozenset[str] = frozenset()) -> dict[str, object]:
    """The stored row as the org has it now: a deleted column's value is not shown."""
    return {k: v for k, v in row.values.items() if k not in deleted}


class Control:
    def __init__(self, sim: Simulation, key: str) -> None:
        self.sim = sim
        self.key = key
        self.writers = {
            name: RecordWriter(sim.store, sim.org, table, sim.columns)
            for name, table in TABLES_BY_SET.items()
        }
        self.routes: dict[tuple[str, str], Callable[[Request], Awaitable[Response]]] = {
            ("POST", "/reset"): self.reset,
            ("GET", "/stats"): self.stats,
            ("POST", "/field-security/read"): self.column_read,
            ("POST", "/field-security/secured"): self.column_secured,
            ("POST", "/privileges"): self.set_privilege,
            ("POST", "/users/member"): self.set_member,
            ("POST", "/limits"): self.limits,
            ("POST", "/faults"): self.faults,
            ("DELETE", "/faults"): self.clear_faults,
            ("POST", "/tokens/expire"): self.expire_tokens,
            ("POST", "/users/mfa"): self.user_mfa,
            ("POST", "/signin"): self.sign_in,
            ("POST", "/delta-tokens/expire"): self.expire_delta_tokens,
            ("POST", "/change-tracking"): self.change_tracking,
            ("POST", "/change-tracking/table"): self.table_change_tracking,
            ("POST", "/schema/columns/delete"): self.delete_column,
            ("POST", "/schema/columns/restore"): self.restore_column,
            ("GET", "/requests"): self.requests,
        }

    async def handle(self, request: Request) -> Response:
        supplied = request.header(KEY_HEADER) or ""
        if not hmac.compare_digest(supplied.encode(), self.key.encode()):
            return _error(401, f"missing or wrong {KEY_HEADER} header")
        try:
            route = self.routes.get((request.method, request.path))
            if route is not None:
                return await route(request)
            if request.method == "POST" and request.path.strip("/") in TABLES_BY_SET:
                return self.create(request, request.path.strip("/"))
            match = _ROW.match(request.path)
            if match:
                if match.group(3):
                    return self.untracked(request, match.group(1), match.group(2).lower())
                return self.row(request, match.group(1), match.group(2).lower())
            return _error(404, f"no control route {request.method} {request.path}")
        except ControlError as error:
            return _error(error.status, str(error))
        except (
            RecordError,
            FieldSecurityError,
            ColumnError,
            PrivilegeError,
            ValueError,
            TypeError,
        ) as error:
            return _error(400, str(error))
        except StoreError as error:
            return _error(error.status, str(error))
        except Exception as error:
            log.exception("control %s %s failed", request.method, request.path)
            return _error(500, f"simulator bug: {error!r} (traceback in the simulator log)")

    # ---- data -------------------------------------------------------------------------------

    async def reset(self, request: Request) -> Response:
        body = _body(request)
        sim = self.sim
        sim.store.reset()
        sim.faults.clear()
        sim.protection.limits = Limits()
        sim.protection.reset()
        sim.security = FieldSecurity()
        sim.columns.reset()
        sim.privileges.reset()
        sim.tokens.mfa_required = False
        sim.tokens.code_flow.setup = SignInSetup()
        sim.delta_retention_s = DEFAULT_DELTA_RETENTION_S
        sim.change_tracking = default_change_tracking()
        sim.log.entries(clear=True)
        accounts, contacts = int(body.get("accounts", 0)), int(body.get("contacts", 0))
        shape = _shape(body.get("shape", demo.ContactShape.PARETO.value))
        if accounts or contacts:
            # Collecting garbage while building 200,000 dicts costs more than building them.
            gc.disable()
            try:
                data = demo.generate(
                    sim.org,
                    accounts=accounts,
                    contacts=contacts,
                    seed=int(body.get("seed", 1)),
                    shape=shape,
                )
                demo.load(sim.store, data)
            finally:
                gc.enable()
        return await self.stats(request)

    async def stats(self, _request: Request) -> Response:
        store = self.sim.store
        tables: dict[str, object] = {}
        for name, data in store.tables.items():
            tables[name] = {"rows": len(data.rows), "deleted": len(data.tombstones)}
        contacts_per_account = {
            target: len(ids)
            for target, ids in store.data("contact").references["parentcustomerid"].items()
            if target in store.data("account").rows
        }
        largest = sorted(contacts_per_account.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        return json_response(
            200,
            {
                "tables": tables,
                "accounts": len(store.data("account").rows),
                "contacts": len(store.data("contact").rows),
                "version": store.version,
                "largest_accounts": [{"accountid": a, "contacts": n} for a, n in largest],
            },
        )

    def create(self, request: Request, entity_set: str) -> Response:
        rows = _body(request).get("rows")
        if not isinstance(rows, list):
            raise ControlError(400, 'the body must be {"rows": [...]}')
        writer = self.writers[entity_set]
        ids: list[str] = []
        for index, fields in enumerate(rows):
            if not isinstance(fields, dict):
                raise ControlError(400, f"row {index} is not an object")
            try:
                ids.append(writer.create(fields).id)
            except (RecordError, StoreError) as error:
                # Rows before this one stay created, as with separate Create requests.
                raise ControlError(
                    getattr(error, "status", 400),
                    f"row {index}: {error} ({len(ids)} rows before it were created)",
                ) from None
        return json_response(200, {"ids": ids})

    def row(self, request: Request, entity_set: str, row_id: str) -> Response:
        table = TABLES_BY_SET[entity_set].logical_name
        deleted = self.sim.columns.deleted(table)
        if request.method == "GET":
            row = self.sim.store.get(table, row_id)
            if row is None:
                raise ControlError(404, f"{table} With Id = {row_id} Does Not Exist")
            return json_response(200, _row(row, deleted))
        if request.method == "PATCH":
            fields = _body(request).get("fields")
            if not isinstance(fields, dict):
                raise ControlError(400, 'the body must be {"fields": {...}}')
            row = self.writers[entity_set].update(row_id, fields)
            return json_response(200, _row(row, deleted))
        if request.method == "DELETE":
            return json_response(200, {"deleted": self.sim.store.delete(table, row_id)})
        raise ControlError(405, f"{request.method} is not allowed on {request.path}")

    def untracked(self, request: Request, entity_set: str, row_id: str) -> Response:
        if request.method != "PATCH":
            raise ControlError(405, f"{request.method} is not allowed on {request.path}")
        fields = _body(request).get("fields")
        if not isinstance(fields, dict):
            raise ControlError(400, 'the body must be {"fields": {...}}')
        row = self.writers[entity_set].update(row_id, fields, tracked=False)
        table = TABLES_BY_SET[entity_set].logical_name
        return json_response(200, _row(row, self.sim.columns.deleted(table)))

    # ---- security, limits, faults, tokens ------------------------------------------------------

    def _principal(self, name: object) -> str:
        org = self.sim.org
        principals = {"app": org.app_user.id, "user": org.sync_user.id}
        if name not in principals:
            raise ControlError(400, 'principal must be "app" or "user"')
        return principals[str(name)]

    def _existing_column(self, body: dict[str, Any]) -> tuple[str, str]:
        table, column = str(body.get("table", "account")), str(body.get("column"))
        if column in self.sim.columns.deleted(table):
            raise ControlError(400, f"{table}.{column} is deleted; restore it first")
        return table, column

    async def column_read(self, request: Request) -> Response:
        body = _body(request)
        table, column = self._existing_column(body)
        self.sim.security.set_read(
            self._principal(body.get("principal")), table, column, bool(body.get("can_read", True))
        )
        return json_response(200, {"ok": True})

    async def column_secured(self, request: Request) -> Response:
        body = _body(request)
        table, column = self._existing_column(body)
        self.sim.security.set_secured(table, column, bool(body.get("secured", True)))
        return json_response(200, {"ok": True})

    async def set_privilege(self, request: Request) -> Response:
        body = _body(request)
        principal = self._principal(body.get("principal"))
        privilege, depth = body.get("privilege"), body.get("depth")
        if not isinstance(privilege, str) or not (depth is None or isinstance(depth, str)):
            raise ControlError(400, 'the body must be {"principal", "privilege", "depth"}')
        held = self.sim.privileges.set(principal, privilege, depth)
        return json_response(200, {"principal": body["principal"], "privileges": held})

    async def set_member(self, request: Request) -> Response:
        body = _body(request)
        principal = self._principal(body.get("principal"))
        member = body.get("member")
        if not isinstance(member, bool):
            raise ControlError(400, 'the body must be {"principal", "member": true|false}')
        self.sim.privileges.set_member(principal, member)
        return json_response(200, {"principal": body["principal"], "member": member})

    # ---- schema -------------------------------------------------------------------------------

    @staticmethod
    def _table_column(body: dict[str, Any]) -> tuple[str, str]:
        table, column = body.get("table"), body.get("column")
        if not isinstance(table, str) or not isinstance(column, str):
            raise ControlError(400, 'the body must be {"table": "account", "column": "..."}')
        return table, column

    async def delete_column(self, request: Request) -> Response:
        body = _body(request)
        table, column = self._table_column(body)
        absent = body.get("absent", False)
        if not isinstance(absent, bool):
            raise ControlError(400, '"absent" must be true or false')
        gone = self.sim.columns.delete(table, column, absent=absent)
        return json_response(200, {"table": table, "deleted": gone})

    async def restore_column(self, request: Request) -> Response:
        table, column = self._table_column(_body(request))
        back = self.sim.columns.restore(table, column)
        return json_response(200, {"table": table, "restored": back})

    async def limits(self, request: Request) -> Response:
        body = _body(request)
        protection = self.sim.protection
        fields = {f.name for f in dataclasses.fields(Limits)}
        unknown = set(body) - fields
        if unknown:
            raise ControlError(400, f"unknown limits: {sorted(unknown)}")
        changes = {k: v for k, v in body.items() if v is not None}
        protection.limits = dataclasses.replace(protection.limits, **changes)
        protection.reset()
        return json_response(200, dataclasses.asdict(protection.limits))

    async def faults(self, request: Request) -> Response:
        plan = FaultPlan(**_body(request))
        self.sim.faults.configure(plan)
        return json_response(200, dataclasses.asdict(plan))

    async def clear_faults(self, _request: Request) -> Response:
        self.sim.faults.clear()
        return json_response(200, {"ok": True})

    async def expire_tokens(self, _request: Request) -> Response:
        self.sim.tokens.expire_all()
        return json_response(200, {"ok": True})

    async def user_mfa(self, request: Request) -> Response:
        required = _body(request).get("required")
        if not isinstance(required, bool):
            raise ControlError(400, "required must be true or false")
        self.sim.tokens.mfa_required = required
        return json_response(200, {"required": required})

    async def sign_in(self, request: Request) -> Response:
        body = _body(request)
        uris, groups, roles = (body.get(k, []) for k in ("redirect_uris", "groups", "roles"))
        tenant, user = body.get("tenant_id"), body.get("user")
        if not all(
            isinstance(v, list) and all(isinstance(i, str) for i in v)
            for v in (uris, groups, roles)
        ):
            raise ControlError(400, "redirect_uris, groups and roles must be lists of strings")
        if not all(v is None or isinstance(v, str) for v in (tenant, user)):
            raise ControlError(400, "tenant_id and user must be strings or null")
        setup = SignInSetup(set(uris), list(groups), tenant, user or None, list(roles))
        self.sim.tokens.code_flow.setup = setup
        answer = {**dataclasses.asdict(setup), "redirect_uris": sorted(uris)}
        return json_response(200, answer)

    async def expire_delta_tokens(self, _request: Request) -> Response:
        self.sim.store.expire_delta_tokens()
        return json_response(200, {"ok": True})

    async def change_tracking(self, request: Request) -> Response:
        retention = _body(request).get("retention_s")
        if not isinstance(retention, int | float) or retention <= 0:
            raise ControlError(400, "retention_s must be a positive number of seconds")
        self.sim.delta_retention_s = float(retention)
        return json_response(200, {"retention_s": self.sim.delta_retention_s})

    async def table_change_tracking(self, request: Request) -> Response:
        """Switch ChangeTrackingEnabled of one table. Dataverse cannot switch it off once on;
        off stands for an org where the table never had it."""
        body = _body(request)
        table, enabled = body.get("table"), body.get("enabled")
        if table not in self.sim.change_tracking:
            raise ControlError(400, f"table must be one of {sorted(self.sim.change_tracking)}")
        if not isinstance(enabled, bool):
            raise ControlError(400, "enabled must be true or false")
        self.sim.change_tracking[str(table)] = enabled
        return json_response(200, {"table": table, "enabled": enabled})

    async def requests(self, request: Request) -> Response:
        clear = "clear=true" in request.query_string.lower().split("&")
        return json_response(200, self.sim.log.entries(clear=clear))
