"""Batches that did not apply: a cycle succeeds only when every batch it enqueued was applied,
a re-load never sweeps past one of its batches that did not, and a batch whose last attempt
was killed before it could record its poisoning is named, kept and replayable.

The host moves a message to the poison queue after its last attempt whatever that attempt
did; these tests do what it does, by hand, without the apply step's own record of it.
"""

from __future__ import annotations

from acctsync.runner import run_cycle_now
from acctsync.sim.harness import SimulatorHandle
from shared.mirror.records import fields_of
from shared.services import Services
from shared.storage import BATCH_CONTAINER, BATCH_QUEUE, POISON_QUEUE
from shared.sync.apply.context import feed_identity
from shared.sync.cycle import heartbeat
from shared.sync.select_fields import select_fields
from shared.sync.status import replay_poison
from tests.utils.faults import Oracle, cycle_by_stages, drain, plan_only, services_for, wait_until
from tests.utils.helpers import LONG, TEST_ACTOR, live_ids, make_account, summary_of


def poison_all(services: Services) -> int:
    """Move every queued batch to the poison queue, as the host does after a last attempt
    that was killed (out of memory, timeout, recycled) before it recorded anything."""
    queue = services.storage.queue(BATCH_QUEUE)
    poison = services.storage.queue(POISON_QUEUE)
    moved = 0
    while messages := list(queue.receive_messages(max_messages=32, visibility_timeout=60)):
        for message in messages:
            poison.send_message(bytes(message.content).decode("utf-8"))
            queue.delete_message(message)
            moved += 1
    return moved


def test_a_reload_with_a_batch_in_poison_flags_no_live_record_deleted(
    oracle: Oracle, simulator: SimulatorHandle, services: Services
) -> None:
    account_id, contacts = make_account(simulator, "Contoso", 3)
    gone_account, _ = make_account(simulator, "Gone", 0)
    run_cycle_now(services)
    simulator.control.delete_contact(contacts[0])
    simulator.control.delete_account(gone_account)
    simulator.control.expire_delta_tokens()

    # The re-load's contacts batch goes to the poison queue; every other stage applies.
    stages = iter([poison_all, drain, drain, drain])
    summary, applied = cycle_by_stages(services, lambda: next(stages)(services))
    assert applied[0] == 1  # the contacts re-load was one batch
    assert summary.modes == {"contacts": "reload", "accounts": "reload"}
    assert summary.status == "incomplete"
    assert (summary.batches_missing, summary.missing_batches) == (1, ("000001",))
    assert summary.batches_poisoned == 1 and summary.errors >= 1
    assert "contacts" in summary.sweeps_skipped and "000001" in summary.sweeps_skipped["contacts"]
    # No contact is flagged (the one Dynamics deleted waits for the next re-load), none
    # leaves its account; the accounts' re-load applied whole, so its sweep ran.
    assert sorted(live_ids(services.contacts)) == sorted(contacts)
    assert services.members.count(account_id) == 3
    gone = services.accounts.get(gone_account)
    assert gone is not None and gone["is_deleted"] is True

    # Replayed, the batch applies; the next re-load sweeps what Dynamics deleted, only that.
    assert replay_poison(services, actor=TEST_ACTOR) == 1
    drain(services)
    simulator.control.expire_delta_tokens()
    summary, _ = cycle_by_stages(services, lambda: drain(services))
    assert summary.status == "succeeded" and summary.sweeps_skipped == {}
    assert sorted(live_ids(services.contacts)) == sorted(contacts[1:])
    assert services.members.count(account_id) == 2
    oracle.verify(services)  # faults over: the mirror equals Dynamics


def test_a_batch_poisoned_unrecorded_leaves_the_cycle_incomplete_and_replays(
    oracle: Oracle, simulator: SimulatorHandle, services: Services
) -> None:
    select_fields(services, ["name", "new_longnotes"], actor=TEST_ACTOR)
    account_id, contacts = make_account(simulator, "Long notes", 2, new_longnotes=LONG)
    run_cycle_now(services)
    renamed = LONG.replace("line", "LINE")
    simulator.control.update_account(account_id, {"name": "Renamed", "new_longnotes": renamed})

    plan_only(services)  # the accounts stage: one batch, through a blob (a claim check)
    # Its last attempt took the batch's change-feed stamp, then was killed.
    cycle_id = services.schedule.read().cycle_id
    stamp = services.feed.stamps.take(feed_identity(cycle_id, "000001"))
    assert poison_all(services) == 1
    finished = heartbeat(services, owner="faults")
    assert finished.action == "finished"
    summary = summary_of(finished)
    assert summary.status == "incomplete"
    assert (summary.batches, summary.batches_applied) == (1, 0)
    assert (summary.batches_missing, summary.missing_batches) == (1, ("000001",))
    assert summary.errors >= 1
    # What the replay needs is kept.
    container = services.storage.container(BATCH_CONTAINER)
    assert len(list(container.list_blob_names(name_starts_with=f"{summary.cycle_id}/"))) == 1
    # The change feed does not wait for a batch that will not finish.
    settle_s = services.settings.feed_settle_seconds
    wait_until(
        lambda: services.feed.stamps.watermark() > stamp.at_ms,
        timeout=settle_s + 5,
        what="the feed's watermark to pass the stamp of the unapplied batch",
    )

    assert replay_poison(services, actor=TEST_ACTOR) == 1
    drain(services)
    row = services.accounts.get(account_id)
    assert row is not None
    assert fields_of(row) == {
        "name": "Renamed",
        "new_longnotes": renamed,
    }
    for contact_id in contacts:
        assert {a["field"] for a in services.activities.for_contact(contact_id)} == {
            "name",
            "new_longnotes",
        }
    oracle.verify(services)  # faults over: the mirror equals Dynamics


def test_a_reload_chain_whose_earlier_cycle_lost_a_batch_does_not_sweep(
    oracle: Oracle, simulator: SimulatorHandle, services: Services, env: dict[str, str]
) -> None:
    """The re-load is read a page per heartbeat; its planning fails after the first page,
    whose batch went to the poison queue: the cycle that goes on from the checkpoint and
    ends the chain must not sweep the rows of that batch."""
    account_id, contacts = make_account(simulator, "Contoso", 4)
    run_cycle_now(services)
    simulator.control.expire_delta_tokens()
    paged = services_for({**env, "ACCTSYNC_PAGE_SIZE": "2", "ACCTSYNC_PLAN_BUDGET_SECONDS": "0"})
    wrong = services_for({**env, "DATAVERSE_CLIENT_SECRET": "not-the-secret"})
    try:
        assert heartbeat(paged, owner="faults", force=True).action == "checkpointed"
        assert poison_all(services) == 1  # the first page's batch
        assert heartbeat(wrong, owner="faults").action == "failed"
        closed = heartbeat(services, owner="faults")
        assert summary_of(closed).status == "failed"
        assert summary_of(closed).missing_batches == ("000001",)

        summary, _ = cycle_by_stages(paged, lambda: drain(paged))
    finally:
        paged.close()
        wrong.close()
    assert summary.modes["contacts"] == "reload"
    assert summary.status == "incomplete"
    assert closed.cycle_id in summary.sweeps_skipped["contacts"]
    assert sorted(live_ids(services.contacts)) == sorted(contacts)
    assert services.members.count(account_id) == 4
    oracle.verify(services)  # faults over: the mirror equals Dynamics
