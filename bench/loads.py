"""Initial loads (issue 26) of today's demo data and of a real org's shape, each between two
raw ceilings on Azurites of their own; then an idle cycle, changed accounts and a re-load."""

from __future__ import annotations

from typing import Any

from bench import ceiling
from bench.scenarios import plant, reload, run_cycle
from bench.stack import Stack

# Entities per record the ceiling before a load writes (a record's row and a contact's
# membership); the ceiling after it writes the load's own count.
ESTIMATED_ENTITIES_PER_RECORD = 2
CONTACTS_OF_CHANGED = 10  # contacts of each changed account
GOAL_RECORDS = 0.5  # records/s over the ceiling's entities/s
# The busiest partition's share of its table's writes: about 1/16 (the words). A hash
# over 16 partitions gives each 1/16 give or take chance (0.063 at 20,000 contacts), so the
# rule allows a tenth above it; a partition chosen by anything else is far above (a letter's
# search partition took 0.10, an hour of the synced stream 0.89).
GOAL_SPREAD = 1 / 16 * 1.1


def load_and_idle(
    stack: Stack,
    accounts: int,
    contacts: int,
    *,
    shape: str = "pareto",
    changed_accounts: int = 0,
    again: bool = True,
) -> dict[str, Any]:
    """A first load on an empty mirror between two ceilings, an idle cycle, optionally
    changed accounts, and (`again`) a full re-load after the delta tokens expired."""
    stack.sim.control.reset(accounts, contacts, seed=1, shape=shape)
    before = ceiling.measure(ESTIMATED_ENTITIES_PER_RECORD * (accounts + contacts))
    stack.fresh_azurite()
    load = run_cycle(stack)
    written = load["storage"]["entities_written"]
    after = ceiling.measure(written)
    best = ceiling.best(before, after)
    load_figures(load, best)
    result: dict[str, Any] = {
        "accounts": accounts,
        "contacts": contacts,
        "shape": shape,
        "load": load,
        "ceiling": best.against(entities=written, wall_s=load["wall_s"]),
        "ceilings_entities_per_s": [before.entities_per_s, after.entities_per_s],
        "idle": run_cycle(stack),
    }
    if changed_accounts:
        result["incremental"] = incremental(stack, changed_accounts)
    if again:
        result["reload"] = reload(stack)
    return result


def load_figures(load: dict[str, Any], best: ceiling.Ceiling) -> None:
    """A load's figures per record, beside the ceiling's entities/s."""
    summary, storage = load["summary"], load["storage"]
    records = summary["accounts_changed"] + summary["contacts_changed"]
    load["records"] = records
    load["records_per_s"] = records / load["wall_s"]
    load["records_ratio"] = load["records_per_s"] / best.entities_per_s
    load["cpu_ms_per_record"] = 1000 * load["cpu_s"] / records
    load["entities_per_record"] = storage["entities_written"] / records
    load["transactions_per_record"] = storage["table_transactions"] / records


def incremental(stack: Stack, changed: int) -> dict[str, Any]:
    """`changed` accounts of CONTACTS_OF_CHANGED contacts each (created and loaded as set-up)
    change one field each; the cycle's entities/s against a ceiling measured right after it."""
    ids = plant(stack.sim.control, [CONTACTS_OF_CHANGED] * changed, label="Changed")
    setup = run_cycle(stack)
    for number, account_id in enumerate(ids):
        stack.sim.control.update_account(account_id, {"telephone1": f"+1 425 555 {number:04d}"})
    run = run_cycle(stack)
    run["changed_accounts"] = changed
    run["contacts_each"] = CONTACTS_OF_CHANGED
    run["setup_s"] = setup["wall_s"]
    written = run["storage"]["entities_written"]
    run["ceiling"] = ceiling.measure(written).against(entities=written, wall_s=run["wall_s"])
    return run
