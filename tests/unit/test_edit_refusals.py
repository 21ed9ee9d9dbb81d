"""A refused local edit carries a reason, not an HTTP status: the API maps each one."""

from __future__ import annotations

from shared.errors import AcctsyncError
from shared.sync.edits import EditError, EditRefusal
from shared.web.routes.contacts import EDIT_REFUSAL_STATUS


def test_every_edit_refusal_has_its_http_status_and_its_code_word() -> None:
    assert set(EDIT_REFUSAL_STATUS) == set(EditRefusal)
    assert all(400 <= status < 500 for status in EDIT_REFUSAL_STATUS.values())
    error = EditError(EditRefusal.CONTACT_HAS_NO_ACCOUNT, "contact c belongs to no account")
    assert isinstance(error, AcctsyncError)
    assert error.reason.value == "contact_has_no_account"
