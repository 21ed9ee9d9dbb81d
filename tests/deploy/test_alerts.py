"""The alert rules of infra/app/alerts.bicep, evaluated as main.bicep deploys them: one rule
per signal, each on its metric, thresholds from the parameters, the action group mailing
alertEmail, and the rules' own identity with Reader on what they query."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ._support import (
    ALERT_METRIC_NAMES,
    APP_DIR,
    INFRA,
    MAIN_BICEP,
    METRIC_NAMES,
    BicepFile,
    Declared,
)

ALERTS_BICEP = APP_DIR / "alerts.bicep"
DEPLOYMENT = {
    "environmentName": "acctsync-test",
    "dataverseUrl": "https://contoso.crm.dynamics.com",
}
READER_ROLE_ID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
RULE_TYPE = "Microsoft.Insights/scheduledQueryRules@2023-12-01"
ACTION_GROUP_TYPE = "Microsoft.Insights/actionGroups@2023-01-01"

# Rule key (the end of its name) -> what it watches and how it is judged.
EXPECTED_RULES: dict[str, dict[str, Any]] = {
    # The heartbeat records seconds since the last successful cycle every 30 s; no row at
    # all means the heartbeat itself is dead, so the query returns a row when down.
    "sync-down": {
        "metric": "acctsync.since_last_success_s",
        "severity": 1,
        "evaluationFrequency": "PT5M",
        "windowSize": "PT15M",
        "timeAggregation": "Count",
        "metricMeasureColumn": None,
        "autoMitigate": True,
    },
    # Every heartbeat counts itself: no row in 10 minutes means the host is down.
    "host-down": {
        "metric": "acctsync.heartbeats",
        "severity": 1,
        "evaluationFrequency": "PT5M",
        "windowSize": "PT10M",
        "timeAggregation": "Count",
        "metricMeasureColumn": None,
        "autoMitigate": True,
    },
    # A daily digest: stateless, so it mails every day that has errors.
    "sync-errors": {
        "metric": "acctsync.sync_errors",
        "severity": 3,
        "evaluationFrequency": "P1D",
        "windowSize": "P1D",
        "timeAggregation": "Total",
        "metricMeasureColumn": "sync_errors",
        "autoMitigate": False,
    },
    "poison-backlog": {
        "metric": "acctsync.poison_backlog",
        "severity": 2,
        "evaluationFrequency": "PT15M",
        "windowSize": "PT15M",
        "timeAggregation": "Maximum",
        "metricMeasureColumn": "poison_backlog",
        "autoMitigate": True,
    },
    "credentials-refused": {
        "metric": "acctsync.planning_failures",
        "severity": 1,
        "evaluationFrequency": "PT5M",
        "windowSize": "PT15M",
        "timeAggregation": "Total",
        "metricMeasureColumn": "auth_failures",
        "autoMitigate": True,
    },
    # Once per verify: one mail per verify that left drift (a stateful rule would resolve
    # itself a window later while the drift stays).
    "verify-drift": {
        "metric": "acctsync.verify_drift",
        "severity": 2,
        "evaluationFrequency": "PT15M",
        "windowSize": "PT15M",
        "timeAggregation": "Maximum",
        "metricMeasureColumn": "verify_drift",
        "autoMitigate": False,
    },
    # Every heartbeat reports how long the mirror has gone unverified; a row means overdue.
    "verify-overdue": {
        "metric": "acctsync.since_last_verify_s",
        "severity": 3,
        "evaluationFrequency": "PT1H",
        "windowSize": "PT1H",
        "timeAggregation": "Count",
        "metricMeasureColumn": None,
        "autoMitigate": True,
    },
}


def _alerts(**params: Any) -> BicepFile:
    main = BicepFile(MAIN_BICEP, {**DEPLOYMENT, **params})
    module = main.module("app/alerts.bicep")
    assert module.deployed, "main.bicep always deploys the alert rules"
    return BicepFile(INFRA / module.target, module.body["params"])


def _resources(alerts: BicepFile, target: str) -> list[Declared]:
    return [r for r in alerts.resources() if r.target == target]


def _rules(alerts: BicepFile) -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for rule in _resources(alerts, RULE_TYPE):
        assert rule.deployed
        key = re.sub(r"^.*\}-", "", rule.body["name"])  # after the name prefix
        rules[key] = rule.body
    return rules


def _condition(rule: dict[str, Any]) -> dict[str, Any]:
    (condition,) = rule["properties"]["criteria"]["allOf"]
    result: dict[str, Any] = condition
    return result


def test_every_alert_rule_exists_on_its_metric() -> None:
    rules = _rules(_alerts())
    assert rules.keys() == EXPECTED_RULES.keys()
    for key, expected in EXPECTED_RULES.items():
        rule, condition = rules[key], _condition(rules[key])
        properties = rule["properties"]
        assert rule["kind"] == "LogAlert"
        assert expected["metric"] in ALERT_METRIC_NAMES | METRIC_NAMES
        assert f'| where name == "{expected["metric"]}"' in condition["query"], key
        # Scoped to the Application Insights component, so the tables are its own names
        # (customMetrics), not the workspace's (AppMetrics).
        assert properties["scopes"] == ["${appInsights.id}"], key
        assert condition["query"].startswith(("customMetrics\n", "let ")), key
        assert "AppMetrics" not in condition["query"], key
        assert properties["enabled"] is True
        for name in ("severity", "evaluationFrequency", "windowSize", "autoMitigate"):
            assert properties[name] == expected[name], f"{key}: {name} = {properties[name]}"
        for name in ("timeAggregation", "metricMeasureColumn"):
            assert condition[name] == expected[name], f"{key}: {name} = {condition[name]}"
        assert (condition["operator"], condition["threshold"]) == ("GreaterThan", 0), key
        measure = expected["metricMeasureColumn"]
        if measure:
            assert re.search(
                rf"\| project timestamp, {measure} = value(Sum|Max)\n", condition["query"]
            )
        assert properties["displayName"].startswith("acctsync: ")
        assert expected["metric"] in properties["description"], f"{key}: say what it watches"


def test_credentials_rule_counts_only_dataverse_auth_errors() -> None:
    query = _condition(_rules(_alerts())["credentials-refused"])["query"]
    assert '| where tostring(customDimensions.kind) == "DataverseAuthError"' in query
    assert "auth_failures = valueSum" in query


def test_sync_down_threshold_comes_from_the_parameters() -> None:
    def limit(**params: Any) -> int:
        rule = _rules(_alerts(**params))["sync-down"]
        query = _condition(rule)["query"]
        match = re.search(r"^let limit_s = (\d+);$", query, re.MULTILINE)
        assert match, query
        assert "| where heartbeats == 0 or since_last_success_s > limit_s" in query
        assert "heartbeats = count()" in query, "a dead heartbeat (no rows) must fire too"
        assert f"more than {int(match.group(1)) // 60} minutes" in rule["properties"]["description"]
        return int(match.group(1))

    # (3 x syncIntervalMinutes + longestCycleMinutes) minutes, in seconds.
    assert limit() == (3 * 5 + 60) * 60
    assert limit(syncIntervalMinutes=10, longestCycleMinutes=30) == (3 * 10 + 30) * 60
    assert BicepFile(MAIN_BICEP, DEPLOYMENT).value("longestCycleMinutes") == 60


def test_verify_alerts_watch_the_drift_left_and_two_missed_intervals() -> None:
    from shared.telemetry import HISTOGRAMS

    rules = _rules(_alerts())
    drift = _condition(rules["verify-drift"])["query"]
    assert "verify_drift = valueMax" in drift
    assert "after repair" in rules["verify-drift"]["properties"]["description"]
    assert "still has wrong" in HISTOGRAMS["acctsync.verify_drift"][1], "the drift LEFT"

    def overdue(**params: Any) -> tuple[int, str] | None:
        rule = _rules(_alerts(**params)).get("verify-overdue")
        if rule is None:
            return None
        query = _condition(rule)["query"]
        match = re.search(r"^let limit_s = (\d+);$", query, re.MULTILINE)
        assert match, query
        assert "| where since_last_verify_s > limit_s" in query
        return int(match.group(1)), rule["properties"]["description"]

    # 2 x VERIFY_INTERVAL_HOURS, in seconds, from main.bicep's verifyIntervalHours.
    limit, description = overdue() or (0, "")
    assert limit == 2 * 24 * 3600 and "more than 48 hours" in description
    assert BicepFile(MAIN_BICEP, DEPLOYMENT).value("verifyIntervalHours") == 24
    limit, description = overdue(verifyIntervalHours=6) or (0, "")
    assert limit == 12 * 3600 and "more than 12 hours" in description
    # Scheduled verifies off: nothing is due, so nothing can be overdue.
    assert overdue(verifyIntervalHours=0) is None
    assert "verify-drift" in _rules(_alerts(verifyIntervalHours=0))


def test_host_down_fires_when_no_heartbeat_is_counted() -> None:
    query = _condition(_rules(_alerts())["host-down"])["query"]
    # No `by`: an empty window still gives one row, with 0, so silence itself fires.
    assert "| summarize heartbeats = count()\n" in query
    assert query.rstrip().endswith("| where heartbeats == 0")


def test_action_group_mails_alert_email() -> None:
    alerts = _alerts(alertEmail="ops@contoso.com")
    (group,) = _resources(alerts, ACTION_GROUP_TYPE)
    assert group.deployed
    assert group.body["location"] == "global"
    properties = group.body["properties"]
    assert properties["enabled"] is True and len(properties["groupShortName"]) <= 12
    (receiver,) = properties["emailReceivers"]
    assert receiver["emailAddress"] == "ops@contoso.com"
    assert receiver["useCommonAlertSchema"] is True
    for key, rule in _rules(alerts).items():
        assert rule["properties"]["actions"]["actionGroups"] == ["${actionGroup.id}"], key
    assert alerts.outputs()["actionGroupId"] == "${actionGroup.id}"


def test_without_alert_email_the_rules_stay_and_nobody_is_mailed() -> None:
    alerts = _alerts()
    assert BicepFile(MAIN_BICEP, DEPLOYMENT).value("alertEmail") == ""
    (group,) = _resources(alerts, ACTION_GROUP_TYPE)
    assert not group.deployed
    rules = _rules(alerts)
    assert rules.keys() == EXPECTED_RULES.keys()
    for key, rule in rules.items():
        assert rule["properties"]["actions"]["actionGroups"] == [], key
    assert alerts.outputs()["actionGroupId"] == ""


def test_rules_query_as_their_own_identity_with_reader() -> None:
    alerts = _alerts()
    (identity,) = _resources(alerts, "Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31")
    assert "alerts" in identity.body["name"], "not the Function App's identity"
    assignments = _resources(alerts, "Microsoft.Authorization/roleAssignments@2022-04-01")
    assert {a.symbol for a in assignments} == {"readerOnAppInsights", "readerOnWorkspace"}
    assert {a.body["scope"] for a in assignments} == {"${appInsights}", "${workspace}"}
    for assignment in assignments:
        properties = assignment.body["properties"]
        assert properties["roleDefinitionId"].endswith(f"'{READER_ROLE_ID}')}}")
        assert properties["principalId"] == "${identity.properties.principalId}"
        assert properties["principalType"] == "ServicePrincipal"
    for key, rule in _rules(alerts).items():
        assert rule["identity"] == {
            "type": "UserAssigned",
            "userAssignedIdentities": {"${identity.id}": {}},
        }, key
        assert set(rule["dependsOn"]) == {"${readerOnAppInsights}", "${readerOnWorkspace}"}, key


@pytest.mark.parametrize("key", sorted(EXPECTED_RULES))
def test_alert_query_is_balanced(key: str) -> None:
    query = _condition(_rules(_alerts())[key])["query"]
    text = re.sub(r'"[^"\n]*"', '""', query)
    for opening, closing in ("()", "[]", "{}"):
        assert text.count(opening) == text.count(closing), f"{key}: unbalanced {opening}{closing}"
    assert query.count('"') % 2 == 0, f"{key}: unbalanced quotes"
    assert "{0}" not in query, f"{key}: a format() placeholder was left in"
