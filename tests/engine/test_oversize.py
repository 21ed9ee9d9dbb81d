"""Values that do not fit: a record larger than a queue message, text longer than a Table
Storage property, and text whose size depends on how it is counted (CJK)."""

from __future__ import annotations

import json

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mapping import utf16_units
from shared.mirror.records import fields_of
from shared.services import Services
from shared.storage import BATCH_CONTAINER, BATCH_QUEUE
from shared.sync.cycle import heartbeat
from shared.sync.select_fields import select_fields
from tests.utils.faults import drain
from tests.utils.helpers import LONG, TEST_ACTOR, make_account, summary_of

CJK = "長い日本語のメモ" * 750  # 6,000 characters: 18 kB of UTF-8, 12 kB of UTF-16


def test_oversize_values_sync_whole_and_activities_say_when_they_are_cut(
    simulator: SimulatorHandle, services: Services
) -> None:
    assert len(LONG.encode()) >= 200_000 and len(CJK) == 6_000
    select_fields(services, ["name", "new_longnotes"], actor=TEST_ACTOR)
    long_id, long_contacts = make_account(simulator, "Long notes", 2, new_longnotes=LONG)
    cjk_id, cjk_contacts = make_account(simulator, "CJK notes", 2, new_longnotes=CJK)

    # The first load: the 200 kB account travels through a blob (its message names it).
    assert heartbeat(services, owner="test", force=True).action == "planned"  # contacts
    drain(services)
    assert heartbeat(services, owner="test").action == "planned"  # accounts
    messages = services.storage.queue(BATCH_QUEUE).peek_messages(max_messages=32)
    bodies = [json.loads(bytes(m.content)) for m in messages]
    assert sum("claim" in body for body in bodies) == 1
    container = services.storage.container(BATCH_CONTAINER)
    assert len(list(container.list_blob_names())) == 1
    drain(services)
    finished = heartbeat(services, owner="test")
    assert summary_of(finished).status == "succeeded" and summary_of(finished).errors == 0
    assert list(container.list_blob_names()) == []  # the finished cycle cleaned up after itself
    long_row, cjk_row = services.accounts.get(long_id), services.accounts.get(cjk_id)
    assert long_row is not None and cjk_row is not None
    assert fields_of(long_row)["new_longnotes"] == LONG
    assert fields_of(cjk_row)["new_longnotes"] == CJK

    # Both change in Dynamics: the activities of the long text are cut to fit and say so, the
    # CJK text fits whole; nothing poisons.
    simulator.control.update_account(long_id, {"new_longnotes": LONG.replace("line", "LINE")})
    simulator.control.update_account(cjk_id, {"new_longnotes": CJK[::-1]})
    summary = run_cycle_now(services)
    assert (summary.status, summary.errors, summary.batches_poisoned) == (
        "succeeded",
        0,
        0,
    )
    assert summary.activities_logged == 4
    for contact_id in long_contacts:
        (activity,) = services.activities.for_contact(contact_id)
        assert activity["old_truncated"] is True and activity["new_truncated"] is True
        assert LONG.startswith(activity["old"]) and utf16_units(activity["old"]) < 30_000
        assert activity["new"].startswith("LINE 000000")
    for contact_id in cjk_contacts:
        (activity,) = services.activities.for_contact(contact_id)
        assert (activity["old"], activity["new"]) == (CJK, CJK[::-1])
        assert "old_truncated" not in activity and "new_truncated" not in activity
    row = services.accounts.get(long_id)
    assert row is not None and fields_of(row)["new_longnotes"] == LONG.replace("line", "LINE")
