// Flex Consumption plan (FC1) + the acctsync Function App (Python 3.11, Linux).
// The app runs as one user-assigned identity: it signs in to storage (host + data),
// pulls its package from the deployment container, sends telemetry to Application
// Insights with Entra auth and, by default, signs in to Dataverse too (no secret at all).
// With the clientSecret or ropc connection it reads the Dataverse secret or password
// through Key Vault references instead.

@description('Name of the Flex Consumption plan.')
param planName string

@description('Name of the Function App (also the first 32 characters of its host ID).')
param appName string

@description('Azure region.')
param location string

@description('Tags for the plan and the app; the app also gets azd-service-name.')
param tags object = {}

@description('azd service this app hosts (azure.yaml services.<name>).')
param azdServiceName string = 'api'

@description('Resource ID of the user-assigned identity the app runs as.')
param identityId string

@description('Client ID of that identity.')
param identityClientId string

@description('Blob endpoint of the storage account (identity-based AzureWebJobsStorage).')
param blobServiceUri string

@description('Queue endpoint of the storage account (identity-based AzureWebJobsStorage).')
param queueServiceUri string

@description('Table endpoint of the storage account (identity-based AzureWebJobsStorage).')
param tableServiceUri string

@description('URL of the blob container the Flex plan deploys the package from.')
param deploymentContainerUrl string

@description('Application Insights connection string (holds no secret: local auth is disabled).')
param applicationInsightsConnectionString string

@description('Dataverse environment URL, e.g. https://contoso.crm.dynamics.com.')
param dataverseUrl string

@description('How the app signs in to Dataverse: managedIdentity (as the identity above, registered as a Dataverse application user), clientSecret (an app registration and its secret) or ropc (a sync user and its password).')
@allowed([
  'managedIdentity'
  'clientSecret'
  'ropc'
])
param dataverseConnection string = 'managedIdentity'

@description('Entra tenant the app gets its Dataverse token from (with managedIdentity: the identity\'s own tenant).')
param dataverseTenantId string

@description('Application (client) ID of the Dataverse app registration (clientSecret, ropc). Ignored with managedIdentity: the app then uses identityClientId.')
param dataverseClientId string = ''

@description('Key Vault URI (no version) of the client secret (clientSecret; optional with ropc). Empty or managedIdentity: DATAVERSE_CLIENT_SECRET is not set.')
param dataverseClientSecretUri string = ''

@description('Sync user of the ropc connection. Set only with ropc.')
param dataverseUsername string = ''

@description('Key Vault URI (no version) of the sync user password. Set only with ropc.')
param dataversePasswordUri string = ''

@description('Entra authority host. Empty: the app default (https://login.microsoftonline.com).')
param dataverseAuthorityHost string = ''

@description('Admin console: client ID of the Entra app registration it signs users in with. Empty: no console sign-in settings.')
param consoleEntraClientId string = ''

@description('Admin console: object ID of the one group whose members may sign in. Empty: every user of the tenant.')
param consoleEntraGroupId string = ''

@description('Admin console: object ID of the group whose members get the viewer role (besides the Viewer app role). Empty: none.')
param consoleViewerGroupId string = ''

@description('Admin console: object ID of the group whose members get the operator role. Empty: none.')
param consoleOperatorGroupId string = ''

@description('Admin console: object ID of the group whose members get the admin role. Empty: none.')
param consoleAdminGroupId string = ''

@description('Admin console: whom someone signed in without a role is told to ask (a name, an email, a team). Empty: the app registration\'s owners.')
param consoleAdminContact string = ''

@description('Admin console: Key Vault URI (no version) of the app registration\'s client secret.')
param consoleEntraClientSecretUri string = ''

@description('Admin console: Key Vault URI (no version) of the key that signs its sessions.')
param consoleSessionSecretUri string = ''

@description('Minutes between the end of one sync cycle and the start of the next.')
param syncIntervalMinutes int = 5

