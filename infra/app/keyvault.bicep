// RBAC-authorized Key Vault holding the Dataverse credentials the Function App reads
// through Key Vault references (@Microsoft.KeyVault(SecretUri=...)), and the admin
// console's Entra sign-in secret and session key. Nothing else in acctsync needs a secret:
// storage and Application Insights use the managed identity.

@description('Key Vault name: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Azure region.')
param location string

@description('Tags for the vault.')
param tags object = {}

@description('Client secret of the Entra app registration acctsync signs in to Dataverse with. Empty: no secret is stored (ROPC with a public client).')
@secure()
param dataverseClientSecret string = ''

@description('Password of the Dataverse sync user for the optional ROPC connection. Empty: not stored.')
@secure()
param dataversePassword string = ''

@description('Client secret of the admin console\'s Entra app registration. Empty: not stored.')
@secure()
param consoleClientSecret string = ''

@description('The key that signs the admin console\'s session cookies. Empty: not stored.')
@secure()
param consoleSessionSecret string = ''

@description('Name of the secret that holds the console\'s client secret.')
param consoleClientSecretName string = 'console-client-secret'

@description('Name of the secret that holds the console\'s session key.')
param consoleSessionSecretName string = 'console-session-secret'

@description('When the stored credentials expire, as an ISO 8601 date-time: set it to the expiry of the client secret in the app registration (Entra suggests 180 days).')
param secretsExpireOn string

@description('Name of the secret that holds the client secret.')
param clientSecretName string = 'dataverse-client-secret'

@description('Name of the secret that holds the ROPC password.')
param passwordSecretName string = 'dataverse-password'

@description('Log Analytics workspace that receives the vault audit log. Empty: no diagnostic setting.')
param logAnalyticsWorkspaceId string = ''

@description('Days a deleted vault or secret can be recovered (7-90). Purge protection keeps it for that long.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

var expiresAt = dateTimeToEpoch(secretsExpireOn)

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Flex Consumption without VNet integration calls the vault from no fixed addresses and App Service is not a trusted service for the vault firewall, so the default action stays Allow; every read needs an Entra ID token and the Key Vault Secrets User role.
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: Key Vault references from a Function App without VNet integration need the public endpoint.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource clientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(dataverseClientSecret)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov does not look inside conditional (if) resources; attributes.exp is set below.
  // checkov:skip=CKV_AZURE_114: False positive: checkov does not look inside conditional (if) resources; contentType is set below.
  parent: vault
  name: clientSecretName
  properties: {
    value: dataverseClientSecret
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: expiresAt
    }
  }
}

resource password 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(dataversePassword)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov does not look inside conditional (if) resources; attributes.exp is set below.
  // checkov:skip=CKV_AZURE_114: False positive: checkov does not look inside conditional (if) resources; contentType is set below.
  parent: vault
  name: passwordSecretName
  properties: {
    value: dataversePassword
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: expiresAt
    }
  }
}

resource consoleSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(consoleClientSecret)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov does not look inside conditional (if) resources; attributes.exp is set below.
  // checkov:skip=CKV_AZURE_114: False positive: checkov does not look inside conditional (if) resources; contentType is set below.
  parent: vault
  name: consoleClientSecretName
  properties: {
    value: consoleClientSecret
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: expiresAt
    }
  }
}

resource consoleSession 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(consoleSessionSecret)) {
  // checkov:skip=CKV_AZURE_41: False positive: checkov does not look inside conditional (if) resources; attributes.exp is set below.
  // checkov:skip=CKV_AZURE_114: False positive: checkov does not look inside conditional (if) resources; contentType is set below.
  parent: vault
  name: consoleSessionSecretName
  properties: {
    value: consoleSessionSecret
    contentType: 'text/plain'
    attributes: {
      enabled: true
      exp: expiresAt
    }
  }
}

resource auditLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
// https://<name>.vault.azure.net/ ; the app reads <uri>secrets/<name> without a version,
// so it always gets the latest one (App Service refreshes references within 24 hours,
// and at once on any configuration change or restart).
output uri string = vault.properties.vaultUri
