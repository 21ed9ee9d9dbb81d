// Alerts on acctsync's own metrics, the way Marketo notifies about its sync: the host is
// down (no heartbeat), the sync is down, records could not be mirrored, batches wait in the
// poison queue, Dataverse refuses the credentials, a verify left the mirror different from
// Dynamics, no verify has finished for two verify intervals. Each is a log search alert rule
// over the metrics the app sends to
// Application Insights (customMetrics: name = the metric, attributes in customDimensions,
// histograms with valueMax/valueCount, counters with valueSum).
//
// The rules are always deployed, so fired alerts show in Azure Monitor -> Alerts and can be
// routed later; they mail someone only when alertEmail is set (the action group exists only
// then). Email receivers need no role: that path is the action group's own.

@description('Azure region of the alert rules and their identity (the action group is global).')
param location string

@description('Tags for every resource.')
param tags object = {}

@description('Name of the Application Insights component the rules query (customMetrics).')
param applicationInsightsName string

@description('Name of the Log Analytics workspace that holds the component\'s data.')
param logAnalyticsName string

@description('Name of the user-assigned identity the rules run their queries as.')
param identityName string

@description('Name of the action group that mails the alerts.')
param actionGroupName string

@description('Prefix of the rule names; the rule\'s key follows it.')
param ruleNamePrefix string

@description('Who gets the alerts by email (one address; use a distribution list for several). Empty: no action group, the alerts only show in the portal.')
param alertEmail string = ''

@description('Minutes between the end of one sync cycle and the start of the next (SYNC_INTERVAL_MINUTES).')
@minValue(0)
param syncIntervalMinutes int

@description('The longest a healthy sync cycle takes, in minutes (the first load of a large org is the longest).')
@minValue(1)
param longestCycleMinutes int

@description('Hours between two verifies the app runs by itself (VERIFY_INTERVAL_HOURS); 0: none, and no "not verified" rule.')
@minValue(0)
param verifyIntervalHours int

// "Sync down" once no cycle has succeeded for three intervals plus the longest cycle: one
// failed or slow cycle is normal, three in a row are not.
var syncDownMinutes = 3 * syncIntervalMinutes + longestCycleMinutes
var syncDownSeconds = syncDownMinutes * 60
// "Not verified" once two scheduled verifies in a row did not finish: one may fail (Dynamics
// busy, a restart), two are a pattern.
var verifyOverdueHours = 2 * verifyIntervalHours

// Built-in Reader (same ID in every tenant).
var readerRoleId = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

// A rule without an identity queries with the rights its last editor had at that time, and
// stops working when that person leaves; this identity's rights are visible and its own.
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