@description('Accounts with more contacts than this get no Change Data Value activities.')
param activityContactLimit int = 5000

@description('The account Two Options column whose explicit No keeps an account out of the mirror; empty: no filter.')
param syncFilterColumn string = 'new_synctomkto'

@description('Seconds one heartbeat plans before it checkpoints and leaves the rest to the next.')
param planBudgetSeconds int = 180

@description('Hours between two verifies of the mirror against Dynamics the app runs by itself; 0: never.')
param verifyIntervalHours int = 24

@description('Whether a scheduled verify repairs the drift it found.')
param verifyRepair bool = true

@description('Days the audit trail of admin actions and sign-ins is kept.')
param auditRetentionDays int = 365

@description('Most instances the app scales out to (each runs host.json queue batches in parallel).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Spread the plan over availability zones (only in regions that support it for Flex Consumption).')
param zoneRedundant bool = false

var useManagedIdentity = dataverseConnection == 'managedIdentity'
var useRopc = dataverseConnection == 'ropc'

// Optional settings are left out entirely (not set to '') so the app's defaults apply.
// DATAVERSE_CREDENTIAL is set only for the managed identity: without it the app keeps its
// own choice between client secret and ROPC (DATAVERSE_USERNAME set or not).
var credentialEntry = {
  name: 'DATAVERSE_CREDENTIAL'
  value: 'managedidentity'
}

var clientSecretEntry = {
  name: 'DATAVERSE_CLIENT_SECRET'
  value: '@Microsoft.KeyVault(SecretUri=${dataverseClientSecretUri})'
}

var usernameEntry = {
  name: 'DATAVERSE_USERNAME'
  value: dataverseUsername
}

var passwordEntry = {
  name: 'DATAVERSE_PASSWORD'
  value: '@Microsoft.KeyVault(SecretUri=${dataversePasswordUri})'
}

var authorityEntry = {
  name: 'DATAVERSE_AUTHORITY_HOST'
  value: dataverseAuthorityHost
}

// The admin console's Entra ID sign-in (OpenID Connect with msal; docs/deploy.md says why
// not App Service authentication): set only when its app registration is given.
var consoleSettings = empty(consoleEntraClientId) ? [] : concat([
  {
    name: 'CONSOLE_ENTRA_CLIENT_ID'
    value: consoleEntraClientId
  }
  {
    name: 'CONSOLE_ENTRA_TENANT_ID'
    value: tenant().tenantId
  }
  {
    name: 'CONSOLE_ENTRA_CLIENT_SECRET'
    value: '@Microsoft.KeyVault(SecretUri=${consoleEntraClientSecretUri})'
  }
  {
    name: 'CONSOLE_SESSION_SECRET'
    value: '@Microsoft.KeyVault(SecretUri=${consoleSessionSecretUri})'
  }
], empty(consoleEntraGroupId) ? [] : [
  {
    name: 'CONSOLE_ENTRA_GROUP_ID'
    value: consoleEntraGroupId
  }
], empty(consoleViewerGroupId) ? [] : [
  {
    name: 'CONSOLE_VIEWER_GROUP_ID'
    value: consoleViewerGroupId
  }
], empty(consoleOperatorGroupId) ? [] : [
  {
    name: 'CONSOLE_OPERATOR_GROUP_ID'
    value: consoleOperatorGroupId
  }
], empty(consoleAdminGroupId) ? [] : [
  {
    name: 'CONSOLE_ADMIN_GROUP_ID'
    value: consoleAdminGroupId
  }
], empty(consoleAdminContact) ? [] : [
  {
    name: 'CONSOLE_ADMIN_CONTACT'
    value: consoleAdminContact
  }
])

