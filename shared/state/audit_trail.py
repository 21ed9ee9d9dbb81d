"""The audit trail: one entry per admin action (who, when, what, the values before and after,
and the outcome), and per sign-in to the console, accepted or refused.

Entries are a partition of the state table keyed newest first (`inverted_ms(at)|random`), so
the newest page, a page after a key and a time range are each one key range. Nothing in the
product edits or deletes an entry; the cycle removes those older than AUDIT_RETENTION_DAYS.
"""

from __future__ import annotations

import getpass
import json
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import islice
from typing import Any

from shared.mirror.writes import delete_all
from shared.state.list_filter import ListFilter
from shared.storage import TableRepository
from shared.times import inverted_ms, iso, newest_first_query

# A property holds at most 32K UTF-16 characters; a longer value is kept cut, and says so.
MAX_VALUE_CHARS = 30_000
MAX_DETAIL_CHARS = 1_000


class ActorKind(StrEnum):
    ENTRA = "entra"  # a console user signed in with Entra ID
    API_KEY = "api_key"  # the API's key (the local console's sign-in, a script in Azure)
    CLI = "cli"  # `acctsync` on someone's machine


class AuditAction(StrEnum):
    FIELD_SELECTION = "field_selection"
    PAUSE = "pause"
    RESUME = "resume"
    RESYNC = "resync"
    RETRY = "retry"
    REPLAY = "replay"
    CURSOR_RESET = "cursor_reset"
    VERIFY = "verify"
    REPAIR = "repair"  # a verify asked to repair what it finds
    SIGN_IN = "sign_in"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the action was tried and raised (detail says why)
    REFUSED = "refused"  # a sign-in that got no session


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    name: str
    id: str | None = None  # the Entra object id

    @classmethod
    def api_key(cls) -> Actor:
        return cls(ActorKind.API_KEY, "api key")

    @classmethod
    def cli(cls) -> Actor:
        return cls(ActorKind.CLI, f"{getpass.getuser()}@{socket.gethostname()}")

    @classmethod
    def entra(cls, object_id: str, name: str) -> Actor:
        return cls(ActorKind.ENTRA, name, object_id)

    @property
    def label(self) -> str:
        """Who, in one line (what `by` fields and the console show)."""
        return f"{self.name} ({self.id})" if self.id else self.name

    def to_json(self) -> dict[str, str | None]:
        return {"kind": self.kind.value, "name": self.name, "id": self.id}


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: Actor
    action: AuditAction
    before: Any  # JSON values: a selection, a pause, what was asked
    after: Any
    outcome: Outcome
    detail: str | None = None  # why it failed or was refused

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "actor": self.actor.label,
            "actor_kind": self.actor.kind.value,
            "actor_id": self.actor.id,
            "actor_name": self.actor.name,
            "action": self.action.value,
            "before": self.before,
            "after": self.after,
            "outcome": self.outcome.value,
            "detail": self.detail,
        }


@dataclass(frozen=True, kw_only=True)
class AuditFilter(ListFilter):
    """What the console's Audit log asks for: text in the actor, the values or the detail."""

    action: str = ""
    outcome: str = ""

    def matches(self, entry: AuditEntry) -> bool:
        needle = self.needle
        shown = entry.to_json()
        haystack = json.dumps([shown[k] for k in ("actor", "before", "after", "detail")])
        return (
            (not needle or needle in haystack.lower())
            and (not self.action or entry.action.value == self.action)
            and (not self.outcome or entry.outcome.value == self.outcome)
        )


class AuditTrail(TableRepository):
    PARTITION = "audit"

    def add(self, entry: AuditEntry) -> None:
        key = f"{inverted_ms(entry.at)}|{secrets.token_hex(6)}"  # two in one millisecond
        self.table.create_entity(
            {
                "PartitionKey": self.PARTITION,
                "RowKey": key,
                "at": entry.at,
                "actor_kind": entry.actor.kind.value,
                "actor_name": entry.actor.name,
                "actor_id": entry.actor.id or "",
                "action": entry.action.value,
                "before": _stored(entry.before),
                "after": _stored(entry.after),
                "outcome": entry.outcome.value,
                "detail": _text(entry.detail or "")[:MAX_DETAIL_CHARS],
            }
        )

    def page(
        self, *, after: str | None, since: datetime | None, limit: int
    ) -> tuple[list[AuditEntry], str | None]:
        """Up to `limit` entries, newest first, after the key `after` (the previous page's
        last): the entries and the key to go on from, None at the end."""
        rows = list(islice(self._rows(since=since, until=None, after=after), limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return [_entry(r) for r in rows], str(rows[-1]["RowKey"]) if more else None

    def search(self, wanted: AuditFilter, *, count: int) -> list[AuditEntry]:
        """Up to `count` entries matching `wanted`, newest first: the time range is a key
        range, the rest is matched here."""
        found = (_entry(r) for r in self._rows(since=wanted.since, until=wanted.until))
        return list(islice((e for e in found if wanted.matches(e)), max(count, 0)))

    def every(self, *, since: datetime | None) -> Iterator[AuditEntry]:
        for row in self._rows(since=since, until=None):
            yield _entry(row)

    def remove_older_than(self, cutoff: datetime, *, limit: int) -> int:
        """Delete up to `limit` entries from before `cutoff`, the oldest key range."""
        old = self._rows(since=None, until=cutoff, keys_only=True)
        return delete_all(self.table, islice(old, limit))

    def _rows(
        self,
        *,
        since: datetime | None,
        until: datetime | None,
        after: str | None = None,
        keys_only: bool = False,
    ) -> Iterator[Any]:
        query, parameters = newest_first_query(self.PARTITION, since, until)
        if after is not None:
            query += " and RowKey gt @after"
            parameters["after"] = after
        select = ["PartitionKey", "RowKey"] if keys_only else None
        yield from self.table.query_entities(
            query, parameters=parameters, select=select, results_per_page=1000
        )


def _text(text: str) -> str:
    """Text as storage can hold it: a refused request's error may quote what was sent, half a
    surrogate pair included, and an entry that cannot be written is an action unrecorded."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _stored(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_VALUE_CHARS:
        text = json.dumps({"truncated": True, "start": text[:MAX_VALUE_CHARS]})
    return text


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        at=row["at"],
        actor=Actor(ActorKind(row["actor_kind"]), str(row["actor_name"]), row["actor_id"] or None),
        action=AuditAction(row["action"]),
        before=json.loads(row["before"]),
        after=json.loads(row["after"]),
        outcome=Outcome(row["outcome"]),
        detail=row.get("detail") or None,
    )