// Log search rules need Reader on what they query: the component, and the workspace the
// component's data lives in.
resource readerOnAppInsights 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, readerRoleId)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource readerOnWorkspace 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, identity.id, readerRoleId)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', readerRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'acctsync'
    enabled: true
    emailReceivers: [
      {
        name: 'acctsync-alert-email'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroupIds = empty(alertEmail) ? [] : [actionGroup.id]

// Every query returns what the rule measures; the rule compares it with 0. The sync-down
// query returns a row only when the sync is down, because "no heartbeat at all" (no row in
// customMetrics) must fire too and a measured column cannot see missing data.
var rules = concat([
  {
    key: 'sync-down'
    displayName: 'acctsync: sync down'
    description: 'No sync cycle has succeeded for more than ${syncDownMinutes} minutes (3 x SYNC_INTERVAL_MINUTES ${syncIntervalMinutes} + longest cycle ${longestCycleMinutes}), or no heartbeat reported acctsync.since_last_success_s in the last 15 minutes. See GET /api/sync/status (health, last_failure.fix).'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    autoMitigate: true
    query: format('''
let limit_s = {0};
customMetrics
| where name == "acctsync.since_last_success_s"
| summarize heartbeats = count(), since_last_success_s = max(valueMax)
| where heartbeats == 0 or since_last_success_s > limit_s
| extend reason = iff(heartbeats == 0, "no heartbeat", "no successful cycle")
''', syncDownSeconds)
    aggregation: 'Count'
    measure: ''
  }
  {
    // The host itself: every heartbeat counts acctsync.heartbeats (every 30 s), so a dead or
    // stopped Function App sends nothing at all. A log search rule sees that absence as a
    // count of 0 (summarize without `by` returns one row even over no rows); a metric alert
    // could not, as a metric that is not sent has no value to compare. The 10-minute window
    // is wide enough for Application Insights' ingestion delay not to fire it falsely.
    key: 'host-down'
    displayName: 'acctsync: no heartbeat (host down)'
    description: 'No heartbeat counted acctsync.heartbeats in the last 10 minutes: the Function App is stopped, cannot start, or cannot send telemetry, and no cycle runs. GET /api/sync/status says host_down with the age of the last heartbeat and the batches a crashed worker holds.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT10M'
    autoMitigate: true
    query: '''
customMetrics
| where name == "acctsync.heartbeats"
| summarize heartbeats = count()
| where heartbeats == 0
'''
    aggregation: 'Count'
    measure: ''
  }
  {
    key: 'sync-errors'
    displayName: 'acctsync: sync errors in the last 24 hours'
    description: 'Records could not be mirrored in the last 24 hours (acctsync.sync_errors). The Sync Errors list in GET /api/sync/status or the console names each record and why; fix the record in Dynamics or deselect the column.'
    severity: 3
    frequency: 'P1D'
    window: 'P1D'
    // A daily digest: a stateful rule would mail once and then stay silent while errors go
    // on (and Azure allows stateful rules only up to a 12-hour frequency).
    autoMitigate: false
    query: '''
customMetrics
| where name == "acctsync.sync_errors"
| project timestamp, sync_errors = valueSum
'''
    aggregation: 'Total'
    measure: 'sync_errors'
  }
  {
    key: 'poison-backlog'
    displayName: 'acctsync: batches in the poison queue'
    description: 'Messages wait in the poison queue acctsync-batches-poison (acctsync.poison_backlog): batches that failed 5 times. Fix the cause, then run acctsync replay-poison.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT15M'
    autoMitigate: true
    query: '''
customMetrics
| where name == "acctsync.poison_backlog"
| project timestamp, poison_backlog = valueMax
'''
    aggregation: 'Maximum'
    measure: 'poison_backlog'
  }
  {
    key: 'credentials-refused'
    displayName: 'acctsync: Dataverse refuses the credentials'
    description: 'Planning failed with DataverseAuthError in the last 15 minutes (acctsync.planning_failures, kind DataverseAuthError): Dataverse or Entra ID refuses acctsync\'s sign-in. Repair the application user or the identity (or renew the secret), then run acctsync validate.'
    severity: 1
    frequency: 'PT5M'
    window: 'PT15M'
    autoMitigate: true
    query: '''
customMetrics
| where name == "acctsync.planning_failures"
| where tostring(customDimensions.kind) == "DataverseAuthError"
| project timestamp, auth_failures = valueSum
'''
    aggregation: 'Total'
    measure: 'auth_failures'
  }
  {
    key: 'verify-drift'
    displayName: 'acctsync: a verify left the mirror different from Dynamics'
    description: 'A verify finished with records the mirror still has wrong (acctsync.verify_drift: the drift left after repair, or all it found when it did not repair). GET /api/sync/verify (or the console\'s Sync Status) lists them by kind with sample ids; run acctsync verify --repair. Drift that a repair leaves is a bug: report it with those ids.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT15M'
    // One mail per verify that left drift: the metric comes once per verify, so a stateful
    // rule would resolve itself 15 minutes later while the drift stays.
    autoMitigate: false
    query: '''
customMetrics
| where name == "acctsync.verify_drift"
| project timestamp, verify_drift = valueMax
'''
    aggregation: 'Maximum'
    measure: 'verify_drift'
  }
], verifyIntervalHours > 0 ? [
  {
    key: 'verify-overdue'
    displayName: 'acctsync: the mirror has not been verified'
    description: 'No verify has finished without error for more than ${verifyOverdueHours} hours (2 x VERIFY_INTERVAL_HOURS ${verifyIntervalHours}; acctsync.since_last_verify_s, which each heartbeat reports). GET /api/sync/verify says why the last one failed (error); a paused sync runs no scheduled verify. Run acctsync verify.'
    severity: 3
    frequency: 'PT1H'
    window: 'PT1H'
    autoMitigate: true
    query: format('''
let limit_s = {0};
customMetrics
| where name == "acctsync.since_last_verify_s"
| summarize since_last_verify_s = max(valueMax)
| where since_last_verify_s > limit_s
''', verifyOverdueHours * 3600)
    aggregation: 'Count'
    measure: ''
  }
] : [])

resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for rule in rules: {
    name: '${ruleNamePrefix}-${rule.key}'
    location: location
    tags: tags
    kind: 'LogAlert'
    identity: {
      type: 'UserAssigned'
      userAssignedIdentities: {
        '${identity.id}': {}
      }
    }
    // The first evaluation must already be allowed to read.
    dependsOn: [
      readerOnAppInsights
      readerOnWorkspace
    ]
    properties: {
      displayName: rule.displayName
      description: rule.description
      severity: rule.severity
      enabled: true
      scopes: [
        appInsights.id
      ]
      evaluationFrequency: rule.frequency
      windowSize: rule.window
      autoMitigate: rule.autoMitigate
      criteria: {
        allOf: [
          {
            query: rule.query
            timeAggregation: rule.aggregation
            metricMeasureColumn: empty(rule.measure) ? null : rule.measure
            operator: 'GreaterThan'
            threshold: 0
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: actionGroupIds
      }
    }
  }
]

output actionGroupId string = !empty(alertEmail) ? actionGroup.id : ''
output ruleNames array = [for rule in rules: '${ruleNamePrefix}-${rule.key}']
