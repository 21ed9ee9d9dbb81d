// The least set of roles the Function App's identity needs, each on the narrowest
// resource that serves it: every storage role is on one container, queue or table (Azure
// takes role assignments at those scopes), none on the storage account, so the identity can
// neither read nor create anything else there. Role definition IDs are the built-in ones
// (same in every tenant): https://learn.microsoft.com/azure/role-based-access-control/built-in-roles

@description('Principal (object) ID of the Function App identity.')
param principalId string

@description('Storage account with the containers, queues and tables below (storage.bicep creates them all).')
param storageAccountName string

@description('Blob containers of the Functions host (AzureWebJobsStorage).')
param hostContainerNames array

@description('Blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string

@description('Blob container of the batches too large for a queue message.')
param batchContainerName string

@description('The batch queue and its poison queue.')
param queueNames array

@description('The tables of the mirror and its state.')
param tableNames array

@description('Application Insights component the app sends telemetry to.')
param applicationInsightsName string

@description('Key Vault with the Dataverse credentials. Empty (the managedIdentity connection, which has no secret and no vault): no Key Vault role.')
param keyVaultName string = ''

var roles = {
  // The host's containers (timer schedule monitor, singleton locks, keys): the host takes
  // blob leases, and breaks stale ones, which Blob Data Contributor cannot.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // The deployment package (the platform reads it with this identity) and the batch claim
  // checks (written, read and deleted; no leases).
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  // Queue trigger (acctsync-batches, moving poisoned messages to its poison queue), the
  // batch producer and replay-poison.
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Cursors, the mirror, memberships, activities, errors and the feed.
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Entra-authenticated telemetry ingestion (the component has local auth disabled).
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  // Key Vault references (clientSecret and ropc only): read secret values, nothing else.
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

var appContainerNames = [
  deploymentContainerName
  batchContainerName
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource hostContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [
  for containerName in hostContainerNames: {
    parent: blobService
    name: containerName
  }
]

resource appContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [
  for containerName in appContainerNames: {
    parent: blobService
    name: containerName
  }
]

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = [
  for tableName in tableNames: {
    parent: tableService
    name: tableName
  }
]

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = if (!empty(keyVaultName)) {
  name: keyVaultName
}

resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (containerName, i) in hostContainerNames: {
    name: guid(hostContainers[i].id, principalId, roles.storageBlobDataOwner)
    scope: hostContainers[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource appBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (containerName, i) in appContainerNames: {
    name: guid(appContainers[i].id, principalId, roles.storageBlobDataContributor)
    scope: appContainers[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource queueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (queueName, i) in queueNames: {
    name: guid(queues[i].id, principalId, roles.storageQueueDataContributor)
    scope: queues[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (tableName, i) in tableNames: {
    name: guid(tables[i].id, principalId, roles.storageTableDataContributor)
    scope: tables[i]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
      principalId: principalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(keyVaultName)) {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
