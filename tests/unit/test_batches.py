"""Packing changes into queue messages (pure: no server)."""

from __future__ import annotations

import uuid

import pytest

from shared.mapping import ColumnType
from shared.mirror.records import bucket
from shared.mirror.search import SearchKey, SearchKind
from shared.state.schedule import LoadMode
from shared.sync.batches import (
    MAX_MESSAGE_BYTES,
    AccountChange,
    BadBatch,
    Batch,
    BatchPacker,
    ClaimCheck,
    ContactChange,
    Packed,
    SweepBatch,
    contact_fragment,
    decode_message,
    encode_batch,
    header_budget,
    member_fragment,
)
from shared.sync.readers import search_fragments

HEADER = Batch(
    "20261126T000000-abcdef12",
    "000000",
    LoadMode.INITIAL,
    {},
    members_apart=True,
    search_apart=True,
)


def _contact(number: int) -> ContactChange:
    account = str(uuid.UUID(int=number % 97 + 1))
    values = {"fullname": f"Contact {number}", "jobtitle": "Buyer" * (number % 7)}
    return ContactChange(str(uuid.UUID(int=10**6 + number)), 1, account, "account", values=values)


def _pack(changes: list[ContactChange]) -> tuple[list[Packed], list[Packed]]:
    packer = BatchPacker(header_budget(HEADER))
    streamed: list[Packed] = []
    for change in changes:
        for kind, partition, fragment in (
            ("contacts", bucket(change.id), contact_fragment(change)),
            (
                "members",
                bucket(str(change.parent_id)),
                member_fragment(str(change.parent_id), change.id),
            ),
            *(
                (f.kind, f.partition, f.text)
                for f in search_fragments(SearchKind.CONTACT, change.id, change.values)
            ),
        ):
            assert packer.fits(fragment)
            if (full := packer.add(kind, partition, fragment)) is not None:  # type: ignore[arg-type]
                streamed.append(full)
    return streamed, list(packer.flush())


def test_streamed_batches_hold_one_partition_and_every_message_fits() -> None:
    changes = [_contact(n) for n in range(20_000)]
    streamed, rest = _pack(changes)
    assert streamed, "20,000 contacts fill partitions while they stream"
    for packed in streamed:
        decoded = Batch.decode(_message(packed))
        partitions = (
            {bucket(c.id) for c in decoded.contacts}
            | {"m" + bucket(a) for a, _ in decoded.members}
            | {SearchKey.of(*entry).partition for entry in decoded.search}
        )
        assert len(partitions) == 1
    # Nothing lost, nothing doubled, and no message over the queue's limit.
    seen: list[str] = []
    pairs: list[tuple[str, str]] = []
    indexed: list[str] = []
    for packed in streamed + rest:
        message = _message(packed)
        assert len(message.encode()) <= MAX_MESSAGE_BYTES
        decoded = Batch.decode(message)
        assert decoded.members_apart
        seen += [c.id for c in decoded.contacts]
        pairs += decoded.members
        indexed += [i for _, _, i in decoded.search]
    assert sorted(seen) == sorted(c.id for c in changes)
    assert sorted(indexed) == sorted(c.id for c in changes)  # a name each, no email
    assert sorted(pairs) == sorted((str(c.parent_id), c.id) for c in changes)
    # The remainders are packed together, full, rather than one small batch per partition.
    budget = header_budget(HEADER)
    assert all(packed.size > budget - 500 for packed in rest[:-1])
    assert len(rest) < 2 * 64


def test_a_change_larger_than_a_message_does_not_fit() -> None:
    packer = BatchPacker(header_budget(HEADER))
    huge = ContactChange(str(uuid.uuid4()), 1, values={"description": "x" * MAX_MESSAGE_BYTES})
    assert not packer.fits(contact_fragment(huge))


def _message(packed: Packed) -> str:
    return encode_batch(
        HEADER,
        accounts=packed.accounts,
        contacts=packed.contacts,
        members=packed.members,
        search=packed.search,
    )


def test_a_version_1_message_still_decodes_and_an_unknown_version_does_not() -> None:
    contact_id = str(uuid.uuid4())
    old = (
        '{"v":1,"cycle":"c1","batch":"000001","mode":"delta","columns":{},"traceparent":null,'
        f'"backfill":[],"accounts":[],"contacts":[{{"id":"{contact_id}","ver":3,"parent":null,'
        '"ptype":null,"mod":null,"f":{}}]}'
    )
    batch = Batch.decode(old)
    assert [c.id for c in batch.contacts] == [contact_id]
    assert batch.members == [] and not batch.members_apart
    assert batch.search == [] and not batch.search_apart
    with pytest.raises(BadBatch, match="format 7"):
        Batch.decode(old.replace('"v":1', '"v":7'))


