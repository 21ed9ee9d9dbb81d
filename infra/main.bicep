// acctsync on Azure: a Python 3.11 Function App on the Flex Consumption plan that
// mirrors Dynamics 365 accounts and contacts into Table Storage.
//
// Resource-group scope, so both of these work with this one file:
//   azd up                                   (parameters from main.parameters.json)
//   az deployment group create -g <rg> -f infra/main.bicep -p environmentName=... ...
// See docs/deploy.md.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd env name): tags every resource and seeds the unique name suffix.')
param environmentName string

@description('Region for every resource; it must offer the Flex Consumption plan. Default: the resource group region.')
param location string = resourceGroup().location

@description('Dataverse environment URL, e.g. https://contoso.crm.dynamics.com.')
@minLength(1)
param dataverseUrl string

@description('How acctsync signs in to Dataverse. managedIdentity (default): as the Function App\'s user-assigned identity, registered in Dataverse as an application user; no secret exists and no Key Vault is deployed. clientSecret: an app registration (dataverseClientId) and its client secret, kept in Key Vault. ropc: a sync user (dataverseUsername) and its password, kept in Key Vault; discouraged.')
@allowed([
  'managedIdentity'
  'clientSecret'
  'ropc'
])
param dataverseConnection string = 'managedIdentity'

@description('clientSecret and ropc only: Entra tenant (ID) of the app registration. Empty: the tenant of this subscription. With managedIdentity the identity\'s own tenant (this subscription\'s) is always used.')
param dataverseTenantId string = ''

@description('Required with clientSecret and ropc: Application (client) ID of the app registration acctsync signs in with. Ignored with managedIdentity (the identity\'s client ID is used); leave it empty.')
param dataverseClientId string = ''

@description('clientSecret (and optionally ropc): the app registration\'s client secret; stored in Key Vault as dataverse-client-secret and read through a Key Vault reference. Empty: the secret already in the vault stays in use.')
@secure()
param dataverseClientSecret string = ''

@description('clientSecret and ropc: when the client secret (and the ROPC password) expire, ISO 8601. Set it to the expiry shown in the app registration; the default is 180 days from this deployment.')
param dataverseSecretExpiresOn string = dateTimeAdd(utcNow(), 'P180D')

@description('Required with ropc: the sync user (user@contoso.com). Ignored with the other connections.')
param dataverseUsername string = ''

@description('ropc: password of the sync user; stored in Key Vault as dataverse-password.')
@secure()
param dataversePassword string = ''

@description('Entra authority host for sovereign clouds. Empty: https://login.microsoftonline.com.')
param dataverseAuthorityHost string = ''

@description('Admin console sign-in: Application (client) ID of the Entra app registration the console signs the tenant\'s users in with (OpenID Connect; redirect URI https://<app>.azurewebsites.net/signin/callback). Empty: no one can sign in to the console in Azure.')
param consoleEntraClientId string = ''

@description('Admin console: object ID of the one Entra group whose members may sign in (the app registration must emit the groups claim). Empty: every user of the tenant.')
param consoleEntraGroupId string = ''

@description('Admin console: object ID of the Entra group whose members get the viewer role (see every page), besides users assigned the Viewer app role. Empty: none.')
param consoleViewerGroupId string = ''

@description('Admin console: object ID of the Entra group whose members get the operator role (also pause, resume, verify, retry). Empty: none.')
param consoleOperatorGroupId string = ''

@description('Admin console: object ID of the Entra group whose members get the admin role (also the field selection and re-syncs). Empty: none.')
param consoleAdminGroupId string = ''

@description('Admin console: whom a user signed in without a role is told to ask (CONSOLE_ADMIN_CONTACT). Empty: the app registration\'s owners.')
param consoleAdminContact string = ''

@description('Admin console: client secret of that app registration; stored in Key Vault as console-client-secret. Empty: the secret already in the vault stays in use.')
@secure()
param consoleEntraClientSecret string = ''

@description('Admin console: a long random value that signs its session cookies (e.g. openssl rand -hex 32); stored in Key Vault as console-session-secret. Empty: the one already in the vault stays in use.')
@secure()
param consoleSessionSecret string = ''

@description('Minutes between the end of one sync cycle and the start of the next (SYNC_INTERVAL_MINUTES).')
@minValue(0)
param syncIntervalMinutes int = 5

@description('Accounts with more contacts than this get no Change Data Value activities (ACTIVITY_CONTACT_LIMIT).')
@minValue(0)
param activityContactLimit int = 5000

