// Azure Workbook "acctsync sync dashboard" over the Application Insights component.
// The tiles (KQL over customMetrics, traces and exceptions) live in workbook.json so
// they can be read, diffed and tested as JSON; fallbackResourceIds points them at this
// deployment's component.

@description('Display name shown in the Workbooks gallery.')
param displayName string = 'acctsync sync dashboard'

@description('Azure region.')
param location string

@description('Tags for the workbook.')
param tags object = {}

@description('Resource ID of the Application Insights component the queries run against.')
param applicationInsightsId string

var fallback = {
  fallbackResourceIds: [
    applicationInsightsId
  ]
}

var content = union(loadJsonContent('workbook.json'), fallback)

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsightsId, 'acctsync-sync-dashboard')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: toLower(applicationInsightsId)
    version: 'Notebook/1.0'
    serializedData: string(content)
  }
}

output id string = workbook.id
output name string = workbook.name
