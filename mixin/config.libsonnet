// Everything a user of the mixin may want to change. Override with
//   (import 'connector-exporter-mixin/mixin.libsonnet') + { _config+:: { ... } }
// (see docs/alerting.md). The defaults are what alerts/*.rules.yml ship.
{
  _config+:: {
    // Selects the exporter's series. The Helm chart rewrites the literal job="connector-exporter"
    // to its own job name, so keep that spelling in the default.
    exporterSelector: 'job="connector-exporter"',

    // Labels that differ between HA replicas of the exporter (a Deployment with replicas: 2
    // scraped as one job). Per-connector alerts and fleet counts aggregate them away, so each
    // connector is counted and alerted once, whatever the number of replicas.
    replicaLabels: ['instance', 'pod'],

    // How long per-connector series are held after they disappear (exporter restarting or
    // gone): long enough for ConnectorExporterAbsent / ConnectorExporterDown to fire and
    // inhibit, so an exporter outage does not resolve every connector alert.
    holdWindow: '15m',

    // Links in the annotations. %s is the alert name in lower case (GitHub's anchor).
    runbookURLPattern: 'https://github.com/connector-exporter/connector-exporter/blob/main/docs/runbooks.md#%s',
    grafanaURL: 'https://grafana.example.com',
    dashboardUIDs: {
      fleet: 'connector-fleet-overview',
      detail: 'connector-detail',
      exporter: 'connector-exporter-health',
    },

    // `for` of every alert.
    'for': {
      ConnectorBroken: '15m',
      ConnectorRelinkNeeded: '15m',
      ConnectorSyncFailing: '30m',
      ConnectorSyncStale: '15m',
      ConnectorSyncDelayed: '1h',
      ConnectorIncomplete: '24h',
      ConnectorCredentialExpiringSoon: '1h',
      // Shorter than every per-connector alert it inhibits, so that in a storm the account
      // alert is already firing when the first per-connector alert would notify.
      ConnectorAccountDegraded: '10m',
      ConnectorExporterPollFailing: '15m',
      ConnectorExporterStaleData: '5m',
      ConnectorExporterDown: '5m',
      ConnectorExporterAbsent: '5m',
      ConnectorExporterShardsMissing: '5m',
      ConnectorExporterShardingMismatch: '15m',
      ConnectorExporterWebhookBadSignatures: '15m',
    },

    // keep_firing_for: how long an alert stays firing after its condition clears.
    // ConnectorAccountDegraded outlives the recovery a little, so that the per-connector alerts
    // it inhibits resolve first (rule groups are evaluated independently, and a per-connector
    // alert still firing when the account alert resolves would page), and so that stragglers
    // of a partial recovery do not page the moment the share drops under the threshold.
    keepFiringFor: {
      ConnectorAccountDegraded: '5m',
    },

    severities: {
      ConnectorBroken: 'critical',
      ConnectorRelinkNeeded: 'warning',
      ConnectorSyncFailing: 'warning',
      ConnectorSyncStale: 'warning',
      ConnectorSyncDelayed: 'warning',
      ConnectorIncomplete: 'info',
      ConnectorCredentialExpiringSoon: 'warning',
      ConnectorAccountDegraded: 'critical',
      ConnectorExporterPollFailing: 'warning',
      ConnectorExporterStaleData: 'warning',
      ConnectorExporterDown: 'critical',
      ConnectorExporterAbsent: 'critical',
      ConnectorExporterShardsMissing: 'critical',
      ConnectorExporterShardingMismatch: 'critical',
      ConnectorExporterWebhookBadSignatures: 'warning',
      ConnectorExporterWatchdog: 'none',
      ConnectorFleetErrorBudgetBurn: { fast: 'critical', slow: 'warning' },
    },

    // ConnectorSyncStale: a connector is stale when its last success is older than
    // max(multiplier x its sync frequency, floor), or `default` when the vendor reports no
    // frequency; during a historical (initial or full re-) sync, at least `historical`.
    syncStale: {
      frequencyMultiplier: 2,
      floorSeconds: 2 * 3600,
      defaultSeconds: 24 * 3600,
      historicalSeconds: 3 * 24 * 3600,
    },

    // ConnectorCredentialExpiringSoon: fires for an expiry inside `windowSeconds` that has not
    // moved later for `unchangedFor` (an OAuth access token that refreshes itself moves its
    // expiry on every refresh and never fires).
    credentialExpiry: {
      windowSeconds: 7 * 24 * 3600,
      unchangedFor: '1d',
    },

    // ConnectorExporterStaleData: last good poll older than this many poll intervals.
    staleDataPollIntervals: 3,

    // ConnectorAccountDegraded: share of an account's non-paused connectors that are not
    // healthy, and the least number of unhealthy connectors (a 3-connector account with one
    // broken is better served by the per-connector alert).
    accountDegraded: {
      unhealthyRatio: 0.2,
      minUnhealthy: 5,
    },

    // ConnectorExporterWebhookBadSignatures: share of signed webhook requests (accepted,
    // duplicate, bad_signature) that fail verification over `window`, with at least
    // `minFailures` failures in that window.
    webhookBadSignatures: {
      ratio: 0.5,
      minFailures: 3,
      window: '15m',
    },

    // Fleet SLO: share of non-paused connectors that are healthy. With an `objective` (e.g.
    // 0.95) the mixin adds ConnectorFleetErrorBudgetBurn, the multi-window multi-burn-rate
    // alerts of the SRE workbook; null leaves them out (the recording rules stay).
    fleetSLO: {
      objective: null,
      // [long window, short window, burn-rate factor, severity key]
      windows: [
        { long: '1h', short: '5m', factor: 14.4, severity: 'fast', 'for': '2m' },
        { long: '6h', short: '30m', factor: 6, severity: 'fast', 'for': '15m' },
        { long: '1d', short: '2h', factor: 3, severity: 'slow', 'for': '1h' },
        { long: '3d', short: '6h', factor: 1, severity: 'slow', 'for': '3h' },
      ],
    },
  },
}
