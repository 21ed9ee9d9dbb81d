"""`/api/sync/status` is documented: the OpenAPI description names its model and fields
(generated from the app's routes, no server)."""

from __future__ import annotations

from shared.web.app import create_app
from shared.web.models import SyncStatusBody

# What `acctsync status` has always answered, in its order.
STATUS_KEYS = [
    "health",
    "paused",
    "paused_since",
    "phase",
    "current_cycle",
    "current_stage",
    "current_plan",
    "checkpoints",
    "lease",
    "last_cycles",
    "next_due",
    "queue_backlog",
    "poison_count",
    "cursor_age_s",
    "unreadable_fields",
    "unreadable_columns",
    "sync_filter",
    "filtered_accounts",
    "resyncs",
    "verify",
    "last_failure",
    "failures_in_a_row",
    "last_errors",
]


def test_the_openapi_document_names_the_status_fields() -> None:
    spec = create_app(api_key="unit-test").openapi()
    answer = spec["paths"]["/api/sync/status"]["get"]["responses"]["200"]
    schema = answer["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SyncStatusBody"}
    documented = spec["components"]["schemas"]["SyncStatusBody"]["properties"]
    assert list(documented) == list(SyncStatusBody.model_fields) == STATUS_KEYS
    assert "newest first" in documented["last_cycles"]["description"]
