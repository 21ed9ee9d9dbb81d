"""Deterministic demo data and the optional churn that keeps every sync cycle busy.

The same seed, sizes and shape always give the same rows (ids included). By default contacts
per account follow a heavy-tailed (Pareto) distribution capped below the activity limit, and
when the contact budget allows two accounts sit exactly on either side of it: the first account
has 5,000 contacts and the second 5,001. The lognormal shape is a real org's (sigma 1.4, capped
at 4,000, no account at the limit): most accounts have a few contacts, a few have hundreds.
About 2% of contacts have another contact as parent customer and about 1% have none.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from acctsync.sim.org import Org
from acctsync.sim.records import RecordError, RecordWriter
from acctsync.sim.schema import ACCOUNT, CONTACT, INDUSTRY_CODES
from acctsync.sim.store import Store, StoreError, Value

log = logging.getLogger(__name__)

LIMIT_ACCOUNTS: Final = (5000, 5001)
# Other accounts stay well below the activity limit so only the two above sit at it.
_OTHER_ACCOUNT_CAP: Final = 4000
# Contacts per account in real orgs (issue 26): lognormal with this sigma around the mean.
_LOGNORMAL_SIGMA: Final = 1.4
_EPOCH: Final = datetime(2019, 1, 1, tzinfo=UTC)
_SPAN_S: Final = int((datetime(2025, 6, 30, tzinfo=UTC) - _EPOCH).total_seconds())

_PREFIXES = (
    "Northwind", "Contoso", "Fabrikam", "Adventure Works", "Blue Yonder", "Litware", "Tailspin",
    "Wingtip", "Proseware", "Alpine Ski", "Coho", "Lucerne", "Margie's", "Trey", "Woodgrove",
    "Humongous", "Fourth Coffee", "Wide World", "Southridge", "Relecloud", "Lamna", "Consolidated",
    "VanArsdel", "Bellows", "Datum", "Nod", "Munson's", "Best For You", "City Power", "Graphic",
)  # fmt: skip
_CORES = (
    "Traders", "Systems", "Logistics", "Analytics", "Foods", "Insurance", "Airlines", "Motors",
    "Health", "Energy", "Media", "Consulting", "Robotics", "Textiles", "Pharma", "Outfitters",
    "Realty", "Brewing", "Bank", "Partners", "Software", "Electronics", "Studios", "Labs",
)  # fmt: skip
_SUFFIXES = ("Inc.", "Ltd.", "GmbH", "S.A.", "LLC", "AG", "Corp.", "Group", "plc", "B.V.", "")
_PLACES = (
    ("Seattle", "United States"), ("Redmond", "United States"), ("New York", "United States"),
    ("Chicago", "United States"), ("Austin", "United States"), ("Boston", "United States"),
    ("Toronto", "Canada"), ("Vancouver", "Canada"), ("Mexico City", "Mexico"),
    ("London", "United Kingdom"), ("Manchester", "United Kingdom"), ("Dublin", "Ireland"),
    ("Paris", "France"), ("Lyon", "France"), ("Berlin", "Germany"), ("Munich", "Germany"),
    ("Zürich", "Switzerland"), ("Amsterdam", "Netherlands"), ("Madrid", "Spain"),
    ("Milano", "Italy"), ("Stockholm", "Sweden"), ("Oslo", "Norway"), ("København", "Denmark"),
    ("Warszawa", "Poland"), ("São Paulo", "Brazil"), ("Buenos Aires", "Argentina"),
    ("Tokyo", "Japan"), ("Osaka", "Japan"), ("Sydney", "Australia"), ("Auckland", "New Zealand"),
    ("Singapore", "Singapore"), ("Bengaluru", "India"), ("Cape Town", "South Africa"),
)  # fmt: skip
_FIRST = (
    "Adele", "Alex", "Allan", "Ana", "Bianca", "Brian", "Camille", "Carlos", "Chen", "Christie",
    "Diego", "Emily", "Enrico", "Fatima", "François", "Grady", "Hannah", "Henrietta", "Isaiah",
    "Jakob", "Johanna", "Joni", "Kenji", "Lee", "Lidia", "Lynne", "Megan", "Miriam", "Nestor",
    "Olga", "Patti", "Pradeep", "Raul", "Sakura", "Siobhan", "Sven", "Tomás", "Yvonne", "Zoë",
)  # fmt: skip
_LAST = (
    "Adams", "Bowen", "Cooper", "Dubois", "Eriksson", "Fernandez", "García", "Gonzalez", "Holloway",
    "Ibrahim", "Jensen", "Kowalski", "Langer", "Lee", "Lopez", "McKay", "Müller", "Nakamura",
    "O'Brien", "Patel", "Quinn", "Rossi", "Schmidt", "Sherman", "Siciliani", "Silva", "Smith",
    "Tanaka", "Vargas", "Wilber", "Wong", "Yamamoto", "Zhang",
)  # fmt: skip
_TITLES = (
    "Purchasing Manager", "Marketing Director", "CEO", "CFO", "IT Manager", "Sales Rep",
    "Office Manager", "Buyer", "VP Operations", "Engineer", "Analyst", "Account Executive",
    "Procurement Lead", "Head of Partnerships", None,
)  # fmt: skip

Rows = list[tuple[str, dict[str, Value]]]


class ContactShape(StrEnum):
    """How contacts spread over accounts."""

    PARETO = "pareto"  # the demo's own, with the pair at the activity limit
    LOGNORMAL = "lognormal"  # a real org's


@dataclass(frozen=True)
class DemoData:
    accounts: Rows
    contacts: Rows

    @property
    def limit_accounts(self) -> dict[int, str]:
        """Contact count -> account id of the accounts sitting at the activity limit."""
        counts: dict[str, int] = {}
        for _, contact in self.contacts:
            parent = contact["parentcustomerid"]
            if contact["parentcustomeridtype"] == "account" and isinstance(parent, str):
                counts[parent] = counts.get(parent, 0) + 1
        return {n: a for a, n in counts.items() if n in LIMIT_ACCOUNTS}


def _id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# Dates are formatted once: strftime per row would dominate generating 200,000 contacts.
_DAYS: Final = [
    (_EPOCH + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(_SPAN_S // 86400 + 1)
]


def _stamp(seconds: int) -> str:
    day, rest = divmod(seconds, 86400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    return f"{_DAYS[day]}T{hour:02d}:{minute:02d}:{second:02d}Z"


def _times(rng: random.Random) -> tuple[str, str]:
    created = rng.randrange(_SPAN_S)
    modified = created + int((_SPAN_S - created) * rng.random())
    return _stamp(created), _stamp(modified)


def _sync_to_marketing(index: int) -> bool | None:
    """new_synctomkto of the index-th demo account: mostly unset (rows from before the column
    was added), one in ten explicitly Yes and one in twenty-five explicitly No. Derived from the
    index, not drawn from the generator, so adding the column left every other value as it was.
    """
    if index % 10 == 1:
        return True
    if index % 25 == 4:
        return False
    return None


def _slug(name: str) -> str:
    return "".join(c for c in name.lower() if c.isascii() and c.isalnum())


_SLUGS: Final = {name: _slug(name) for name in _FIRST + _LAST}


def _weight(rng: random.Random, shape: ContactShape) -> float:
    if shape is ContactShape.LOGNORMAL:
        # mu = -sigma^2/2 gives a mean of 1: the budget then scales it to the mean wanted.
        return rng.lognormvariate(-(_LOGNORMAL_SIGMA**2) / 2, _LOGNORMAL_SIGMA)
    return rng.paretovariate(1.16)


def _contact_counts(
    rng: random.Random, accounts: int, contacts: int, shape: ContactShape
) -> list[int]:
    """Contacts per account: for the Pareto shape the limit pair first; a capped tail of the
    shape for the rest."""
    counts = [0] * accounts
    fixed = 0
    if shape is ContactShape.PARETO and contacts >= sum(LIMIT_ACCOUNTS) and accounts >= 2:
        counts[0], counts[1] = LIMIT_ACCOUNTS
        fixed = 2
    others = list(range(fixed, accounts))
    budget = contacts - sum(counts)
    if not others or budget <= 0:
        return counts
    capacity = _OTHER_ACCOUNT_CAP * len(others)
    if budget > capacity:
        raise ValueError(
            f"{contacts} contacts need more than {accounts} accounts "
            f"(at most {_OTHER_ACCOUNT_CAP} contacts each besides the limit pair)"
        )
    weights = [_weight(rng, shape) for _ in others]
    total = sum(weights)
    for index, weight in zip(others, weights, strict=True):
        counts[index] = min(_OTHER_ACCOUNT_CAP, int(budget * weight / total))
    left = budget - sum(counts[i] for i in others)
    while left > 0:
        for index in rng.choices(others, weights, k=left):
            if counts[index] < _OTHER_ACCOUNT_CAP and left > 0:
                counts[index] += 1
                left -= 1
    return counts


def generate(
    org: Org,
    *,
    accounts: int,
    contacts: int,
    seed: int,
    shape: ContactShape = ContactShape.PARETO,
) -> DemoData:
    """Build the rows; nothing random outside `seed` goes in, so the result is reproducible."""
    rng = random.Random(seed)
    owners = org.owners
    account_rows: Rows = []
    domains: list[str] = []
    for index in range(accounts):
        city, country = rng.choice(_PLACES)
        name = " ".join(
            p for p in (rng.choice(_PREFIXES), rng.choice(_CORES), rng.choice(_SUFFIXES)) if p
        )
        domain = f"{_slug(name)}.example"
        domains.append(domain)
        created, modified = _times(rng)
        owner = rng.choice(owners)
        inactive = rng.random() < 0.05
        revenue = round(rng.lognormvariate(15, 1.8), 2) if rng.random() < 0.85 else None
        credit = round(rng.uniform(1_000, 500_000), 2) if rng.random() < 0.4 else None
        values: dict[str, Value] = {
            "name": name,
            "accountnumber": f"AC{seed % 100:02d}-{index:06d}",
            "industrycode": rng.choice(list(INDUSTRY_CODES)) if rng.random() < 0.9 else None,
            "revenue": min(revenue, 1e11) if revenue is not None else None,
            "numberofemployees": int(rng.lognormvariate(4, 1.6)),
            "address1_city": city,
            "address1_country": country,
            "telephone1": f"+1 {rng.randint(200, 989)} 555 {rng.randint(0, 9999):04d}",
            "websiteurl": f"https://www.{domain}",
            "description": (
                f"{name} is a {country} customer since {created[:4]}."
                if rng.random() < 0.3
                else None
            ),
            "donotemail": rng.random() < 0.08,
            "new_synctomkto": _sync_to_marketing(index),
            "creditlimit": credit,
            "new_marketingscore": rng.randint(0, 100) if rng.random() < 0.7 else None,
            "new_writeonlytoken": None,
            "parentaccountid": (
                account_rows[rng.randrange(index)][0] if index and rng.random() < 0.05 else None
            ),
            "primarycontactid": None,
            "transactioncurrencyid": (
                org.currency_id if revenue is not None or credit is not None else None
            ),
            "exchangerate": 1.0 if revenue is not None or credit is not None else None,
            "ownerid": owner.id,
            "owneridtype": owner.kind,
            "statecode": 1 if inactive else 0,
            "statuscode": 2 if inactive else 1,
            "createdon": created,
            "modifiedon": modified,
        }
        account_rows.append((_id(rng), values))

    counts = _contact_counts(rng, accounts, contacts, shape)
    contact_rows: Rows = []
    for account_index, count in enumerate(counts):
        account_id, account = account_rows[account_index]
        for position in range(count):
            contact_rows.append(_contact(rng, org, account_id, "account", domains[account_index]))
            if position == 0:
                account["primarycontactid"] = contact_rows[-1][0]
    # Without accounts every contact is an orphan; they still get reparented below.
    for _ in range(contacts - len(contact_rows)):
        contact_rows.append(_contact(rng, org, None, None, "example.org"))
    fixed = {account_rows[i][0] for i in range(min(2, accounts)) if counts[i] in LIMIT_ACCOUNTS}
    _reparent(rng, contact_rows, fixed)
    return DemoData(account_rows, contact_rows)


def _reparent(rng: random.Random, contacts: Rows, keep: set[str]) -> None:
    """Move ~2% of the contacts under another contact and ~1% to no parent at all.

    Contacts of the accounts in `keep` stay put so their counts stay exact. A new parent is
    always a contact whose own parent is an account, so parent chains never loop.
    """
    for row_id, values in contacts:
        if values["parentcustomerid"] in keep or rng.random() >= 0.03:
            continue
        if rng.random() < 0.67:
            parent_id, parent = contacts[rng.randrange(len(contacts))]
            if parent_id != row_id and parent["parentcustomeridtype"] == "account":
                values["parentcustomerid"], values["parentcustomeridtype"] = parent_id, "contact"
        else:
            values["parentcustomerid"], values["parentcustomeridtype"] = None, None


def _contact(
    rng: random.Random, org: Org, parent: str | None, parent_type: str | None, domain: str
) -> tuple[str, dict[str, Value]]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    created, modified = _times(rng)
    owner = rng.choice(org.owners)
    local = f"{_SLUGS[first]}.{_SLUGS[last]}"
    inactive = rng.random() < 0.04
    values: dict[str, Value] = {
        "fullname": f"{first} {last}",
        "firstname": first,
        "lastname": last,
        "emailaddress1": f"{local}{rng.randint(1, 999)}@{domain}" if rng.random() < 0.92 else None,
        "jobtitle": rng.choice(_TITLES),
        "telephone1": f"+1 {rng.randint(200, 989)} 555 {rng.randint(0, 9999):04d}",
        "parentcustomerid": parent,
        "parentcustomeridtype": parent_type,
        "ownerid": owner.id,
        "owneridtype": owner.kind,
        "statecode": 1 if inactive else 0,
        "statuscode": 2 if inactive else 1,
        "createdon": created,
        "modifiedon": modified,
    }
    return _id(rng), values


def load(store: Store, data: DemoData) -> None:
    store.load(ACCOUNT.logical_name, data.accounts)
    store.load(CONTACT.logical_name, data.contacts)


class Churn:
    """Small random changes every interval so a running sync always has something to do."""

    def __init__(self, store: Store, org: Org, *, seed: int, interval_s: float) -> None:
        self.store = store
        self.org = org
        self.interval_s = interval_s
        self.rng = random.Random(seed)
        self.accounts = RecordWriter(store, org, ACCOUNT)
        self.contacts = RecordWriter(store, org, CONTACT)

    def tick(self) -> int:
        """One round of changes; returns how many rows it touched."""
        rng = self.rng
        account_ids = list(self.store.data("account").rows)
        contact_ids = list(self.store.data("contact").rows)
        touched = 0
        for account_id in rng.sample(account_ids, min(len(account_ids), rng.randint(1, 5))):
            change: dict[str, object] = rng.choice(
                [
                    {"telephone1": f"+1 {rng.randint(200, 989)} 555 {rng.randint(0, 9999):04d}"},
                    {"numberofemployees": int(rng.lognormvariate(4, 1.6))},
                    {"revenue": round(rng.lognormvariate(15, 1.8), 2)},
                    {"address1_city": rng.choice(_PLACES)[0]},
                    {"description": f"Updated by the demo churn, round {rng.randint(1, 10**6)}."},
                ]
            )
            self.accounts.update(account_id, change)
            touched += 1
        if contact_ids and rng.random() < 0.5:
            self.contacts.update(rng.choice(contact_ids), {"jobtitle": rng.choice(_TITLES)})
            touched += 1
        if account_ids and rng.random() < 0.2:
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            self.contacts.create(
                {"firstname": first, "lastname": last, "parentcustomerid": rng.choice(account_ids)}
            )
            touched += 1
        if contact_ids and rng.random() < 0.1:
            touched += self.store.delete("contact", rng.choice(contact_ids))
        return touched

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                touched = self.tick()
            except (RecordError, StoreError) as error:
                log.warning("demo churn skipped a round: %s", error)
                continue
            log.info("demo churn changed %d rows", touched)
