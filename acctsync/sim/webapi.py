"""The Dataverse Web API listener: /api/data/v9.2/ on HTTPS.

Every request goes through the same gate as on a real org: bearer token, then the service
protection limits of the calling principal, then (when the control surface asked for them)
injected faults, and only then the resource itself, where the caller's role privileges are
checked (acctsync.sim.privileges).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl, unquote

import orjson

from acctsync.sim.auth import AuthFailure, IssuedToken
from acctsync.sim.filters import Getter, Predicate, compile_filter, parse_moment
from acctsync.sim.http import Request, Response
from acctsync.sim.metadata import MetadataQuery, TableView
from acctsync.sim.odata import (
    API_PATH,
    INVALID_ARGUMENT,
    MAX_PAGE_SIZE,
    NOT_WITH_TRACKING,
    ODATA_PARSE_ERROR,
    ODataError,
    PageCookie,
    Preferences,
    QueryOptions,
    decode_cookie,
    decode_delta_token,
    encode_cookie,
    encode_delta_token,
    expired_version_stamp,
    link_query,
    parse_prefer,
    parse_query,
    property_not_found,
)
from acctsync.sim.privileges import privilege_id
from acctsync.sim.protection import REQUESTS_CODE, retry_after
from acctsync.sim.render import Projection, select_columns
from acctsync.sim.schema import TABLES, TABLES_BY_SET, Table
from acctsync.sim.state import Simulation
from acctsync.sim.store import Row

JSON_TYPE: Final = (
    "application/json; odata.metadata=minimal; odata.streaming=true; "
    "IEEE754Compatible=false; charset=utf-8"
)
log = logging.getLogger(__name__)
NOT_FOUND_CODE: Final = "0x80040217"
PRIVILEGE_DENIED: Final = "0x80040220"
UNEXPECTED: Final = "0x80040216"
NOT_A_MEMBER: Final = "0x80072560"  # the token's principal is no user of the environment
_GUID: Final = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ENTITY_KEY = re.compile(rf"^(\w+)\(({_GUID})\)$")
_COUNT = re.compile(r"^(\w+)/\$count$")
_DEFINITION = re.compile(
    rf"^EntityDefinitions\((?:LogicalName='(?P<table>\w+)'|(?P<table_id>{_GUID}))\)"
    r"(?P<attributes>/Attributes"
    rf"(?:\((?:LogicalName='(?P<column>\w+)'|(?P<column_id>{_GUID}))\))?"
    r"(?:/(?P<cast>(?!OptionSet$|GlobalOptionSet$)[A-Za-z][\w.]*))?"
    r"(?:/(?P<navigation>OptionSet|GlobalOptionSet))?)?$"
)
_PRIVILEGES = re.compile(
    rf"^systemusers\(({_GUID})\)/Microsoft\.Dynamics\.CRM\.RetrievePrincipalAttributePrivileges"
    r"(?:\(\))?$"
)
_USER_PRIVILEGES = re.compile(
    rf"^systemusers\(({_GUID})\)/Microsoft\.Dynamics\.CRM\.RetrieveUserPrivileges(?:\(\))?$"
)
_TOTAL_COUNT = re.compile(r"^RetrieveTotalRecordCount\(EntityNames=(.+)\)$")
_WRITE_PRIVILEGES: Final = {"POST": "Create", "PATCH": "Write", "PUT": "Write", "DELETE": "Delete"}
# Tables whose read privilege guards a resource besides accounts and contacts:
# (logical name, schema name, object type code).
_SYSTEMUSER: Final = ("systemuser", "SystemUser", 8)
_ORGANIZATION: Final = ("organization", "Organization", 1019)


def _target(table: Table) -> tuple[str, str, int]:
    return table.logical_name, table.schema_name, table.object_type_code


def _not_found_segment(segment: str) -> ODataError:
    return ODataError(
        404,
        ODATA_PARSE_ERROR,
        f"Resource not found for the segment '{segment}'.",
    )


class WebApi:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    # ---- the gate ---------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        headers = [("odata-version", "4.0"), ("x-ms-service-request-id", str(uuid.uuid4()))]
        try:
            return await self._gate(request, headers)
        except ODataError as error:
            return Response(
                error.status,
                orjson.dumps(error.body()),
                [("content-type", JSON_TYPE), *headers, *error.headers],
            )
        except Exception:
            # A simulator bug: answer like the service does and keep the traceback in the log.
            log.exception("unexpected error answering %s %s", request.method, request.path)
            failure = ODataError(500, UNEXPECTED, "An unexpected error occurred.")
            return Response(
                500, orjson.dumps(failure.body()), [("content-type", JSON_TYPE), *headers]
            )

    def _challenge(self) -> tuple[tuple[str, str], ...]:
        tokens = self.sim.tokens
        return (
            (
                "www-authenticate",
                f"Bearer authorization_uri={tokens.authority}/{tokens.credentials.tenant_id}"
                f"/oauth2/authorize, resource_id={self.sim.base_url}/",
            ),
        )

    async def _gate(self, request: Request, headers: list[tuple[str, str]]) -> Response:
        sim = self.sim
        try:
            token = sim.tokens.authenticate(request.header("authorization"))
        except AuthFailure as failure:
            raise ODataError(401, "", str(failure), self._challenge()) from None
        principal = token.principal.id
        request.principal = "app" if token.principal == sim.org.app_user else "user"
        if not sim.privileges.is_member(principal):
            raise ODataError(403, NOT_A_MEMBER, "The user is not a member of the organization.")
        remaining = sim.protection.admit(principal)
        try:
            headers.append(("x-ms-ratelimit-burst-remaining-xrm-requests", str(remaining)))
            fault = sim.faults.draw()
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault.kind == "429":
                limits = sim.protection.limits
                wait = limits.retry_after_s if limits.retry_after_s is not None else 1.0
                raise ODataError(
                    429,
                    REQUESTS_CODE,
                    limits.requests_exceeded(),
                    (("retry-after", retry_after(wait)),),
                )
            if fault.kind == "5xx":
                raise ODataError(503, UNEXPECTED, "An unexpected error occurred.")
            if fault.kind == "drop":
                return Response(0, drop=True)
            status, body, extra = self._dispatch(request, token)
        finally:
            sim.protection.release(principal)
        content_type = JSON_TYPE if isinstance(body, dict) else "text/plain; charset=utf-8"
        payload = orjson.dumps(body) if isinstance(body, dict) else body.encode()
        return Response(status, payload, [("content-type", content_type), *headers, *extra])

    # ---- routing ----------------------------------------------------------------------------

    def _dispatch(
        self, request: Request, token: IssuedToken
    ) -> tuple[int, dict[str, object] | str, list[tuple[str, str]]]:
        path = request.path
        if not path.startswith(API_PATH):
            if path.rstrip("/") == API_PATH.rstrip("/"):
                path = API_PATH
            else:
                raise _not_found_segment(path.strip("/").split("/")[0] or "/")
        resource = path[len(API_PATH) :]
        entity_set = re.split(r"[(/]", resource, maxsplit=1)[0]
        if request.method in _WRITE_PRIVILEGES and entity_set in TABLES_BY_SET:
            table = TABLES_BY_SET[entity_set]
            access = _WRITE_PRIVILEGES[request.method]
            self._require(token, access, _target(table))
            raise ODataError(
                501,
                "",
                f"The simulator does not implement {request.method} on {entity_set}; a real "
                "Dataverse organisation does.",
            )
        if request.method != "GET":
            raise ODataError(
                405,
                ODATA_PARSE_ERROR,
                f"The requested resource does not support http method '{request.method}'.",
            )
        options = parse_query(request.query_string)
        preferences = parse_prefer(request.header_values("prefer"))
        principal = token.principal.id
        if resource == "":
            return 200, self._service_document(), []
        if resource in ("WhoAmI", "WhoAmI()"):
            return (
                200,
                self._who_am_i(token),
                [("x-ms-dop-hint", str(self.sim.protection.limits.dop_hint))],
            )
        if entity_set in TABLES_BY_SET:
            # Every read of a table needs its read privilege, at any depth.
            table = TABLES_BY_SET[entity_set]
            self._require(token, "Read", _target(table))
        if resource in TABLES_BY_SET:
            return self._collection(TABLES_BY_SET[resource], options, preferences, token)
        if (match := _COUNT.match(resource)) and match.group(1) in TABLES_BY_SET:
            # /$count is a bare number, capped at 5,000 like $count=true.
            rows = self.sim.store.data(TABLES_BY_SET[match.group(1)].logical_name).rows
            return 200, str(min(len(rows), MAX_PAGE_SIZE)), []
        if (match := _ENTITY_KEY.match(resource)) and match.group(1) in TABLES_BY_SET:
            table = TABLES_BY_SET[match.group(1)]
            row_id = match.group(2).lower()
            return 200, self._entity(table, row_id, options, preferences, principal), []
        if resource == "EntityDefinitions":
            return 200, self._definitions(options), []
        if match := _DEFINITION.match(resource):
            return 200, self._definition(match, options), []
        if match := _PRIVILEGES.match(resource):
            # Functions bound to a systemuser need read access to it.
            self._require(token, "Read", _SYSTEMUSER)
            return 200, self._privileges(match.group(1).lower()), []
        if match := _USER_PRIVILEGES.match(resource):
            self._require(token, "Read", _SYSTEMUSER)
            return 200, self._user_privileges(match.group(1).lower()), []
        if resource == "organizations":
            self._require(token, "Read", _ORGANIZATION)
            return 200, self._organizations(options), []
        if match := _TOTAL_COUNT.match(unquote(resource)):
            return 200, self._total_counts(match.group(1), request.query_string), []
        raise _not_found_segment(entity_set)

    def _principal_text(self, token: IssuedToken) -> str:
        """How Dataverse names the caller in privilege errors. accessMode 4 is the
        non-interactive access mode of application users, 0 a licensed (read-write) user."""
        principal = token.principal
        mode = 4 if principal == self.sim.org.app_user else 0
        count = self.sim.privileges.count(principal.id)
        return (
            f"Principal user (Id={principal.id}, type=8, roleCount=1, "
            f"privilegeCount={count}, accessMode={mode})"
        )

    def _require(self, token: IssuedToken, access: str, target: tuple[str, str, int]) -> str:
        """The caller's depth of prv<access><table>; 403 0x80040220 when it has none."""
        logical_name, schema_name, object_type_code = target
        privilege = f"prv{access}{schema_name}"
        depth = self.sim.privileges.depth(token.principal.id, privilege)
        if depth is None:
            raise ODataError(
                403,
                PRIVILEGE_DENIED,
                f"{self._principal_text(token)}, is missing {privilege} privilege "
                f"(Id={privilege_id(privilege)}) on OTC={object_type_code} "
                f"for entity '{logical_name}'.",
            )
        return depth

    def _require_global_read(self, token: IssuedToken, table: Table) -> None:
        """Change tracking needs organization-level (Global) read of the table. The docs say
        "the system throws a privilege check error" without its text; this one says why."""
        depth = self._require(token, "Read", _target(table))
        if depth != "Global":
            privilege = f"prvRead{table.schema_name}"
            raise ODataError(
                403,
                PRIVILEGE_DENIED,
                f"{self._principal_text(token)} has {privilege} (Id={privilege_id(privilege)}) "
                f"at {depth} depth; change tracking on entity '{table.logical_name}' needs "
                f"organization-level (Global) read access to it.",
            )

    # ---- simple resources -------------------------------------------------------------------

    def _service_document(self) -> dict[str, object]:
        names = [t.entity_set for t in TABLES.values()] + ["EntityDefinitions", "organizations"]
        return {
            "@odata.context": f"{self.sim.api_url}$metadata",
            "value": [{"name": n, "kind": "EntitySet", "url": n} for n in names],
        }

    def _who_am_i(self, token: IssuedToken) -> dict[str, object]:
        org = self.sim.org
        return {
            "@odata.context": f"{self.sim.api_url}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
            "BusinessUnitId": org.business_unit_id,
            "UserId": token.principal.id,
            "OrganizationId": org.organization_id,
        }

    def _organizations(self, options: QueryOptions) -> dict[str, object]:
        org = self.sim.org
        row: dict[str, object] = {
            "organizationid": org.organization_id,
            "name": org.name,
            "expirechangetrackingindays": int(self.sim.delta_retention_s // 86400),
        }
        select = options.select
        if select is not None:
            for name in select:
                if name not in row:
                    raise property_not_found(name, "Microsoft.Dynamics.CRM.organization")
            row = {k: v for k, v in row.items() if k in select or k == "organizationid"}
        return {
            "@odata.context": f"{self.sim.api_url}$metadata#organizations{_paren(select)}",
            "value": [{"@odata.etag": 'W/"1"', **row}],
        }

    def _total_counts(self, argument: str, query_string: str) -> dict[str, object]:
        """RetrieveTotalRecordCount: the rows of each table (Dataverse answers from a snapshot
        up to a day old; the simulator counts now). The names come inline or through a
        parameter alias (`EntityNames=@p1` with `?@p1=[...]`)."""
        text = argument
        if argument.startswith("@"):
            aliases = dict(parse_qsl(query_string, keep_blank_values=True))
            if argument not in aliases:
                raise ODataError(
                    400, INVALID_ARGUMENT, f"The parameter alias {argument} has no value."
                )
            text = aliases[argument]
        try:
            names = orjson.loads(text.replace("'", '"'))
        except orjson.JSONDecodeError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ODataError(400, INVALID_ARGUMENT, "EntityNames must be a list of table names.")
        counts = []
        for name in names:
            if name not in TABLES:
                raise ODataError(404, NOT_FOUND_CODE, f"Could not find entity with name '{name}'.")
            counts.append(len(self.sim.store.data(name).rows))
        return {
            "@odata.context": f"{self.sim.api_url}$metadata#Microsoft.Dynamics.CRM."
            "RetrieveTotalRecordCountResponse",
            "EntityRecordCountCollection": {
                "Count": len(names),
                "IsReadOnly": False,
                "Keys": names,
                "Values": counts,
            },
        }

    # ---- metadata ---------------------------------------------------------------------------

    def _view(self, table: Table) -> TableView:
        security = self.sim.security
        return TableView(
            table,
            self.sim.columns.live(table),
            change_tracking=self.sim.change_tracking[table.logical_name],
            is_secured=lambda column: security.is_secured(table.logical_name, column),
        )

    def _definitions(self, options: QueryOptions) -> dict[str, object]:
        views = [self._view(t) for t in TABLES.values()]
        return MetadataQuery(self.sim.api_url, options).definitions(views)

    def _definition(self, match: re.Match[str], options: QueryOptions) -> dict[str, object]:
        logical_name, metadata_id = match.group("table"), match.group("table_id")
        table = next(
            (
                t
                for t in TABLES.values()
                if t.logical_name == logical_name or t.metadata_id == (metadata_id or "").lower()
            ),
            None,
        )
        if table is None:
            raise ODataError(
                404,
                NOT_FOUND_CODE,
                f"Could not find entity with name '{logical_name or metadata_id}'.",
            )
        view = self._view(table)
        query = MetadataQuery(self.sim.api_url, options)
        if match.group("attributes") is None:
            return query.definition(view)
        column, column_id = match.group("column"), match.group("column_id")
        if column is None and column_id is None:
            if match.group("navigation") is not None:
                raise _not_found_segment(match.group("navigation"))
            return query.attributes(view, match.group("cast"))
        attribute = view.find(column, (column_id or "").lower() or None)
        return query.attribute(view, attribute, match.group("cast"), match.group("navigation"))

    def _user_privileges(self, user_id: str) -> dict[str, object]:
        if self.sim.org.systemuser(user_id) is None:
            raise ODataError(404, NOT_FOUND_CODE, f"systemuser With Id = {user_id} Does Not Exist")
        privileges = self.sim.privileges.role_privileges(user_id, self.sim.org.business_unit_id)
        return {
            "@odata.context": f"{self.sim.api_url}$metadata#Microsoft.Dynamics.CRM."
            "RetrieveUserPrivilegesResponse",
            "RolePrivileges": privileges,
        }

    def _privileges(self, user_id: str) -> dict[str, object]:
        if self.sim.org.systemuser(user_id) is None:
            raise ODataError(404, NOT_FOUND_CODE, f"systemuser With Id = {user_id} Does Not Exist")
        # A deleted column takes its field permissions with it.
        gone = {
            a.metadata_id
            for t in TABLES.values()
            for a in t.attributes
            if a.logical_name in self.sim.columns.deleted(t.logical_name)
        }
        return {
            "@odata.context": f"{self.sim.api_url}$metadata#Microsoft.Dynamics.CRM."
            "RetrievePrincipalAttributePrivilegesResponse",
            "AttributePrivileges": [
                p for p in self.sim.security.privileges(user_id) if p["AttributeId"] not in gone
            ],
        }

    # ---- rows -------------------------------------------------------------------------------

    def _projection(
        self,
        table: Table,
        options: QueryOptions,
        preferences: Preferences,
        principal: str,
    ) -> Projection:
        columns = select_columns(
            table, options.select, self.sim.columns.deleted(table.logical_name)
        )
        hidden = self.sim.security.hidden(table.logical_name, principal)
        return Projection(table, columns, hidden, preferences, self.sim.name_of)

    def _entity(
        self,
        table: Table,
        row_id: str,
        options: QueryOptions,
        preferences: Preferences,
        principal: str,
    ) -> dict[str, object]:
        projection = self._projection(table, options, preferences, principal)
        row = self.sim.store.get(table.logical_name, row_id)
        if row is None:
            raise ODataError(
                404, NOT_FOUND_CODE, f"{table.logical_name} With Id = {row_id} Does Not Exist"
            )
        context = f"{self.sim.api_url}$metadata#{table.entity_set}{_paren(options.select)}/$entity"
        return {"@odata.context": context, **projection.render(row)}

    def _row_filter(self, table: Table, text: str, hidden: frozenset[str]) -> Predicate[Row]:
        deleted = self.sim.columns.deleted(table.logical_name)

        def resolve(path: str) -> Getter[Row]:
            attribute = table.web_property(path)
            if attribute is None or attribute.logical_name in deleted:
                raise property_not_found(path, f"Microsoft.Dynamics.CRM.{table.logical_name}")
            logical = attribute.logical_name
            if logical in hidden:
                return lambda _row: None
            if attribute.attribute_type == "DateTime":
                # Date-time literals are datetimes (see filters._normalise_datetime).
                return lambda row: parse_moment(row.values.get(logical))
            return lambda row: row.values.get(logical)

        return compile_filter(text, resolve)

    def _collection(
        self,
        table: Table,
        options: QueryOptions,
        preferences: Preferences,
        token: IssuedToken,
    ) -> tuple[int, dict[str, object], list[tuple[str, str]]]:
        """One page of a query, a change-tracking initial load, or a delta."""
        principal = token.principal.id
        skiptoken = options.get("$skiptoken")
        cookie = decode_cookie(skiptoken) if skiptoken is not None else None
        delta_token = options.get("$deltatoken")
        enabled = self.sim.change_tracking[table.logical_name]
        if not enabled and (delta_token is not None or (cookie is not None and cookie.tracking)):
            # A table without change tracking has no version stamps to serve a delta from.
            # The docs say nothing of this case (a table cannot lose change tracking once it
            # has it, so a token meets such a table only in an org rebuilt without it); the
            # expired-version-stamp error is Dataverse's answer to a token it can no longer
            # serve and sends the client to a full sync, which here is plain paging.
            raise expired_version_stamp()
        # Without change tracking Prefer: odata.track-changes is not applied: the query is
        # answered as plain paging, without a delta link or Preference-Applied. That is what
        # third-party connectors report; Microsoft does not document it.
        track_changes = preferences.track_changes and enabled
        tracking = (
            track_changes or delta_token is not None or (cookie is not None and cookie.tracking)
        )
        if tracking:
            self._require_global_read(token, table)
        _check_options(table, options, tracking)
        projection = self._projection(table, options, preferences, principal)
        page_size = min(preferences.max_page_size or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
        if cookie is None:
            cookie = self._first_cookie(tracking, delta_token)
        context = f"{self.sim.api_url}$metadata#{table.entity_set}{_paren(options.select)}"
        body: dict[str, object] = {"@odata.context": context}
        if cookie.mode == "delta":
            body["@odata.context"] = f"{context}/$delta"
            values, next_cookie = self._delta_page(table, cookie, page_size, projection)
        else:
            values, next_cookie, count = self._rows_page(
                table, cookie, page_size, projection, options, preferences, principal
            )
            if count is not None:
                body["@odata.count"] = count
        body["value"] = values
        link_base = f"{self.sim.api_url}{table.entity_set}"
        select = options.get("$select")
        # A tracking chain's links carry only $select, as Dataverse's change-tracking links do.
        pairs = [("$select", select)] if select is not None else []
        if next_cookie is not None:
            if not next_cookie.tracking:
                pairs = [(k, v) for k, v in options.options.items() if k != "$skiptoken"]
            pairs.append(("$skiptoken", encode_cookie(next_cookie)))
            body["@odata.nextLink"] = f"{link_base}?{link_query(pairs)}"
        elif cookie.tracking:
            # The token is the version the chain started from, so nothing changed while the
            # client was paging can fall between this chain and the next delta.
            pairs.append(("$deltatoken", encode_delta_token(cookie.until, datetime.now(UTC))))
            body["@odata.deltaLink"] = f"{link_base}?{link_query(pairs)}"
        return 200, body, _preference_applied(preferences, page_size, track_changes)

    def _delta_page(
        self, table: Table, cookie: PageCookie, page_size: int, projection: Projection
    ) -> tuple[list[dict[str, object]], PageCookie | None]:
        rows, deleted, position = self.sim.store.data(table.logical_name).delta_page(
            since=cookie.since,
            until=cookie.until,
            deletes=cookie.deletes,
            after=cookie.after,
            limit=page_size,
        )
        context = f"{self.sim.api_url}$metadata#{table.entity_set}/$deletedEntity"
        values = [projection.render(r) for r in rows]
        values += [{"@odata.context": context, "id": i, "reason": "deleted"} for i in deleted]
        if position is None:
            return values, None
        in_deletes, after = position
        return values, PageCookie(
            cookie.page + 1, "delta", after, cookie.since, cookie.until, in_deletes
        )

    def _rows_page(
        self,
        table: Table,
        cookie: PageCookie,
        page_size: int,
        projection: Projection,
        options: QueryOptions,
        preferences: Preferences,
        principal: str,
    ) -> tuple[list[dict[str, object]], PageCookie | None, int | None]:
        """A page of rows in creation order; with $count=true also the (capped) count."""
        data = self.sim.store.data(table.logical_name)
        keep = None
        filter_text = options.get("$filter")
        if filter_text is not None:
            hidden = self.sim.security.hidden(table.logical_name, principal)
            keep = self._row_filter(table, filter_text, hidden)
        # $top limits the result to one page, unless odata.maxpagesize asks for paging.
        top = options.get("$top") if preferences.max_page_size is None else None
        if top is not None and not top.isdigit():
            raise ODataError(
                400, ODATA_PARSE_ERROR, f"Invalid value '{top}' for $top query option found."
            )
        rows, after = data.full_page(
            after=cookie.after,
            limit=min(int(top), MAX_PAGE_SIZE) if top is not None else page_size,
            snapshot=cookie.until if cookie.mode == "full" else None,
            keep=keep,
        )
        count = None
        if options.get("$count") == "true":
            count = min(
                sum(1 for r in data.rows.values() if keep is None or keep(r)), MAX_PAGE_SIZE
            )
        values = [projection.render(r) for r in rows]
        if after is None or top is not None:
            return values, None, count
        next_cookie = PageCookie(cookie.page + 1, cookie.mode, after, cookie.since, cookie.until)
        return values, next_cookie, count

    def _first_cookie(self, tracking: bool, delta_token: str | None) -> PageCookie:
        """Where a chain starts: a plain query, a full load, or the changes since a token."""
        store = self.sim.store
        if delta_token is not None:
            version, issued = decode_delta_token(delta_token)
            age = (datetime.now(UTC) - issued).total_seconds()
            if (
                version < store.token_floor
                or version > store.version
                or issued < self.sim.started_at
                or age > self.sim.delta_retention_s
            ):
                raise expired_version_stamp()
            return PageCookie(1, "delta", version, since=version, until=store.version)
        if tracking:
            return PageCookie(1, "full", 0, until=store.version)
        return PageCookie(1, "page", 0)


def _check_options(table: Table, options: QueryOptions, tracking: bool) -> None:
    for name in NOT_WITH_TRACKING if tracking else ():
        if options.get(name) is not None:
            raise ODataError(
                400,
                INVALID_ARGUMENT,
                f'The "{name}" query parameter isn\'t supported when Change Tracking is enabled.',
            )
    if options.get("$skip") is not None:
        raise ODataError(400, ODATA_PARSE_ERROR, "The query parameter $skip is not supported.")
    unimplemented = ("$orderby", "$expand", "$apply", "$search") + (("$count",) if tracking else ())
    for name in unimplemented:
        if options.get(name) is not None:
            # Real organisations support these; saying so beats answering them wrongly.
            raise ODataError(
                501,
                "",
                f"The simulator does not implement {name} on {table.entity_set}; a real "
                "Dataverse organisation does.",
            )


def _preference_applied(
    preferences: Preferences, page_size: int, track_changes: bool
) -> list[tuple[str, str]]:
    applied: list[tuple[str, str]] = []
    if preferences.max_page_size is not None:
        applied.append(("preference-applied", f"odata.maxpagesize={page_size}"))
    if track_changes:
        applied.append(("preference-applied", "odata.track-changes"))
    if preferences.annotations_raw is not None:
        annotations = f"odata.include-annotations={preferences.annotations_raw}"
        applied.append(("preference-applied", annotations))
    return applied


def _paren(select: list[str] | None) -> str:
    return f"({','.join(select)})" if select else ""
