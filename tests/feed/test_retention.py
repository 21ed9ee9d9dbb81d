"""A `modified_since` (API lists) or `--since` (export) from before what the feeds' retention
kept is refused, saying since when the index is whole and how to get a full copy, instead of
silently serving only what was kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from acctsync.cli import main
from shared.mirror.feed_index import now_ms
from shared.mirror.shards import WINDOW_MS
from shared.services import Services
from tests.utils.feed import plant_old_entry, seed_account, settle

DAY_MS = 24 * 3600 * 1000


def iso_ms(at_ms: int) -> str:
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat()


def test_a_walk_from_before_the_retention_is_a_400_saying_what_to_do(
    mirror: Services, feed_api: httpx.Client
) -> None:
    seed_account(mirror, 2)
    old_ms = now_ms() - 40 * DAY_MS
    plant_old_entry(mirror, old_ms, "old")
    settle()
    # Nothing removed yet: a walk from before the first entry is whole.
    before_all = iso_ms(old_ms - DAY_MS)
    for listed in ("accounts", "contacts"):
        whole = feed_api.get(f"/api/{listed}", params={"modified_since": before_all})
        assert whole.status_code == 200, whole.text

    cutoff_ms = now_ms() - 30 * DAY_MS
    assert mirror.feed.remove_older_than(cutoff_ms) > 0
    kept_from = cutoff_ms // WINDOW_MS * WINDOW_MS  # the hour of the cutoff stays whole
    for listed in ("accounts", "contacts"):
        gone = feed_api.get(f"/api/{listed}", params={"modified_since": iso_ms(kept_from - 1)})
        assert gone.status_code == 400, gone.text
        error = gone.json()["error"]
        assert error["code"] == "modified_since_too_old"
        assert (
            datetime.fromtimestamp(kept_from / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            in (error["message"])
        )
        assert f"list /api/{listed} without modified_since" in error["message"]
        kept = feed_api.get(f"/api/{listed}", params={"modified_since": iso_ms(kept_from)})
        assert kept.status_code == 200, kept.text
        assert len(kept.json()["items"]) == (1 if listed == "accounts" else 2)

    assert mirror.feed.kept_from() == kept_from
    # A later prune with nothing to remove leaves the record as it is.
    assert mirror.feed.remove_older_than(cutoff_ms + DAY_MS) == 0
    assert mirror.feed.kept_from() == kept_from


def test_an_export_from_before_the_retention_fails_and_writes_nothing(
    mirror: Services, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_account(mirror, 2)
    plant_old_entry(mirror, now_ms() - 40 * DAY_MS, "old")
    mirror.feed.remove_older_than(now_ms() - 30 * DAY_MS)
    output = tmp_path / "accounts.csv"
    since = iso_ms(now_ms() - 35 * DAY_MS)
    for what in ("accounts", "contacts"):
        code = main(["export", what, "--since", since, "--output", str(output)])
        assert code != 0
        stderr = capsys.readouterr().err
        assert "FEED_RETENTION_DAYS" in stderr
        assert f"export {what} without --since" in stderr
        assert not output.exists() and list(tmp_path.iterdir()) == []
    recent = iso_ms(now_ms() - DAY_MS)
    assert main(["export", "accounts", "--since", recent, "--output", str(output)]) == 0
    assert output.exists()
