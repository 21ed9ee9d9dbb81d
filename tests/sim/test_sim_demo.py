"""The demo data generator: determinism, shape, the accounts at the activity limit, speed."""

from __future__ import annotations

from collections import Counter

from acctsync.sim.demo import generate
from acctsync.sim.harness import SimulatorHandle
from acctsync.sim.org import ORG


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    first = generate(ORG, accounts=200, contacts=2000, seed=7)
    assert generate(ORG, accounts=200, contacts=2000, seed=7) == first
    other = generate(ORG, accounts=200, contacts=2000, seed=8)
    assert other.accounts[0][0] != first.accounts[0][0]
    assert len(first.accounts) == 200
    assert len(first.contacts) == 2000


def test_limit_accounts_and_parent_customers() -> None:
    data = generate(ORG, accounts=300, contacts=12_000, seed=3)
    assert set(data.limit_accounts) == {5000, 5001}
    kinds = Counter(c["parentcustomeridtype"] for _, c in data.contacts)
    assert kinds["contact"] > 0
    assert kinds[None] > 0
    assert kinds["account"] > 0.9 * len(data.contacts)
    per_account = Counter(
        c["parentcustomerid"] for _, c in data.contacts if c["parentcustomeridtype"] == "account"
    )
    ordinary = sorted(n for a, n in per_account.items() if a not in data.limit_accounts.values())
    # Heavy tail: the biggest ordinary account dwarfs the median one.
    assert ordinary[-1] > 10 * ordinary[len(ordinary) // 2]
    # Too few contacts for the pair: no account sits at the limit.
    assert generate(ORG, accounts=300, contacts=10_000, seed=3).limit_accounts == {}


def test_realistic_columns() -> None:
    data = generate(ORG, accounts=50, contacts=100, seed=1)
    _, account = data.accounts[0]
    assert account["name"]
    assert account["address1_city"]
    assert account["createdon"] <= account["modifiedon"]
    _, contact = data.contacts[0]
    assert contact["fullname"] == f"{contact['firstname']} {contact['lastname']}"


def test_large_demo_has_every_row_once() -> None:
    data = generate(ORG, accounts=20_000, contacts=200_000, seed=1)
    assert len(data.contacts) == 200_000
    assert len({contact_id for contact_id, _ in data.contacts}) == 200_000


def test_simulator_serves_the_demo_data(sim: SimulatorHandle) -> None:
    stats = sim.control.reset(accounts=40, contacts=10_001, seed=5)
    assert stats["accounts"] == 40
    assert stats["contacts"] == 10_001
    largest = [a["contacts"] for a in stats["largest_accounts"][:2]]
    assert largest == [5001, 5000]
    expected = generate(ORG, accounts=40, contacts=10_001, seed=5)
    assert stats["largest_accounts"][0]["accountid"] == expected.limit_accounts[5001]
