"""The next step of a cycle (shared/sync/cycle.py `next_step`): contacts, then their sweep when
they were re-loaded, accounts, their sweep when re-loaded, then a queued re-sync's chunk."""

from __future__ import annotations

from shared.state.schedule import CyclePlan, LoadMode, Step, TablePlan
from shared.sync.cycle import next_step


def plan(*, contacts: LoadMode, accounts: LoadMode, resync: str = "") -> CyclePlan:
    tables = {"contacts": TablePlan(contacts), "accounts": TablePlan(accounts)}
    return CyclePlan(tables=tables, resync=resync)


def steps(planned: CyclePlan) -> list[Step]:
    """Every step of a cycle with that plan, from the first."""
    taken = [Step.CONTACTS]
    while (following := next_step(taken[-1], planned)) is not None:
        taken.append(following)
    return taken


def test_deltas_read_contacts_then_accounts() -> None:
    assert steps(plan(contacts=LoadMode.DELTA, accounts=LoadMode.DELTA)) == [
        Step.CONTACTS,
        Step.ACCOUNTS,
    ]
    assert steps(plan(contacts=LoadMode.INITIAL, accounts=LoadMode.INITIAL)) == [
        Step.CONTACTS,
        Step.ACCOUNTS,
    ]


def test_a_reloaded_table_is_swept_right_after_it() -> None:
    assert steps(plan(contacts=LoadMode.RELOAD, accounts=LoadMode.DELTA)) == [
        Step.CONTACTS,
        Step.CONTACTS_SWEEP,
        Step.ACCOUNTS,
    ]
    assert steps(plan(contacts=LoadMode.DELTA, accounts=LoadMode.RELOAD)) == [
        Step.CONTACTS,
        Step.ACCOUNTS,
        Step.ACCOUNTS_SWEEP,
    ]


def test_a_resync_comes_last_after_the_accounts_and_their_sweep() -> None:
    assert steps(plan(contacts=LoadMode.DELTA, accounts=LoadMode.DELTA, resync="r1")) == [
        Step.CONTACTS,
        Step.ACCOUNTS,
        Step.RESYNC,
    ]
    assert steps(plan(contacts=LoadMode.RELOAD, accounts=LoadMode.RELOAD, resync="r1")) == [
        Step.CONTACTS,
        Step.CONTACTS_SWEEP,
        Step.ACCOUNTS,
        Step.ACCOUNTS_SWEEP,
        Step.RESYNC,
    ]
    assert next_step(Step.RESYNC, plan(contacts=LoadMode.DELTA, accounts=LoadMode.DELTA)) is None


def test_a_table_not_read_yet_is_not_swept() -> None:
    assert next_step(Step.CONTACTS, CyclePlan()) is Step.ACCOUNTS
    assert next_step(Step.ACCOUNTS, CyclePlan()) is None
