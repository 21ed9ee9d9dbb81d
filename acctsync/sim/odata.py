"""OData protocol details of the Dataverse Web API: errors, Prefer, query options and links.

Paging cookies and delta tokens are built the way Dataverse shows them (an XML cookie inside
`$skiptoken`, `<version>!<timestamp>` inside `$deltatoken`) but clients must treat both as
opaque and replay the links verbatim; the simulator only promises to understand what it
issued, and answers 400 to anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl, quote, unquote

MAX_PAGE_SIZE: Final = 5000
API_PATH: Final = "/api/data/v9.2/"
# Generic "invalid argument" code that Dataverse uses for malformed requests.
INVALID_ARGUMENT: Final = "0x80040203"
# Code of OData URI parser failures (unknown property, unknown segment).
ODATA_PARSE_ERROR: Final = "0x80060888"
EXPIRED_VERSION_STAMP: Final = "0x80044352"

SYSTEM_OPTIONS: Final = frozenset(
    {
        "$select",
        "$filter",
        "$orderby",
        "$expand",
        "$top",
        "$skip",
        "$count",
        "$skiptoken",
        "$deltatoken",
        "$apply",
        "$search",
        "$format",
    }
)
# Query options Dataverse refuses together with change tracking, in the order it checks them.
NOT_WITH_TRACKING: Final = ("$filter", "$orderby", "$expand", "$top")


class ODataError(Exception):
    """An error answered as {"error": {"code", "message"}} with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers

    def body(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


def property_not_found(name: str, type_name: str) -> ODataError:
    return ODataError(
        400,
        ODATA_PARSE_ERROR,
        f"Could not find a property named '{name}' on type '{type_name}'.",
    )


def lower_escapes(text: str) -> str:
    """Percent escapes in lower case, as .NET's UrlEncode writes them in Dataverse links."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


# ---- Prefer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    """What the Prefer header(s) of a request ask for."""

    max_page_size: int | None = None
    track_changes: bool = False
    annotations: tuple[str, ...] = ()
    annotations_raw: str | None = None

    def wants(self, annotation: str) -> bool:
        """Whether odata.include-annotations asks for this annotation (wildcards allowed)."""
        included = False
        for pattern in self.annotations:
            excluded = pattern.startswith("-")
            term = pattern[1:] if excluded else pattern
            matches = (
                term == "*"
                or term == annotation
                or (term.endswith(".*") and annotation.startswith(term[:-1]))
            )
            if matches and excluded:
                return False
            included = included or matches
        return included

    @property
    def any_annotations(self) -> bool:
        return bool(self.annotations)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_prefer(values: list[str]) -> Preferences:
    """Parse every Prefer header; one comma-separated header and several headers both work."""
    max_page_size: int | None = None
    track_changes = False
    annotations: tuple[str, ...] = ()
    annotations_raw: str | None = None
    for value in values:
        for preference in _split_outside_quotes(value, ","):
            # Parameters after ';' do not change any preference Dataverse honours.
            token = _split_outside_quotes(preference, ";")[0].strip()
            if not token:
                continue
            name, _, raw = token.partition("=")
            name = name.strip().lower()
            raw = raw.strip()
            unquoted = raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] == '"' else raw
            if name == "odata.maxpagesize":
                if unquoted.isdigit() and int(unquoted) > 0:
                    max_page_size = int(unquoted)
            elif name == "odata.track-changes":
                track_changes = True
            elif name == "odata.include-annotations":
                annotations_raw = raw
                annotations = tuple(p.strip() for p in unquoted.split(",") if p.strip())
    return Preferences(max_page_size, track_changes, annotations, annotations_raw)


# ---- query options --------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryOptions:
    """The system query options of a request, raw text per option."""

    options: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.options.get(name)

    @property
    def select(self) -> list[str] | None:
        raw = self.options.get("$select")
        if raw is None:
            return None
        return [name.strip() for name in raw.split(",") if name.strip()]


@dataclass(frozen=True)
class Expand:
    """One navigation property of $expand with its nested options (`$select`, `$filter`)."""

    name: str
    options: QueryOptions


# What a nested $expand option may say; the simulator implements the first two.
_NESTED_OPTIONS: Final = ("$select", "$filter")
_NESTED_UNIMPLEMENTED: Final = ("$expand", "$orderby", "$top", "$skip", "$count", "$search")


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split on `separator` outside parentheses and single-quoted OData strings."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0 or quoted:
        raise _bad_term(text)
    parts.append("".join(current))
    return parts


def _bad_term(text: str) -> ODataError:
    return ODataError(
        400,
        ODATA_PARSE_ERROR,
        f"Term '{text}' is not valid in a $select or $expand expression.",
    )


def parse_expand(text: str) -> list[Expand]:
    """`Attributes($select=LogicalName;$filter=...)`, `OptionSet,GlobalOptionSet` and the like:
    nested options are separated by ';' as OData 4.0 writes them."""
    expands: list[Expand] = []
    for item in _split_top_level(text, ","):
        item = item.strip()
        match = re.fullmatch(r"([A-Za-z_][\w.]*)(?:\((.*)\))?", item, re.DOTALL)
        if match is None:
            raise _bad_term(item)
        options: dict[str, str] = {}
        for nested in _split_top_level(match.group(2) or "", ";"):
            if not nested.strip():
                continue
            name, equals, value = nested.strip().partition("=")
            if not equals:
                raise _bad_term(item)
            if name in _NESTED_UNIMPLEMENTED:
                # Dataverse supports some of these; saying so beats answering them wrongly.
                raise ODataError(
                    501, "", f"The simulator does not implement {name} inside $expand."
                )
            if name not in _NESTED_OPTIONS:
                raise _bad_term(item)
            options[name] = value
        expands.append(Expand(match.group(1), QueryOptions(options)))
    return expands


def parse_query(query_string: str) -> QueryOptions:
    options: dict[str, str] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        if not name.startswith("$"):
            # Custom query options (and the @parameter aliases) are ignored by OData services.
            continue
        if name not in SYSTEM_OPTIONS:
            raise ODataError(
                400,
                ODATA_PARSE_ERROR,
                f"The query parameter '{name}' is not supported.",
            )
        if name in options:
            raise ODataError(
                400,
                ODATA_PARSE_ERROR,
                f"Query option '{name}' was specified more than once, but it must be "
                "specified at most once.",
            )
        options[name] = value
    return QueryOptions(options)


# ---- paging cookies ------------------------------------------------------------------------


@dataclass(frozen=True)
class PageCookie:
    """Where the next page of a chain starts.

    mode "page" is ordinary paging; "full" is the initial load of a change-tracking chain,
    frozen at `until`; "delta" is a chain of changes in (since, until].
    """

    page: int
    mode: str
    after: int
    since: int = 0
    until: int = 0
    deletes: bool = False

    @property
    def tracking(self) -> bool:
        return self.mode != "page"


_OUTER = re.compile(
    r'^<cookie pagenumber="(\d+)" pagingcookie="([^"]*)" istracking="(True|False)" />$'
)
_INNER = re.compile(
    r'^<cookie page="(\d+)"><versionnumber last="(\d+)" />'
    r'<changes mode="(page|full|delta)" since="(\d+)" until="(\d+)" phase="(rows|deletes)" />'
    r"</cookie>$"
)


def encode_cookie(cookie: PageCookie) -> str:
    """The $skiptoken value (before URL encoding)."""
    inner = (
        f'<cookie page="{cookie.page - 1}"><versionnumber last="{cookie.after}" />'
        f'<changes mode="{cookie.mode}" since="{cookie.since}" until="{cookie.until}" '
        f'phase="{"deletes" if cookie.deletes else "rows"}" /></cookie>'
    )
    tracking = "True" if cookie.tracking else "False"
    paging = lower_escapes(quote(inner, safe=""))
    return f'<cookie pagenumber="{cookie.page}" pagingcookie="{paging}" istracking="{tracking}" />'


def decode_cookie(token: str) -> PageCookie:
    outer = _OUTER.match(token.strip())
    inner = _INNER.match(unquote(outer.group(2))) if outer else None
    if outer is None or inner is None:
        raise ODataError(400, INVALID_ARGUMENT, "The $skiptoken paging cookie is malformed.")
    page = int(outer.group(1))
    mode = inner.group(3)
    if (outer.group(3) == "True") != (mode != "page") or page != int(inner.group(1)) + 1:
        raise ODataError(400, INVALID_ARGUMENT, "The $skiptoken paging cookie is malformed.")
    return PageCookie(
        page=page,
        mode=mode,
        after=int(inner.group(2)),
        since=int(inner.group(4)),
        until=int(inner.group(5)),
        deletes=inner.group(6) == "deletes",
    )


# ---- delta tokens --------------------------------------------------------------------------

_DELTA_TOKEN = re.compile(r"^(\d+)!(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2}):(\d{2})$")


def encode_delta_token(version: int, issued: datetime) -> str:
    return f"{version}!{issued.astimezone(UTC).strftime('%m/%d/%Y %H:%M:%S')}"


def decode_delta_token(token: str) -> tuple[int, datetime]:
    match = _DELTA_TOKEN.match(token)
    if match is None:
        raise ODataError(400, INVALID_ARGUMENT, "The $deltatoken is not a valid delta token.")
    month, day, year, hour, minute, second = (int(g) for g in match.groups()[1:])
    try:
        issued = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise ODataError(
            400, INVALID_ARGUMENT, "The $deltatoken is not a valid delta token."
        ) from None
    return int(match.group(1)), issued


def expired_version_stamp() -> ODataError:
    return ODataError(
        400,
        EXPIRED_VERSION_STAMP,
        "Version stamp associated with the client has expired. Please perform a full sync.",
    )


def link_query(pairs: list[tuple[str, str]]) -> str:
    """A query string for nextLink/deltaLink: $select stays readable, tokens are encoded."""
    parts = []
    for name, value in pairs:
        if name == "$skiptoken":
            encoded = quote(value, safe="=/")
        elif name == "$deltatoken":
            encoded = lower_escapes(quote(value, safe=""))
        else:
            encoded = quote(value, safe=",'=()/:")
        parts.append(f"{name}={encoded}")
    return "&".join(parts)
