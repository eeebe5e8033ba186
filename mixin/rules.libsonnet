// prometheusRules: fleet counts the dashboards read, and the fleet SLO.
// Names follow level:metric:operations (https://prometheus.io/docs/practices/rules/).
// Every per-connector input is first de-duplicated across HA replicas (replicaLabels), so the
// counts are right with any number of replicas.
local lib = import 'lib.libsonnet';

{
  local cfg = $._config,
  local sel(metric, matchers='') = lib.sel(cfg, metric, matchers),
  local dedup(metric, matchers='') = lib.dedup(cfg, sel(metric, matchers)),
  local slo = cfg.fleetSLO,
  local windows = std.set(std.flattenArrays([[w.long, w.short] for w in slo.windows])),
  // healthy / non-paused, read from two of the eight health states
  local healthyRatio(by) =
    'sum by (%s) (%s)\n/\nsum by (%s) (1 - %s)\n' % [
      by,
      dedup('connector_health', 'health="healthy"'),
      by,
      dedup('connector_health', 'health="paused"'),
    ],

  prometheusRules+:: {
    groups+: [
      {
        name: 'connector-exporter.recording',
        rules: [
          // Connectors per vendor, account and normalised health (the fleet overview's table).
          {
            record: 'vendor_account_health:connector_health:sum',
            expr: 'sum by (vendor, account, health) (%s)\n' % dedup('connector_health'),
          },
          // The same per vendor only (fleet-wide stat panels).
          {
            record: 'vendor_health:connector_health:sum',
            expr: 'sum by (vendor, health) (%s)\n' % dedup('connector_health'),
          },
          // Per integration (e.g. salesforce, workday): "which integration breaks most".
          {
            record: 'vendor_account_integration_health:connector_health:sum',
            expr: 'sum by (vendor, account, integration, health) (\n  %s\n  * on (vendor, account, connector_id) group_left (integration)\n    topk by (vendor, account, connector_id) (1, %s)\n)\n' % [
              dedup('connector_health'),
              dedup('connector_info'),
            ],
          },
          {
            record: 'vendor_account:connector_info:count',
            expr: 'count by (vendor, account) (%s)\n' % dedup('connector_info'),
          },
          {
            record: 'vendor_account:connector_relink_needed:sum',
            expr: 'sum by (vendor, account) (%s)\n' % dedup('connector_relink_needed'),
          },
          {
            record: 'vendor_account:connector_paused:sum',
            expr: 'sum by (vendor, account) (%s)\n' % dedup('connector_paused'),
          },
          // Fivetran on_schedule / delayed.
          {
            record: 'vendor_account_state:connector_update_state:sum',
            expr: 'sum by (vendor, account, state) (%s)\n' % dedup('connector_update_state'),
          },
          // The oldest last successful sync per account, ignoring paused connectors.
          {
            record: 'vendor_account:connector_last_success_age_seconds:max',
            expr: 'max by (vendor, account) (\n  %s\n  unless on (vendor, account, connector_id) (%s == 1)\n)\n' % [
              sel('connector_last_success_age_seconds'),
              sel('connector_paused'),
            ],
          },
          {
            record: 'vendor_account:connector_credential_expiry_timestamp_seconds:min',
            expr: 'min by (vendor, account) (%s)\n' % sel('connector_credential_expiry_timestamp_seconds'),
          },
          // Requests every replica really sends to the vendor: summed, not de-duplicated.
          {
            record: 'vendor_account_code:connector_exporter_api_requests:rate5m',
            expr: 'sum by (vendor, account, code) (rate(%s[5m]))\n' % sel('connector_exporter_api_requests_total'),
          },
          {
            record: 'vendor_account:connector_exporter_poll_failures:ratio_rate1h',
            expr: 'sum by (vendor, account) (rate(%s[1h]))\n/\nsum by (vendor, account) (rate(%s[1h]))\n' % [
              sel('connector_exporter_poll_failures_total'),
              sel('connector_exporter_polls_total'),
            ],
          },
        ],
      },
      {
        // The fleet SLI: the share of non-paused connectors that are healthy, per account and
        // per exporter job (the fleet). The error ratio is its complement; averaged over the
        // burn-rate windows it is the share of connector-time spent unhealthy.
        name: 'connector-exporter.slo',
        rules: [
          {
            record: 'vendor_account:connector_health:healthy_ratio',
            expr: healthyRatio('vendor, account'),
          },
          {
            record: 'job:connector_health:healthy_ratio',
            expr: healthyRatio('job'),
          },
          {
            record: 'job:connector_health:unhealthy_ratio',
            expr: '1 - job:connector_health:healthy_ratio\n',
          },
        ] + (
          if slo.objective == null then [] else [
            {
              record: 'job:connector_health:unhealthy_ratio_avg%s' % w,
              expr: 'avg_over_time(job:connector_health:unhealthy_ratio[%s])\n' % w,
            }
            for w in windows
          ]
        ),
      },
    ],
  },
}