var baseSettings = [
  // The admin console is the site's root page, not the Functions host's default page.
  {
    name: 'AzureWebJobsDisableHomepage'
    value: 'true'
  }
  // Identity-based host storage: no connection string, no key.
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: blobServiceUri
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: queueServiceUri
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: tableServiceUri
  }
  // Telemetry: OpenTelemetry distro started by the Python worker, keyless ingestion.
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: applicationInsightsConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
  {
    name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY'
    value: 'true'
  }
  // Two glibc malloc arenas, not eight per core: the apply and I/O threads each took an arena
  // of their own, and the pages and messages they let go of stayed resident in it (measured,
  // docs/capacity.md: a 100,000-contact re-load crept from 117 to 128 MB, with 2 it held 105).
  {
    name: 'MALLOC_ARENA_MAX'
    value: '2'
  }
  // acctsync itself (CONTRACT.md, Settings).
  {
    name: 'DATAVERSE_URL'
    value: dataverseUrl
  }
  {
    name: 'DATAVERSE_TENANT_ID'
    value: dataverseTenantId
  }
  // The managed identity's own client ID picks it among the identities on the app (and
  // is what Dataverse shows for its application user).
  {
    name: 'DATAVERSE_CLIENT_ID'
    value: useManagedIdentity ? identityClientId : dataverseClientId
  }
  {
    name: 'SYNC_INTERVAL_MINUTES'
    value: string(syncIntervalMinutes)
  }
  {
    name: 'ACTIVITY_CONTACT_LIMIT'
    value: string(activityContactLimit)
  }
  {
    name: 'SYNC_FILTER_COLUMN'
    value: syncFilterColumn
  }
  {
    name: 'ACCTSYNC_PLAN_BUDGET_SECONDS'
    value: string(planBudgetSeconds)
  }
  {
    name: 'VERIFY_INTERVAL_HOURS'
    value: string(verifyIntervalHours)
  }
  {
    name: 'VERIFY_REPAIR'
    value: verifyRepair ? 'true' : 'false'
  }
  {
    name: 'AUDIT_RETENTION_DAYS'
    value: string(auditRetentionDays)
  }
]

// A secret URI passed along with managedIdentity is ignored: that mode holds no secret.
var credentialSettings = useManagedIdentity ? [credentialEntry] : []
var clientSecretSettings = !useManagedIdentity && !empty(dataverseClientSecretUri) ? [clientSecretEntry] : []
var usernameSettings = useRopc ? [usernameEntry] : []
var passwordSettings = useRopc && !empty(dataversePasswordUri) ? [passwordEntry] : []
var authoritySettings = empty(dataverseAuthorityHost) ? [] : [authorityEntry]

var serviceTag = {
  'azd-service-name': azdServiceName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is a parameter (zoneRedundant, default false): Flex Consumption supports it only in some regions.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_17: The HTTP API is protected by function keys (x-functions-key); callers are scripts and services, not mutual-TLS clients.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances on demand (scale to zero); there is no fixed instance count to raise.
  // checkov:skip=CKV_AZURE_213: Flex Consumption manages instance health itself and has no App Service health-check ping; /api/sync/status reports sync health.
  // checkov:skip=CKV_AZURE_222: The HTTP API is served on the public endpoint (function keys, HTTPS only, TLS 1.2); this template deploys no private network.
  name: appName
  location: location
  tags: union(tags, serviceTag)
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    // Only clientSecret and ropc have Key Vault references; with managedIdentity there is
    // nothing to resolve and this names the one identity the app has anyway.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      cors: {
        allowedOrigins: [
          'https://portal.azure.com'
        ]
        supportCredentials: false
      }
      appSettings: concat(baseSettings, credentialSettings, clientSecretSettings, usernameSettings, passwordSettings, authoritySettings, consoleSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Publishing with FTP or with the site's basic (user name + password) credentials is
// off: azd and Core Tools deploy with your Entra ID sign-in.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: app
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = app.id
output name string = app.name
output defaultHostName string = app.properties.defaultHostName
output planName string = plan.name
