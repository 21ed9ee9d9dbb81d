"""The demo data generator: determinism, shape, the accounts at the activity limit, speed."""

from __future__ import annotations

from collections import Counter

import pytest

from acctsync.sim.demo import ContactShape, generate
from acctsync.sim.harness import SimulatorError, SimulatorHandle
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
    assert str(account["createdon"]) <= str(account["modifiedon"])  # ISO texts
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


def test_lognormal_shape_is_a_real_orgs() -> None:
    """Issue 26: contacts per account heavy-tailed as in real orgs (lognormal, sigma 1.4, mean
    10, capped at 4,000), with no account at the activity limit; the default is unchanged."""
    data = generate(ORG, accounts=2_000, contacts=20_000, seed=1, shape=ContactShape.LOGNORMAL)
    assert len(data.contacts) == 20_000
    assert data.limit_accounts == {}
    per_account = Counter(
        c["parentcustomerid"] for _, c in data.contacts if c["parentcustomeridtype"] == "account"
    )
    counts = sorted(per_account.values())
    assert counts[-1] <= 4_000
    # Most accounts have a few contacts, a few have hundreds.
    assert counts[len(counts) // 2] <= 6
    assert counts[-1] >= 200
    assert generate(ORG, accounts=200, contacts=2000, seed=7) == generate(
        ORG, accounts=200, contacts=2000, seed=7, shape=ContactShape.PARETO
    )


def test_simulator_resets_to_a_shape(sim: SimulatorHandle) -> None:
    stats = sim.control.reset(accounts=300, contacts=3_000, seed=2, shape="lognormal")
    assert stats["contacts"] == 3_000
    assert stats["largest_accounts"][0]["contacts"] > 100
    with pytest.raises(SimulatorError, match="unknown shape 'flat'"):
        sim.control.reset(accounts=3, contacts=3, shape="flat")