@description('The account Two Options column whose explicit No keeps an account out of the mirror (SYNC_FILTER_COLUMN). Empty: no sync filter.')
param syncFilterColumn string = 'new_synctomkto'

@description('Seconds one heartbeat plans before it checkpoints and leaves the rest to the next (ACCTSYNC_PLAN_BUDGET_SECONDS); keep it well under functionTimeout.')
@minValue(10)
@maxValue(1200)
param planBudgetSeconds int = 180

@description('Hours between two verifies of the mirror against Dynamics the app runs by itself (VERIFY_INTERVAL_HOURS); 0: never.')
@minValue(0)
param verifyIntervalHours int = 24

@description('Whether a scheduled verify repairs the drift it found (VERIFY_REPAIR).')
param verifyRepair bool = true

@description('Days the audit trail of admin actions and console sign-ins is kept (AUDIT_RETENTION_DAYS).')
@minValue(1)
param auditRetentionDays int = 365

@description('Most instances the Function App scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each Function App instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Storage replication.')
@allowed([
  'Standard_LRS'
  'Standard_GRS'
  'Standard_ZRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
param storageSkuName string = 'Standard_GRS'

@description('Days Log Analytics keeps telemetry.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

@description('Spread the Flex Consumption plan over availability zones (regions that support it only).')
param zoneRedundant bool = false

@description('Email address that gets the alerts (one address; a distribution list for several). Empty: the alert rules are still deployed and show in Azure Monitor, but nobody is mailed.')
param alertEmail string = ''

@description('The longest a healthy sync cycle takes, in minutes (a first load of a large org is the longest). The "sync down" alert fires after 3 x syncIntervalMinutes + this many minutes without a successful cycle.')
@minValue(1)
param longestCycleMinutes int = 60

var resourceToken = toLower(uniqueString(resourceGroup().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'acctsync'
}

var names = {
  identity: 'id-acctsync-${resourceToken}'
  storage: 'stacctsync${resourceToken}'
  logAnalytics: 'log-acctsync-${resourceToken}'
  appInsights: 'appi-acctsync-${resourceToken}'
  keyVault: 'kv-acctsync-${take(resourceToken, 12)}'
  plan: 'plan-acctsync-${resourceToken}'
  functionApp: 'func-acctsync-${resourceToken}'
  alertsIdentity: 'id-acctsync-alerts-${resourceToken}'
  actionGroup: 'ag-acctsync-${resourceToken}'
  alertRulePrefix: 'alert-acctsync-${resourceToken}'
}

// Key Vault secret names (the vault holds nothing else).
var secretNames = {
  clientSecret: 'dataverse-client-secret'
  password: 'dataverse-password'
  consoleClientSecret: 'console-client-secret'
  consoleSessionSecret: 'console-session-secret'
}

// The managed identity needs no secret, so it gets no vault: nothing to store, rotate or
// leak. The other two connections keep theirs in Key Vault.
var useManagedIdentity = dataverseConnection == 'managedIdentity'
// The console's Entra sign-in keeps its client secret and its session key there too.
var useConsoleSignIn = !empty(consoleEntraClientId)
var useKeyVault = !useManagedIdentity || useConsoleSignIn

// The app settings point at the vault's secrets whenever the connection needs them, even
// in a deployment that passes no new value: the secret already in the vault stays in use
// (an empty parameter never deletes a secret). Client secret: always with clientSecret,
// with ropc only when one is given. Password: with ropc.
var useRopc = dataverseConnection == 'ropc'
var useClientSecret = dataverseConnection == 'clientSecret' || (useRopc && !empty(dataverseClientSecret))

// The Flex Consumption plan pulls the app package from this container.
var deploymentContainerName = 'app-package-${take(names.functionApp, 32)}-${take(resourceToken, 7)}'

// What the storage account holds besides the deployment container (names as in
// shared/storage.py): storage.bicep creates each one, and rbac.bicep grants the app's identity
// a role on each one, never on the whole account.
var storageLayout = {
  hostContainerNames: [
    'azure-webjobs-hosts'
    'azure-webjobs-secrets'
  ]
  batchContainerName: 'acctsync-batches'
  queueNames: [
    'acctsync-batches'
    'acctsync-batches-poison'
  ]
  tableNames: [
    'acctsyncstate'
    'acctsyncaccounts'
    'acctsynccontacts'
    'acctsyncmembers'
    'acctsyncactivities'
    'acctsyncerrors'
    'acctsyncfeed'
    'acctsyncsearch'
  ]
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    hostContainerNames: storageLayout.hostContainerNames
    batchContainerName: storageLayout.batchContainerName
    queueNames: storageLayout.queueNames
    tableNames: storageLayout.tableNames
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.appInsights
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module keyVault 'app/keyvault.bicep' = if (useKeyVault) {
  name: 'keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: tags
    dataverseClientSecret: dataverseClientSecret
    dataversePassword: dataversePassword
    clientSecretName: secretNames.clientSecret
    passwordSecretName: secretNames.password
    consoleClientSecret: useConsoleSignIn ? consoleEntraClientSecret : ''
    consoleSessionSecret: useConsoleSignIn ? consoleSessionSecret : ''
    consoleClientSecretName: secretNames.consoleClientSecret
    consoleSessionSecretName: secretNames.consoleSessionSecret
    secretsExpireOn: dataverseSecretExpiresOn
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    hostContainerNames: storageLayout.hostContainerNames
    batchContainerName: storageLayout.batchContainerName
    queueNames: storageLayout.queueNames
    tableNames: storageLayout.tableNames
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    // Empty with managedIdentity: no vault, so no Key Vault Secrets User role either.
    keyVaultName: useKeyVault ? keyVault.outputs.name : ''
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  // Roles first: the app resolves its Key Vault references and opens its storage
  // connection as soon as it starts.
  dependsOn: [
    rbac
  ]
  params: {
    planName: names.plan
    appName: names.functionApp
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    blobServiceUri: storage.outputs.blobServiceUri
    queueServiceUri: storage.outputs.queueServiceUri
    tableServiceUri: storage.outputs.tableServiceUri
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    dataverseUrl: dataverseUrl
    dataverseConnection: dataverseConnection
    // A managed identity gets tokens only from its own tenant, this subscription's.
    dataverseTenantId: useManagedIdentity || empty(dataverseTenantId) ? tenant().tenantId : dataverseTenantId
    dataverseClientId: useManagedIdentity ? '' : dataverseClientId
    dataverseClientSecretUri: useClientSecret ? '${keyVault.outputs.uri}secrets/${secretNames.clientSecret}' : ''
    dataverseUsername: useRopc ? dataverseUsername : ''
    dataversePasswordUri: useRopc ? '${keyVault.outputs.uri}secrets/${secretNames.password}' : ''
    dataverseAuthorityHost: dataverseAuthorityHost
    consoleEntraClientId: consoleEntraClientId
    consoleEntraGroupId: useConsoleSignIn ? consoleEntraGroupId : ''
    consoleViewerGroupId: useConsoleSignIn ? consoleViewerGroupId : ''
    consoleOperatorGroupId: useConsoleSignIn ? consoleOperatorGroupId : ''
    consoleAdminGroupId: useConsoleSignIn ? consoleAdminGroupId : ''
    consoleAdminContact: useConsoleSignIn ? consoleAdminContact : ''
    consoleEntraClientSecretUri: useConsoleSignIn ? '${keyVault.outputs.uri}secrets/${secretNames.consoleClientSecret}' : ''
    consoleSessionSecretUri: useConsoleSignIn ? '${keyVault.outputs.uri}secrets/${secretNames.consoleSessionSecret}' : ''
    syncIntervalMinutes: syncIntervalMinutes
    activityContactLimit: activityContactLimit
    syncFilterColumn: syncFilterColumn
    planBudgetSeconds: planBudgetSeconds
    verifyIntervalHours: verifyIntervalHours
    verifyRepair: verifyRepair
    auditRetentionDays: auditRetentionDays
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    zoneRedundant: zoneRedundant
  }
}

module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    identityName: names.alertsIdentity
    actionGroupName: names.actionGroup
    ruleNamePrefix: names.alertRulePrefix
    alertEmail: alertEmail
    syncIntervalMinutes: syncIntervalMinutes
    longestCycleMinutes: longestCycleMinutes
    verifyIntervalHours: verifyIntervalHours
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
// Empty with the managedIdentity connection, which deploys no vault.
output AZURE_KEY_VAULT_NAME string = useKeyVault ? keyVault.outputs.name : ''
output AZURE_WORKBOOK_ID string = workbook.outputs.id
// The Dataverse application user of the managedIdentity connection is registered by this
// client ID (Dataverse shows it as the app's Application ID); docs/deploy.md, step 3.
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_IDENTITY_NAME string = identity.outputs.name
