"""Claim 6: overlapping heartbeats and two local hosts (two processes) on the same storage run
one cycle at a time, and every change is read and applied once.

Two `acctsync run` processes beat every half second, and two threads of the test beat too,
while Dynamics keeps changing. Cycles follow each other with no pause (SYNC_INTERVAL_MINUTES=0),
so every heartbeat races for the lease.
"""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from datetime import datetime
from pathlib import Path

from acctsync.ports import free_port
from acctsync.sim.harness import SimulatorHandle
from shared.mirror.records import fields_of
from shared.services import Services
from shared.sync.cycle import heartbeat, queue_backlog
from tests.utils.faults import (
    ACCTSYNC,
    Figures,
    Oracle,
    Process,
    iter_history,
    scale,
    wait_until,
)
from tests.utils.helpers import live_ids


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_two_hosts_and_extra_heartbeats_run_one_cycle_at_a_time(
    oracle: Oracle,
    simulator: SimulatorHandle,
    services: Services,
    env: dict[str, str],
    figures: Figures,
    tmp_path: Path,
) -> None:
    control = simulator.control
    accounts, contacts = 40, 300
    control.reset(accounts=accounts, contacts=contacts, seed=61)
    stop = threading.Event()
    owners: set[str] = set()
    planned_by_threads: list[str] = []

    def beat(name: str) -> None:
        rng = random.Random(name)
        while not stop.is_set():
            try:
                outcome = heartbeat(services, owner=name)
                if outcome.action == "planned":
                    planned_by_threads.append(outcome.cycle_id)
            except Exception as error:  # pragma: no cover - shown if it ever happens
                planned_by_threads.append(f"error: {error!r}")
            stop.wait(rng.uniform(0.05, 0.5))

    def watch() -> None:
        while not stop.is_set():
            owner = services.schedule.read().lease_owner
            if owner:
                owners.add(owner)
            stop.wait(0.05)

    hosts: list[Process] = []
    threads = [threading.Thread(target=beat, args=(f"thread-{i}",)) for i in range(2)]
    threads.append(threading.Thread(target=watch))
    with (tmp_path / "hosts.log").open("a") as log:
        for name in ("host-a", "host-b"):
            host_env = {
                **env,
                "WEBSITE_INSTANCE_ID": name,
                "ACCTSYNC_API_PORT": str(free_port()),
                "ACCTSYNC_API_KEY": "overlap-test-key",
                "ACCTSYNC_HEARTBEAT_SECONDS": "0.5",
            }
            hosts.append(Process.start([*ACCTSYNC, "run"], host_env, log))
        try:
            # The hosts alone take the initial load, then the test's heartbeats join in.
            threads[-1].start()
            # Dynamics keeps changing while the cycles go round: each row changes once.
            rng = random.Random(6)
            wait_until(
                lambda: (
                    len(list(live_ids(services.contacts))) == contacts
                    # The demo's explicit Nos stay out of the mirror (the sync filter).
                    and len(list(live_ids(services.accounts))) + services.filtered.count()
                    == accounts
                ),
                timeout=120,
                what="the initial load",
            )
            for thread in threads[:-1]:
                thread.start()
            every_account = sorted(live_ids(services.accounts))
            every_contact = sorted(live_ids(services.contacts))
            changed_accounts = rng.sample(every_account, scale(16, 40))
            changed_contacts = rng.sample(every_contact, scale(16, 40))
            for account_id, contact_id in zip(changed_accounts, changed_contacts, strict=True):
                control.update_account(account_id, {"name": f"renamed {account_id[:8]}"})
                control.update_contact(contact_id, {"jobtitle": "changed once"})
                time.sleep(rng.uniform(0.1, 0.5))

            def all_applied() -> bool:
                rows = services.accounts.get_many(changed_accounts)
                names_done = all(
                    fields_of(rows[a])["name"] == f"renamed {a[:8]}" for a in changed_accounts
                )
                people = services.contacts.get_many(changed_contacts)
                titles_done = all(
                    people[c].get("f_jobtitle") == "changed once" for c in changed_contacts
                )
                return names_done and titles_done

            wait_until(all_applied, timeout=120, every=0.5, what="every change in the mirror")
            wait_until(
                lambda: services.schedule.read().phase == "idle" and not queue_backlog(services),
                timeout=60,
            )
        finally:
            stop.set()
            for host in hosts:
                host.popen.send_signal(signal.SIGTERM)
            for host in hosts:
                host.finish(timeout=60)
            for thread in threads:
                thread.join(timeout=30)
    assert not [p for p in planned_by_threads if p.startswith("error")], planned_by_threads

    cycles = sorted(iter_history(services), key=lambda c: (c["started_at"], c["finished_at"]))
    assert len(cycles) >= 3
    for earlier, later in itertools.pairwise(cycles):
        assert _time(later["started_at"]) >= _time(earlier["finished_at"]), (earlier, later)
    for cycle in cycles:
        assert cycle["batches_applied"] == cycle["batches"], cycle
    # Read once: had two cycles overlapped, both would have read the same changes.
    assert sum(c["accounts_changed"] for c in cycles) == accounts + len(changed_accounts)
    assert sum(c["contacts_changed"] for c in cycles) == contacts + len(changed_contacts)
    # Applied once: one activity per contact of each renamed account, none elsewhere.
    expected = sum(services.members.count(a) for a in changed_accounts)
    logged = sum(
        len(services.activities.for_contact(c))
        for a in changed_accounts
        for c in services.members.first(a, 10_000)
    )
    assert logged == expected
    assert sum(c["activities_logged"] for c in cycles) == expected
    assert {"host-a", "host-b"} & owners and {"thread-0", "thread-1"} & owners, owners
    oracle.verify(services)  # faults over: the mirror equals Dynamics
    figures.record(
        "overlapping_heartbeats",
        hosts=2,
        extra_heartbeat_threads=2,
        cycles=len(cycles),
        cycles_planned_by_test_threads=len(planned_by_threads),
        lease_holders_seen=sorted(owners),
        account_changes=len(changed_accounts),
        contact_changes=len(changed_contacts),
        changes_read=sum(c["accounts_changed"] + c["contacts_changed"] for c in cycles),
        activities=logged,
        overlapping_cycles=0,
    )
