// The user-assigned managed identity the Function App runs as. One identity serves the
// host storage connection, the deployment container, Key Vault references and
// Application Insights ingestion, so every role assignment in rbac.bicep names it.

@description('Name of the user-assigned managed identity.')
param name string

@description('Azure region.')
param location string

@description('Tags for the identity.')
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
