"""Structural checks of infra/, azure.yaml and docs/deploy.md that need no Azure CLI:
Bicep syntax (tree-sitter grammar), module wiring, the app settings of each Dataverse
connection (evaluated from main.bicep down) against CONTRACT.md, role IDs, the azd
parameters file and the workbook's KQL tiles."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

from ._support import (
    ALERT_METRIC_NAMES,
    APP_DIR,
    INFRA,
    MAIN_BICEP,
    METRIC_NAMES,
    REPO_ROOT,
    BicepFile,
    app_settings,
    bicep_files,
    bicep_module_paths,
    bicep_params,
    read_bicep,
    strip_bicep_comments,
)

FUNCTION_BICEP = APP_DIR / "function.bicep"
WORKBOOK_JSON = APP_DIR / "workbook.json"
CONTRACT = REPO_ROOT.parent / "shared" / "CONTRACT.md"

EXPECTED_MODULES = {
    "app/identity.bicep",
    "app/storage.bicep",
    "app/monitoring.bicep",
    "app/keyvault.bicep",
    "app/function.bicep",
    "app/rbac.bicep",
    "app/workbook.bicep",
    "app/alerts.bicep",
}

# Parameters a deployment passes (azd: the environment), for evaluating main.bicep.
DATAVERSE_URL = "https://contoso.crm.dynamics.com"
APP_CLIENT_ID = "11111111-2222-3333-4444-555555555555"  # an app registration's client ID
SYNC_USER = "sync@contoso.com"
DEPLOYMENT = {
    "environmentName": "acctsync-test",
    "dataverseUrl": DATAVERSE_URL,
    "dataverseClientId": APP_CLIENT_ID,
    "dataverseUsername": SYNC_USER,
}
CONNECTIONS = ("managedIdentity", "clientSecret", "ropc")
DEFAULT_CONNECTION = "managedIdentity"

# Values only Azure knows, as the evaluator shows them: where they come from.
IDENTITY_CLIENT_ID = "${identity.outputs.clientId}"
SUBSCRIPTION_TENANT = "${tenant().tenantId}"


def _key_vault_reference(secret_name: str) -> str:
    return f"@Microsoft.KeyVault(SecretUri=${{keyVault.outputs.uri}}secrets/{secret_name})"


# Settings the Function App carries with every connection, with their value where fixed.
REQUIRED_SETTINGS: dict[str, str | None] = {
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": IDENTITY_CLIENT_ID,
    "AzureWebJobsStorage__blobServiceUri": "${storage.outputs.blobServiceUri}",
    "AzureWebJobsStorage__queueServiceUri": "${storage.outputs.queueServiceUri}",
    "AzureWebJobsStorage__tableServiceUri": "${storage.outputs.tableServiceUri}",
    "DATAVERSE_URL": DATAVERSE_URL,
    "DATAVERSE_TENANT_ID": SUBSCRIPTION_TENANT,
    "DATAVERSE_CLIENT_ID": None,
    "SYNC_INTERVAL_MINUTES": "5",
    "ACTIVITY_CONTACT_LIMIT": "5000",
    "SYNC_FILTER_COLUMN": "new_synctomkto",
    "ACCTSYNC_PLAN_BUDGET_SECONDS": "180",
    "VERIFY_INTERVAL_HOURS": "24",
    "VERIFY_REPAIR": "true",
    "AUDIT_RETENTION_DAYS": "365",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "${monitoring.outputs.connectionString}",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={IDENTITY_CLIENT_ID};Authorization=AAD",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
    "MALLOC_ARENA_MAX": "2",
}

# The Dataverse sign-in settings of each connection (parameter dataverseConnection). The
# managed identity is the default: the app asks azure-identity's ManagedIdentityCredential
# for a token as the identity with this client ID; there is no secret anywhere.
CONNECTION_SETTINGS: dict[str, dict[str, str]] = {
    "managedIdentity": {
        "DATAVERSE_CREDENTIAL": "managedidentity",
        "DATAVERSE_CLIENT_ID": IDENTITY_CLIENT_ID,
    },
    "clientSecret": {
        "DATAVERSE_CLIENT_ID": APP_CLIENT_ID,
        "DATAVERSE_CLIENT_SECRET": _key_vault_reference("dataverse-client-secret"),
    },
    "ropc": {
        "DATAVERSE_CLIENT_ID": APP_CLIENT_ID,
        "DATAVERSE_USERNAME": SYNC_USER,
        "DATAVERSE_PASSWORD": _key_vault_reference("dataverse-password"),
    },
}
# Each connection gets exactly its own of these, none of the others'.
SIGN_IN_SETTINGS = {
    "DATAVERSE_CREDENTIAL",
    "DATAVERSE_CLIENT_SECRET",
    "DATAVERSE_USERNAME",
    "DATAVERSE_PASSWORD",
}

# CONTRACT.md settings that the default deployment (managed identity, no optional
# parameters) does not set, and when they are set.
NOT_BY_DEFAULT = {
    "DATAVERSE_CLIENT_SECRET": "the managed identity has no secret; dataverseConnection="
    "clientSecret (or ropc with a secret) sets it, as a Key Vault reference",
    "DATAVERSE_USERNAME": "dataverseConnection=ropc only",
    "DATAVERSE_PASSWORD": "dataverseConnection=ropc only, as a Key Vault reference",
    "DATAVERSE_AUTHORITY_HOST": "only when dataverseAuthorityHost is set (sovereign clouds)",
}

# CONTRACT.md settings that are deliberately not set in Azure, and why.
NOT_IN_AZURE = {
    "AzureWebJobsStorage": "Azure uses the identity-based AzureWebJobsStorage__* settings",
    "DATAVERSE_CA_BUNDLE": "only for the local simulator or a TLS-inspecting proxy",
    "ACCTSYNC_API_KEY": "Azure protects the HTTP API with function keys",
}

# Built-in role definition IDs (identical in every tenant).
ROLE_IDS = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "storageBlobDataContributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "storageQueueDataContributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "storageTableDataContributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "keyVaultSecretsUser": "4633458b-17de-408a-b874-0445c86b69e6",
}

QUEUES = {"acctsync-batches", "acctsync-batches-poison"}
HOST_CONTAINERS = {"azure-webjobs-hosts", "azure-webjobs-secrets"}
TABLES = {
    "acctsyncstate",
    "acctsyncaccounts",
    "acctsynccontacts",
    "acctsyncmembers",
    "acctsyncactivities",
    "acctsyncerrors",
    "acctsyncfeed",
    "acctsyncsearch",
}


def _main(connection: str = DEFAULT_CONNECTION, **params: Any) -> BicepFile:
    return BicepFile(MAIN_BICEP, {**DEPLOYMENT, "dataverseConnection": connection, **params})


def _module(main: BicepFile, path: str) -> BicepFile:
    """The module main.bicep calls at `path`, evaluated with the params main passes it."""
    module = main.module(path)
    assert module.deployed, f"main.bicep does not deploy {path}"
    return BicepFile(INFRA / path, module.body["params"])


def _settings(connection: str = DEFAULT_CONNECTION, **params: Any) -> dict[str, str]:
    """The app settings the Function App gets from a deployment with these parameters."""
    function = _module(_main(connection, **params), "app/function.bicep")
    (app,) = [r for r in function.resources() if r.target.startswith("Microsoft.Web/sites@")]
    entries = app.body["properties"]["siteConfig"]["appSettings"]
    names = [entry["name"] for entry in entries]
    assert len(names) == len(set(names)), f"app settings set twice: {sorted(names)}"
    return {entry["name"]: entry["value"] for entry in entries}


def _syntax_errors(node: Node) -> list[str]:
    if node.type == "ERROR" or node.is_missing:
        row, column = node.start_point
        text = (node.text or b"").decode("utf-8", "replace")[:60]
        return [f"line {row + 1}, column {column + 1}: {node.type} {text!r}"]
    errors: list[str] = []
    for child in node.children:
        errors += _syntax_errors(child)
    return errors


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_parses(path: Path) -> None:
    parser = Parser(Language(tree_sitter_bicep.language()))
    tree = parser.parse(path.read_bytes())
    errors = _syntax_errors(tree.root_node)
    assert not errors, f"{path.relative_to(REPO_ROOT)} is not valid Bicep:\n" + "\n".join(errors)


def test_main_wires_every_module() -> None:
    modules = set(bicep_module_paths(MAIN_BICEP))
    assert modules == EXPECTED_MODULES, f"main.bicep modules: {sorted(modules)}"
    for module in modules:
        assert (INFRA / module).is_file(), f"main.bicep references missing {module}"
    orphans = {f"app/{p.name}" for p in APP_DIR.glob("*.bicep")} - modules
    assert not orphans, f"modules nobody deploys: {sorted(orphans)}"
    for path in bicep_files():
        for loaded in re.findall(r"load(?:Json|Text)Content\('([^']+)'\)", read_bicep(path)):
            assert (path.parent / loaded).is_file(), f"{path.name} loads missing {loaded}"


def test_main_is_resource_group_scoped_with_outputs() -> None:
    text = read_bicep(MAIN_BICEP)
    assert re.search(r"^targetScope\s*=\s*'resourceGroup'", text, re.MULTILINE)
    outputs = set(re.findall(r"^output\s+(\w+)\s", text, re.MULTILINE))
    for name in (
        "AZURE_FUNCTION_APP_NAME",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "APPLICATIONINSIGHTS_NAME",
        "AZURE_KEY_VAULT_NAME",
        "AZURE_FUNCTION_IDENTITY_CLIENT_ID",
        "AZURE_FUNCTION_IDENTITY_NAME",
    ):
        assert name in outputs, f"main.bicep lacks output {name}"
    # What the Dataverse application user is registered by: the app's own identity.
    assert _main().outputs()["AZURE_FUNCTION_IDENTITY_CLIENT_ID"] == IDENTITY_CLIENT_ID
    # azd writes outputs into the environment that main.parameters.json reads: no output
    # may overwrite a parameter's variable.
    parameters = (INFRA / "main.parameters.json").read_text(encoding="utf-8")
    variables = set(re.findall(r"\$\{([A-Z_]+)", parameters))
    assert not variables & outputs, f"outputs overwrite azd parameters {variables & outputs}"


def test_module_params_match_declarations() -> None:
    """Every module call passes only declared params and every param without a default."""
    text = read_bicep(MAIN_BICEP)
    calls = re.finditer(
        r"^module\s+\w+\s+'([^']+)'\s*=\s*(?:if\s*\([^\n]*\)\s*)?\{(.*?)^\}",
        text,
        re.MULTILINE | re.DOTALL,
    )
    for call in calls:
        declared = bicep_params(INFRA / call.group(1))
        block = re.search(r"^  params:\s*\{(.*?)^  \}", call.group(2), re.MULTILINE | re.DOTALL)
        assert block, f"module {call.group(1)} passes no params"
        passed = set(re.findall(r"^    (\w+):", block.group(1), re.MULTILINE))
        unknown = passed - declared.keys()
        assert not unknown, f"{call.group(1)} has no param(s) {sorted(unknown)}"
        required = {name for name, has_default in declared.items() if not has_default}
        assert required <= passed, f"{call.group(1)} needs {sorted(required - passed)}"


def test_function_app_settings() -> None:
    settings = app_settings(FUNCTION_BICEP)  # every entry function.bicep can set
    assert "AzureWebJobsStorage" not in settings, "no connection string: identity only"
    for obsolete in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"):
        assert obsolete not in settings, f"Flex Consumption rejects {obsolete}"


@pytest.mark.parametrize("connection", CONNECTIONS)
def test_app_settings_of_each_connection(connection: str) -> None:
    settings = _settings(connection)
    for name, value in REQUIRED_SETTINGS.items():
        assert name in settings, f"{connection}: the app gets no {name}"
        if value is not None:
            assert settings[name] == value, f"{connection}: {name} = {settings[name]!r}"
    own = CONNECTION_SETTINGS[connection]
    for name, value in own.items():
        assert settings.get(name) == value, f"{connection}: {name} = {settings.get(name)!r}"
    foreign = sorted((SIGN_IN_SETTINGS - own.keys()) & settings.keys())
    assert not foreign, f"{connection} must not set {foreign}"


def test_default_connection_is_the_managed_identity() -> None:
    main = BicepFile(MAIN_BICEP, {"environmentName": "e", "dataverseUrl": DATAVERSE_URL})
    assert main.value("dataverseConnection") == DEFAULT_CONNECTION == "managedIdentity"
    assert bicep_params(MAIN_BICEP)["dataverseClientId"], "dataverseClientId needs a default"
    settings = _settings(dataverseClientId="")
    assert settings["DATAVERSE_CREDENTIAL"] == "managedidentity"
    assert settings["DATAVERSE_CLIENT_ID"] == IDENTITY_CLIENT_ID


def test_managed_identity_ignores_secrets_and_deploys_no_vault() -> None:
    """Values left in an azd environment from an earlier connection change nothing."""
    leftovers = {
        "dataverseClientSecret": "s3cret-value",
        "dataversePassword": "pa55word-value",
        "dataverseTenantId": "99999999-8888-7777-6666-555555555555",
    }
    main = _main("managedIdentity", **leftovers)
    settings = _settings("managedIdentity", **leftovers)
    assert settings["DATAVERSE_CLIENT_ID"] == IDENTITY_CLIENT_ID
    # A managed identity gets tokens from its own tenant only.
    assert settings["DATAVERSE_TENANT_ID"] == SUBSCRIPTION_TENANT
    assert not (SIGN_IN_SETTINGS - {"DATAVERSE_CREDENTIAL"}) & settings.keys()
    assert not any("@Microsoft.KeyVault" in value for value in settings.values())
    assert not main.module("app/keyvault.bicep").deployed, "no secret, so no Key Vault"
    rbac = _module(main, "app/rbac.bicep")
    deployed = {r.symbol for r in rbac.resources() if r.deployed}
    assert "secretsUser" not in deployed and "vault" not in deployed
    assert main.outputs()["AZURE_KEY_VAULT_NAME"] == ""


@pytest.mark.parametrize("connection", ["clientSecret", "ropc"])
def test_secret_connections_keep_the_vault(connection: str) -> None:
    main = _main(connection, dataverseClientSecret="s3cret-value", dataversePassword="pa55")
    assert main.module("app/keyvault.bicep").deployed
    rbac = _module(main, "app/rbac.bicep")
    (secrets_user,) = [r for r in rbac.resources() if r.symbol == "secretsUser"]
    assert secrets_user.deployed, "the identity must read the vault's secrets"
    assert main.outputs()["AZURE_KEY_VAULT_NAME"] == "${keyVault.outputs.name}"
    settings = _settings(connection, dataverseClientSecret="s3cret-value", dataversePassword="pa55")
    # The values go to Key Vault; the app settings only point there.
    assert not any("s3cret" in value or "pa55" in value for value in settings.values())
    assert settings["DATAVERSE_CLIENT_SECRET"] == _key_vault_reference("dataverse-client-secret")
    function = _module(main, "app/function.bicep")
    assert function.value("dataverseTenantId") == SUBSCRIPTION_TENANT
    other_tenant = _module(_main(connection, dataverseTenantId="t-1"), "app/function.bicep")
    assert other_tenant.value("dataverseTenantId") == "t-1"


def test_ropc_without_a_secret_sends_none_and_client_secret_always_points_at_the_vault() -> None:
    assert "DATAVERSE_CLIENT_SECRET" not in _settings("ropc")
    # An empty parameter keeps the secret already in the vault in use.
    assert _settings("clientSecret")["DATAVERSE_CLIENT_SECRET"] == _key_vault_reference(
        "dataverse-client-secret"
    )
    # A user name left in the environment does not turn clientSecret into ROPC.
    assert "DATAVERSE_USERNAME" not in _settings("clientSecret")


def test_function_app_shape() -> None:
    text = read_bicep(FUNCTION_BICEP)
    for fragment in (
        "name: 'FC1'",
        "tier: 'FlexConsumption'",
        "kind: 'functionapp,linux'",
        "type: 'UserAssigned'",
        "keyVaultReferenceIdentity: identityId",
        "httpsOnly: true",
        "minTlsVersion: '1.2'",
        "ftpsState: 'Disabled'",
        "type: 'blobContainer'",
        "type: 'UserAssignedIdentity'",
        "name: 'python'",
        "version: '3.11'",
    ):
        assert fragment in text, f"function.bicep lacks {fragment!r}"


def _contract_settings() -> set[str]:
    if not CONTRACT.is_file():
        pytest.skip(f"{CONTRACT} is not here")
    text = CONTRACT.read_text(encoding="utf-8")
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for row in section.splitlines():
        if row.startswith("|") and not row.startswith("|--"):
            names.update(re.findall(r"`([A-Za-z][A-Za-z0-9_]*)`", row.split("|")[1]))
    return names - {"name"}


def test_every_contract_setting_is_handled() -> None:
    contract = _contract_settings()
    assert contract, "no settings found in CONTRACT.md"
    some_deployment: set[str] = set(_settings(dataverseAuthorityHost="https://login.x"))
    for connection in CONNECTIONS:
        some_deployment |= set(_settings(connection))
    unhandled = sorted(contract - some_deployment - NOT_IN_AZURE.keys())
    assert not unhandled, (
        f"CONTRACT.md settings {unhandled} are set by no deployment of infra/main.bicep "
        "and not listed in NOT_IN_AZURE with a reason"
    )
    default = set(_settings())
    assert contract - default - NOT_IN_AZURE.keys() == NOT_BY_DEFAULT.keys(), (
        "the default deployment leaves out exactly the NOT_BY_DEFAULT settings; "
        f"it now leaves out {sorted(contract - default - NOT_IN_AZURE.keys())}"
    )
    assert not NOT_IN_AZURE.keys() & some_deployment, "NOT_IN_AZURE settings are set"


def test_roles_are_the_built_in_ones() -> None:
    text = read_bicep(APP_DIR / "rbac.bicep")
    for name, role_id in ROLE_IDS.items():
        assert re.search(rf"{name}:\s*'{role_id}'", text), f"{name} must be {role_id}"
    assert len(re.findall(r"Microsoft\.Authorization/roleAssignments@", text)) == len(ROLE_IDS)
    assert "principalType: 'ServicePrincipal'" in text


def _created(storage: BicepFile, kind: str) -> set[str]:
    """The names of the storage resources of one kind (containers, queues, tables) a module
    declares."""
    return {r.body["name"] for r in storage.resources() if r.target.split("@")[0].endswith(kind)}


def test_storage_is_keyless_and_has_the_queues_and_tables() -> None:
    text = read_bicep(APP_DIR / "storage.bicep")
    for fragment in (
        "allowSharedKeyAccess: false",
        "allowBlobPublicAccess: false",
        "minimumTlsVersion: 'TLS1_2'",
        "supportsHttpsTrafficOnly: true",
        "publicAccess: 'None'",
    ):
        assert fragment in text, f"storage.bicep lacks {fragment!r}"
    storage = _module(_main(), "app/storage.bicep")
    assert _created(storage, "/queues") == QUEUES
    assert _created(storage, "/tables") == TABLES
    # The host's containers exist before it starts: it needs no right to create containers.
    assert HOST_CONTAINERS | {"acctsync-batches"} <= _created(storage, "/containers")


def test_storage_names_match_the_code() -> None:
    from shared import storage

    assert set(storage.QUEUES) == QUEUES and set(storage.TABLES) == TABLES, (
        f"shared/storage.py uses queues {storage.QUEUES} and tables {storage.TABLES}; "
        "infra/main.bicep (storageLayout) and this test must name the same"
    )
    assert storage.BATCH_CONTAINER in _created(_module(_main(), "app/storage.bicep"), "/containers")


def test_every_storage_role_is_scoped_to_what_uses_it() -> None:
    """No role on the storage account: Blob Data Owner on the host's containers only (its
    leases), Blob Data Contributor on the deployment and claim-check containers, Queue and
    Table Data Contributor on each queue and table the app uses, and on nothing else."""
    main = _main()
    rbac = _module(main, "app/rbac.bicep")
    resources = {r.symbol: r for r in rbac.resources() if r.deployed}
    role_of = {role_id: name for name, role_id in ROLE_IDS.items()}
    scoped: dict[str, set[str]] = {}
    for resource in resources.values():
        if not resource.target.startswith("Microsoft.Authorization/roleAssignments@"):
            continue
        role = role_of[resource.body["properties"]["roleDefinitionId"].split("'")[-2]]
        scope = str(resource.body["scope"])[2:-1]  # ${symbol[i]} -> symbol[i]
        target = resources[scope]
        assert not target.target.startswith("Microsoft.Storage/storageAccounts@"), (
            f"{resource.symbol} grants {role} on the whole storage account: scope it"
        )
        scoped.setdefault(role, set()).add(f"{target.target.split('@')[0]}/{target.body['name']}")
    blob, queues, tables = (
        "Microsoft.Storage/storageAccounts/blobServices/containers/",
        "Microsoft.Storage/storageAccounts/queueServices/queues/",
        "Microsoft.Storage/storageAccounts/tableServices/tables/",
    )
    deployment = _module(main, "app/storage.bicep").value("deploymentContainerName")
    assert scoped["storageBlobDataOwner"] == {blob + name for name in HOST_CONTAINERS}
    assert scoped["storageBlobDataContributor"] == {
        blob + deployment,
        blob + "acctsync-batches",
    }
    assert scoped["storageQueueDataContributor"] == {queues + name for name in QUEUES}
    assert scoped["storageTableDataContributor"] == {tables + name for name in TABLES}
    storage = _module(main, "app/storage.bicep")
    created = {f"{blob}{n}" for n in _created(storage, "/containers")}
    created |= {f"{queues}{n}" for n in _created(storage, "/queues")}
    created |= {f"{tables}{n}" for n in _created(storage, "/tables")}
    granted = set().union(*(scoped[r] for r in scoped if r.startswith("storage")))
    assert granted <= created, f"roles on what storage.bicep does not create: {granted - created}"


def test_key_vault_and_app_insights_hardening() -> None:
    vault = read_bicep(APP_DIR / "keyvault.bicep")
    for fragment in (
        "enableRbacAuthorization: true",
        "enableSoftDelete: true",
        "enablePurgeProtection: true",
        "contentType: 'text/plain'",
    ):
        assert fragment in vault, f"keyvault.bicep lacks {fragment!r}"
    assert re.search(r"^@secure\(\)\nparam dataverseClientSecret string", vault, re.MULTILINE)
    assert "'dataverse-client-secret'" in read_bicep(MAIN_BICEP)
    monitoring = read_bicep(APP_DIR / "monitoring.bicep")
    assert "DisableLocalAuth: true" in monitoring
    assert "WorkspaceResourceId: workspace.id" in monitoring


def test_parameters_file_matches_main() -> None:
    params = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    declared = bicep_params(MAIN_BICEP)
    given = set(params["parameters"])
    assert given <= declared.keys(), f"unknown parameters: {sorted(given - declared.keys())}"
    required = {name for name, has_default in declared.items() if not has_default}
    assert required <= given, f"azd would prompt for {sorted(required - given)}"
    assert params["parameters"]["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    # azd falls back to the same connection as main.bicep.
    assert params["parameters"]["dataverseConnection"]["value"] == (
        "${DATAVERSE_CONNECTION=" + DEFAULT_CONNECTION + "}"
    )
    for name, entry in params["parameters"].items():
        assert re.fullmatch(r"\$\{[A-Z_]+(=[^}]*)?\}", entry["value"]), (
            f"{name} should come from the azd environment, not a literal"
        )


def test_azure_yaml() -> None:
    text = (REPO_ROOT / "azure.yaml").read_text(encoding="utf-8")
    assert re.search(r"^services:\n  api:\n", text, re.MULTILINE), "azure.yaml: services.api"
    service = text.split("\n  api:\n", 1)[1]
    for line in ("project: .", "language: python", "host: function"):
        assert re.search(rf"^    {re.escape(line)}$", service, re.MULTILINE), line
    assert "azd-service-name" in read_bicep(FUNCTION_BICEP)
    assert "azdServiceName string = 'api'" in read_bicep(FUNCTION_BICEP)


def _workbook() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(WORKBOOK_JSON.read_text(encoding="utf-8"))
    return data


def _queries() -> list[str]:
    return [
        item["content"]["query"]
        for item in _workbook()["items"]
        if item.get("type") == 3 and "query" in item.get("content", {})
    ]


def test_workbook_covers_the_dashboard() -> None:
    workbook = _workbook()
    assert workbook["version"] == "Notebook/1.0"
    joined = "\n".join(_queries())
    missing = sorted(name for name in METRIC_NAMES if f'"{name}"' not in joined)
    assert not missing, f"workbook has no tile for {missing}"
    assert 'startswith "cycle finished"' in joined
    assert "customDimensions.cycle_id" in joined and "customDimensions.batch_id" in joined
    for item in workbook["items"]:
        if item.get("type") == 3:
            content = item["content"]
            assert content["queryType"] == 0
            assert content["resourceType"] == "microsoft.insights/components"
            assert content.get("title"), f"tile {item.get('name')} has no title"


@pytest.mark.parametrize("query", _queries(), ids=lambda q: q.split("\n", 1)[0][:30])
def test_kql_is_balanced(query: str) -> None:
    text = re.sub(r'"[^"\n]*"', '""', query)  # drop string literals
    for opening, closing in ("()", "[]", "{}"):
        assert text.count(opening) == text.count(closing), f"unbalanced {opening}{closing}"
    assert query.count('"') % 2 == 0, "unbalanced quotes"


def test_metric_names_in_docs_and_workbook_are_known() -> None:
    for path in (WORKBOOK_JSON, REPO_ROOT / "docs" / "deploy.md"):
        found = set(re.findall(r"acctsync\.[a-z_]+", path.read_text(encoding="utf-8")))
        unknown = sorted(found - METRIC_NAMES - ALERT_METRIC_NAMES)
        assert not unknown, f"{path.relative_to(REPO_ROOT)} names unknown metrics {unknown}"


def test_comment_stripper_keeps_strings() -> None:
    source = "var a = 'http://x' // note\nvar b = '${c('//')}' /* x */\n"
    assert strip_bicep_comments(source) == "var a = 'http://x' \nvar b = '${c('//')}' \n"


def test_evaluator_follows_conditions_and_keeps_runtime_values(tmp_path: Path) -> None:
    source = tmp_path / "t.bicep"
    source.write_text(
        "param mode string = 'a'\n"
        "param n int = 2\n"
        "var on = mode == 'a' && !empty(id.outputs.x)\n"
        "var list = concat(on ? [{ name: 'X', value: '${id.outputs.x}/${n * 3 + 1}' }] : [], [])\n"
        "module m 'app/m.bicep' = if (mode != 'a') {\n  name: 'm'\n}\n"
        "output q string = format('''\nlimit {0}\n''', n)\n"
        "var keys = [for (k, i) in ['a', 'b']: '${k}${i}']\n"
        "var pick = mode == 'a' ? null : { b: 1 }.b\n",
        encoding="utf-8",
    )
    default = BicepFile(source)
    assert default.value("list") == [{"name": "X", "value": "${id.outputs.x}/7"}]
    assert not default.module("app/m.bicep").deployed
    assert default.outputs()["q"] == "limit 2\n"
    assert default.value("keys") == ["a0", "b1"]
    # `c ? x : y.b` reads `.b` on y only (the tree-sitter grammar binds it to the ternary).
    assert default.value("pick") is None and BicepFile(source, {"mode": "b"}).value("pick") == 1
    other = BicepFile(source, {"mode": "b"})
    assert other.value("list") == [] and other.module("app/m.bicep").deployed


def test_console_sign_in_settings_come_with_its_app_registration_only() -> None:
    """The admin console signs users in with Entra ID (msal): its settings, with the secrets
    in Key Vault, exist only when the app registration is given; none otherwise."""
    assert not {s for s in _settings() if s.startswith("CONSOLE_")}
    assert _settings()["AzureWebJobsDisableHomepage"] == "true"  # the console is the root page
    given = {
        "consoleEntraClientId": "11111111-2222-3333-4444-555555555555",
        "consoleEntraGroupId": "66666666-7777-8888-9999-000000000000",
        "consoleEntraClientSecret": "c0nsole-secret",
        "consoleSessionSecret": "5ession-key",
    }
    settings = _settings(**given)
    assert settings["CONSOLE_ENTRA_CLIENT_ID"] == given["consoleEntraClientId"]
    assert settings["CONSOLE_ENTRA_GROUP_ID"] == given["consoleEntraGroupId"]
    assert settings["CONSOLE_ENTRA_TENANT_ID"] == SUBSCRIPTION_TENANT
    assert settings["CONSOLE_ENTRA_CLIENT_SECRET"] == _key_vault_reference("console-client-secret")
    assert settings["CONSOLE_SESSION_SECRET"] == _key_vault_reference("console-session-secret")
    assert not any("c0nsole" in v or "5ession" in v for v in settings.values())
    # With the managed identity connection the vault now exists for the console's secrets.
    main = _main(**given)
    assert main.module("app/keyvault.bicep").deployed
    without_group = _settings(**{**given, "consoleEntraGroupId": ""})
    assert "CONSOLE_ENTRA_GROUP_ID" not in without_group
    # Deny by default: no role group and no contact unless given; each given one is set.
    assert not {s for s in settings if s.endswith("_GROUP_ID") and "ENTRA" not in s}
    roles = {
        "consoleViewerGroupId": "CONSOLE_VIEWER_GROUP_ID",
        "consoleOperatorGroupId": "CONSOLE_OPERATOR_GROUP_ID",
        "consoleAdminGroupId": "CONSOLE_ADMIN_GROUP_ID",
        "consoleAdminContact": "CONSOLE_ADMIN_CONTACT",
    }
    mapped = _settings(**given, **{p: f"value of {p}" for p in roles})
    assert {s: mapped[s] for s in roles.values()} == {s: f"value of {p}" for p, s in roles.items()}
    # Without the console's app registration, role groups set nothing.
    assert not {s for s in _settings(consoleAdminGroupId="x") if s.startswith("CONSOLE_")}
