"""Settings are read from the environment, validated, and explain what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import DEFAULT_STORAGE, DataverseConnection, Settings, SettingsError

DATAVERSE = {
    "DATAVERSE_URL": "https://contoso.crm.dynamics.com/",
    "DATAVERSE_TENANT_ID": "tenant",
    "DATAVERSE_CLIENT_ID": "client",
    "DATAVERSE_CLIENT_SECRET": "secret",
}


def test_defaults_follow_the_contract() -> None:
    settings = Settings.from_env({})
    assert settings.storage.connection_string == DEFAULT_STORAGE
    assert settings.dataverse is None
    assert settings.sync_interval_minutes == 5
    assert settings.activity_contact_limit == 5000
    assert (settings.verify_interval_hours, settings.verify_repair) == (24, True)
    off = Settings.from_env({"VERIFY_INTERVAL_HOURS": "0", "VERIFY_REPAIR": "False"})
    assert (off.verify_interval_hours, off.verify_repair) == (0, False)
    assert settings.audit_retention_days == 365
    assert Settings.from_env({"AUDIT_RETENTION_DAYS": "90"}).audit_retention_days == 90
    with pytest.raises(SettingsError, match="DATAVERSE_URL is not set"):
        settings.require_dataverse()


def test_client_credentials_and_ropc() -> None:
    dataverse = Settings.from_env(DATAVERSE).require_dataverse()
    assert dataverse.url == "https://contoso.crm.dynamics.com"
    assert dataverse.authority_host == "https://login.microsoftonline.com"
    assert dataverse.connection is DataverseConnection.CLIENT_SECRET
    ropc = Settings.from_env(
        {**DATAVERSE, "DATAVERSE_USERNAME": "sync@contoso.com", "DATAVERSE_PASSWORD": "pw"}
    ).require_dataverse()
    assert ropc.connection is DataverseConnection.ROPC
    assert dataverse.formatted_values and ropc.formatted_values  # labels are asked by default
    plain = Settings.from_env({**DATAVERSE, "ACCTSYNC_FORMATTED_VALUES": "false"})
    assert not plain.require_dataverse().formatted_values


def test_managed_identity_needs_no_secret_nor_tenant() -> None:
    identity = Settings.from_env(
        {
            "DATAVERSE_URL": "https://contoso.crm.dynamics.com",
            "DATAVERSE_CREDENTIAL": "ManagedIdentity",
            "DATAVERSE_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
        }
    ).require_dataverse()
    assert identity.connection is DataverseConnection.MANAGED_IDENTITY
    assert identity.client_secret is None and identity.client_id.startswith("1111")
    with pytest.raises(SettingsError, match="managedidentity"):
        Settings.from_env({**DATAVERSE, "DATAVERSE_CREDENTIAL": "certificate"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**DATAVERSE, "DATAVERSE_URL": "http://contoso.crm.dynamics.com"}, "https://"),
        ({**DATAVERSE, "DATAVERSE_CLIENT_SECRET": ""}, "DATAVERSE_CLIENT_SECRET"),
        ({**DATAVERSE, "DATAVERSE_USERNAME": "u"}, "DATAVERSE_PASSWORD"),
        ({**DATAVERSE, "DATAVERSE_CA_BUNDLE": "/nonexistent/ca.pem"}, "not a readable file"),
        ({"SYNC_INTERVAL_MINUTES": "soon"}, "SYNC_INTERVAL_MINUTES"),
        ({"ACTIVITY_CONTACT_LIMIT": "-1"}, "ACTIVITY_CONTACT_LIMIT"),
        ({"VERIFY_INTERVAL_HOURS": "-1"}, "VERIFY_INTERVAL_HOURS"),
        ({"VERIFY_REPAIR": "maybe"}, "VERIFY_REPAIR='maybe' is not true or false"),
        ({"AUDIT_RETENTION_DAYS": "0"}, "AUDIT_RETENTION_DAYS='0' must be at least 1"),
        ({**DATAVERSE, "ACCTSYNC_FORMATTED_VALUES": "labels"}, "ACCTSYNC_FORMATTED_VALUES="),
        (
            {**DATAVERSE, "DATAVERSE_CLIENT_SECRET": "@Microsoft.KeyVault(SecretUri=x)"},
            "Key Vault reference",
        ),
    ],
)
def test_bad_settings_say_what_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_identity_based_storage() -> None:
    settings = Settings.from_env(
        {
            "AzureWebJobsStorage__accountName": "acct",
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "abc",
        }
    )
    assert settings.storage.connection_string is None
    assert settings.storage.table_service_uri == "https://acct.table.core.windows.net"
    assert settings.storage.queue_service_uri == "https://acct.queue.core.windows.net"
    assert settings.storage.managed_identity_client_id == "abc"


def test_ca_bundle_must_exist(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    dataverse = Settings.from_env({**DATAVERSE, "DATAVERSE_CA_BUNDLE": str(ca)}).dataverse
    assert dataverse is not None
    assert dataverse.ca_bundle == str(ca)


def test_the_sync_filter_column_defaults_to_marketos_and_empty_turns_it_off() -> None:
    assert Settings.from_env({}).sync_filter_column == "new_synctomkto"
    assert Settings.from_env({"SYNC_FILTER_COLUMN": ""}).sync_filter_column == ""
    assert Settings.from_env({"SYNC_FILTER_COLUMN": " New_Sync "}).sync_filter_column == "new_sync"
    with pytest.raises(SettingsError, match="SYNC_FILTER_COLUMN"):
        Settings.from_env({"SYNC_FILTER_COLUMN": "new sync; drop"})
