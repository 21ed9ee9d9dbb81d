"""`/api/sync/status` is documented: the OpenAPI description names its model and fields
(generated from the app's routes, no server)."""

from __future__ import annotations

import json
from dataclasses import fields

from pydantic import BaseModel

from shared.state.summary import StageSummary
from shared.web.app import create_app
from shared.web.status_models import (
    ChangeLagState,
    CyclePlanState,
    CycleRow,
    FailureState,
    HealthState,
    HeldBatchesState,
    ResyncRow,
    SyncErrorRow,
    SyncFilterState,
    SyncStatusBody,
    TablePlanState,
    VerifyLast,
    VerifyRequestRow,
    VerifyRunning,
    VerifyState,
)

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


def test_the_openapi_document_names_every_nested_status_field() -> None:
    """Each object inside the status is a model of its own, its every field documented."""
    schemas = create_app(api_key="unit-test").openapi()["components"]["schemas"]
    nested: list[type[BaseModel]] = [
        HealthState,
        HeldBatchesState,
        CyclePlanState,
        TablePlanState,
        CycleRow,
        ChangeLagState,
        FailureState,
        SyncFilterState,
        ResyncRow,
        VerifyState,
        VerifyLast,
        VerifyRunning,
        VerifyRequestRow,
        SyncErrorRow,
    ]
    for model in nested:
        assert list(schemas[model.__name__]["properties"]) == list(model.model_fields), model
    stage_fields = [f.name for f in fields(StageSummary)]
    assert list(schemas["StageSummary"]["properties"]) == stage_fields
    status = schemas["SyncStatusBody"]["properties"]
    models_by_key: dict[str, type[BaseModel]] = {
        "health": HealthState,
        "current_plan": CyclePlanState,
        "last_cycles": CycleRow,
        "sync_filter": SyncFilterState,
        "resyncs": ResyncRow,
        "verify": VerifyState,
        "last_failure": FailureState,
        "last_errors": SyncErrorRow,
    }
    for key, model in models_by_key.items():
        assert f"#/components/schemas/{model.__name__}" in json.dumps(status[key]), key
    # A row of the running cycle and a finished cycle's share one model: the fields only a
    # finished one has are optional.
    row = schemas["CycleRow"]
    assert "step" not in row["required"] and "finished_at" not in row["required"]
    assert "stages" in row["properties"] and "change_lag_s" in row["properties"]
    assert "verdict" in schemas["HealthState"]["required"]