def test_labels_travel_with_their_values_and_a_version_4_batch_has_none() -> None:
    account_id, contact_id = str(uuid.uuid4()), str(uuid.uuid4())
    batch = Batch(
        "c1",
        "000001",
        LoadMode.DELTA,
        {"industrycode": ColumnType.CHOICE},
        accounts=[
            AccountChange(
                account_id, 7, values={"industrycode": 30}, labels={"industrycode": "Transport"}
            )
        ],
        contacts=[ContactChange(contact_id, 3, values={"statecode": 0})],
    )
    decoded = Batch.decode(batch.encode())
    assert decoded.accounts[0].labels == {"industrycode": "Transport"}
    assert decoded.contacts[0].labels == {}
    assert '"fmt"' not in contact_fragment(batch.contacts[0])  # no label, no key
    v4 = batch.encode().replace('"v":5', '"v":4').replace(',"fmt":{"industrycode":"Transport"}', "")
    assert Batch.decode(v4).accounts[0].labels == {}
    with pytest.raises(BadBatch, match="labels"):
        Batch.decode(batch.encode().replace('"Transport"', "30"))


def test_text_is_counted_in_utf8_bytes_as_the_queue_counts_it() -> None:
    # 6,000 CJK characters: 18,000 bytes of UTF-8 (36,000 as \u escapes). Two fit a message.
    memo = "語" * 6_000
    changes = [ContactChange(str(uuid.uuid4()), 1, values={"fullname": memo}) for _ in range(7)]
    packer = BatchPacker(header_budget(HEADER))
    packed: list[Packed] = []
    for change in changes:
        fragment = contact_fragment(change)
        assert memo in fragment  # as UTF-8 text, not escapes
        if (full := packer.add("contacts", "00", fragment)) is not None:
            packed.append(full)
    packed += list(packer.flush())
    assert len(packed) == 4
    names: list[str] = []
    for one in packed:
        message = _message(one)
        assert len(message.encode("utf-8")) <= MAX_MESSAGE_BYTES
        names += [c.values["fullname"] for c in Batch.decode(message).contacts]
    assert names == [memo] * 7


def test_sweeps_and_claim_checks_round_trip() -> None:
    sweep = SweepBatch("c1", "000007", "contacts", "13", 4, None)
    assert decode_message(sweep.encode()) == sweep
    claim = ClaimCheck("c1", "000008", "c1/000008.json")
    assert decode_message(claim.encode()) == claim
    with pytest.raises(BadBatch, match="claim check"):
        decode_message(claim.encode().replace("c1/000008.json", "../etc/passwd"))
    with pytest.raises(BadBatch, match="partition"):
        decode_message(sweep.encode().replace('"13"', '"1x"'))
    with pytest.raises(BadBatch, match="not a batch of changes"):
        Batch.decode(sweep.encode())


def test_a_filtered_account_travels_without_values_and_a_resync_names_itself() -> None:
    kept_out = AccountChange(str(uuid.uuid4()), 7, "2026-01-01T00:00:00Z", filtered=True)
    synced = AccountChange(str(uuid.uuid4()), 8, None, values={"name": "Contoso"})
    header = Batch("c1", "000001", LoadMode.DELTA, {}, resync="20261201T000000000000-abc123")
    decoded = Batch.decode(Batch(**{**header.__dict__, "accounts": [kept_out, synced]}).encode())
    assert decoded.accounts == [kept_out, synced]
    assert decoded.resync == header.resync
    assert Batch.decode(HEADER.encode()).resync == ""  # a normal batch is no re-sync


def test_a_partition_batch_is_handed_over_when_the_next_change_would_overflow_it() -> None:
    packer = BatchPacker(budget=25)  # room for two 10-byte changes and their commas
    assert packer.add("accounts", "p1", "a" * 10) is None
    assert packer.add("accounts", "p2", "b" * 10) is None
    assert packer.add("accounts", "p1", "c" * 10) is None
    full = packer.add("accounts", "p1", "d" * 10)
    assert full is not None and full.accounts == ["a" * 10, "c" * 10] and full.size == 22
    # The rest, in partition order, packed together up to the budget.
    rest = list(packer.flush())
    assert [packed.accounts for packed in rest] == [["d" * 10, "b" * 10]]
    assert list(packer.flush()) == []
    assert packer.fits("e" * 24) and not packer.fits("e" * 25)
