"""A read-only Dataverse Web API client: the rows of a table, whole or their changes.

`DataverseClient` reads pages of rows over its `transport` (shared/dataverse/transport.py:
TLS, token, retries, throttling) and answers questions about tables and the sync user through
its `metadata` (shared/dataverse/metadata.py). It exposes reads only; there is no method that
writes to Dynamics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from shared.dataverse.metadata import DataverseMetadata
from shared.dataverse.problems import (
    ChangeTrackingDisabled,
    DataverseAuthError,
    DataverseError,
    DeltaLinkWithheld,
    DeltaTokenExpired,
    LinkRefused,
    OrgChanged,
)
from shared.dataverse.transport import DataverseTransport, RequestStats, RetryPolicy
from shared.settings import MAX_PAGE_SIZE, DataverseSettings

__all__ = [
    "ChangePage",
    "DataverseAuthError",
    "DataverseClient",
    "DataverseError",
    "DeltaTokenExpired",
    "LinkRefused",
    "OrgChanged",
    "RetryPolicy",
    "RowPage",
]

LOOKUP_ANNOTATIONS = (
    "Microsoft.Dynamics.CRM.lookuplogicalname",
    "Microsoft.Dynamics.CRM.associatednavigationproperty",
)
# `<property>@...FormattedValue`: option labels, lookup names, money and dates as the sync
# user's Dynamics shows them; for display only.
FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"
DELETED_ENTITY_SUFFIX = "/$deletedEntity"


def include_annotations(*, formatted: bool) -> str:
    """The Prefer preference of every row read: the lookups' target tables, and the
    formatted values when `formatted` (ACCTSYNC_FORMATTED_VALUES)."""
    annotations = LOOKUP_ANNOTATIONS + ((FORMATTED_VALUE,) if formatted else ())
    return f'odata.include-annotations="{",".join(annotations)}"'


@dataclass(frozen=True)
class ChangePage:
    """One page of a change-tracking chain: a next link on every page but the last, which
    has the delta link instead."""

    rows: list[dict[str, Any]]
    deleted_ids: list[str]
    next_link: str | None
    delta_link: str | None


@dataclass(frozen=True)
class RowPage:
    """One page of a plain query: a next link on every page but the last."""

    rows: list[dict[str, Any]]
    next_link: str | None


class DataverseClient:
    """Reads accounts and contacts, page by page, from one Dataverse environment."""

    def __init__(self, settings: DataverseSettings, *, retry: RetryPolicy | None = None):
        self._settings = settings
        self.transport = DataverseTransport(settings, retry=retry)
        self.metadata = DataverseMetadata(self.transport)
        self._base = self.transport.base
        self._annotations = include_annotations(formatted=settings.formatted_values)

    @property
    def stats(self) -> RequestStats:
        """What this client sent so far (its transport counts every request)."""
        return self.transport.stats

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> DataverseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_stored_link(self, link: str) -> None:
        """A link stored earlier must be of this org; OrgChanged says plainly when not."""
        self.transport.check_stored_link(link)

    # -- change tracking -------------------------------------------------------------------

    def changes(
        self,
        entity_set: str,
        columns: list[str],
        *,
        link: str | None,
        resume: bool = False,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[ChangePage]:
        """Pages of a change-tracking chain: the whole table when `link` is None, the changes
        since a delta link, or with `resume` the rest of a chain from one of its next links.
        LinkRefused when Dataverse no longer accepts a link it gave out."""
        size = min(page_size, MAX_PAGE_SIZE)
        if link is None:
            url = self._base + entity_set
            params: dict[str, str] | None = {"$select": ",".join(columns)}
        else:
            self.transport.check_same_origin(link)
            url, params = link, None
        # Follow-up pages: the link as given, with the same page size (PAGE doc).
        follow_up = f"odata.maxpagesize={size},{self._annotations}"
        prefer = follow_up if resume else f"odata.track-changes,{follow_up}"
        while True:
            body = self._get_link(url, params=params, prefer=prefer, given=link is not None)
            rows: list[dict[str, Any]] = []
            deleted: list[str] = []
            for item in body.get("value", []):
                if str(item.get("@odata.context", "")).endswith(DELETED_ENTITY_SUFFIX):
                    deleted.append(str(item["id"]).lower())
                else:
                    rows.append(item)
            next_link = body.get("@odata.nextLink")
            new_delta = body.get("@odata.deltaLink")
            if next_link:
                self.transport.check_same_origin(next_link)
                yield ChangePage(rows, deleted, str(next_link), None)
                url, params, prefer, link = next_link, None, follow_up, next_link
                continue
            if not new_delta:
                if self._settings.formatted_values:
                    # Reported for orgs answering annotations with change tracking (§1.5).
                    raise DeltaLinkWithheld(_table_of(entity_set))
                # What Dataverse does for a table without change tracking: every row, no link.
                raise ChangeTrackingDisabled(_table_of(entity_set))
            self.transport.check_same_origin(new_delta)
            yield ChangePage(rows, deleted, None, str(new_delta))
            return

    # -- plain queries ---------------------------------------------------------------------

    def rows(
        self,
        entity_set: str,
        columns: list[str],
        *,
        where: str | None = None,
        link: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
        labels: bool = True,
    ) -> Iterator[RowPage]:
        """Pages of a plain query (no change tracking, so no delta link is touched): the rows
        `where` ($filter) keeps, or with `link` the rest of such a query from one of its next
        links. LinkRefused when Dataverse no longer accepts that link. `labels`: also the
        formatted values (when ACCTSYNC_FORMATTED_VALUES lets them), which a read of keys and
        versions does without."""
        annotations = self._annotations if labels else include_annotations(formatted=False)
        prefer = f"odata.maxpagesize={min(page_size, MAX_PAGE_SIZE)},{annotations}"
        params: dict[str, str] | None = None
        if link is None:
            url = self._base + entity_set
            params = {"$select": ",".join(columns)}
            if where:
                params["$filter"] = where
        else:
            self.transport.check_same_origin(link)
            url = link
        while True:
            body = self._get_link(url, params=params, prefer=prefer, given=url == link)
            next_link = body.get("@odata.nextLink")
            if next_link:
                self.transport.check_same_origin(next_link)
            yield RowPage(list(body.get("value", [])), str(next_link) if next_link else None)
            if not next_link:
                return
            url, params, link = str(next_link), None, str(next_link)

    def _get_link(
        self, url: str, *, params: dict[str, str] | None, prefer: str, given: bool
    ) -> dict[str, Any]:
        """A page request; a link Dataverse gave out and now refuses is LinkRefused."""
        try:
            return self.transport.get_json(url, params=params, prefer=prefer)
        except (LinkRefused, DataverseAuthError):
            raise
        except DataverseError as error:
            if error.status == 400 and "change tracking" in str(error).lower():
                raise ChangeTrackingDisabled(_table_of(urlsplit(url).path)) from error
            if given and error.status in (400, 404, 410, 412):
                raise LinkRefused(str(error), status=error.status, code=error.code) from error
            raise


def _table_of(entity_set_or_path: str) -> str:
    """The logical name behind an entity set (`accounts` -> `account`), for messages."""
    entity_set = entity_set_or_path.rstrip("/").rsplit("/", 1)[-1]
    return {"accounts": "account", "contacts": "contact"}.get(entity_set, entity_set)
