// PromQL building blocks shared by the alerts and the recording rules.
{
  // `s` with every line but empty ones indented by `n` spaces.
  indent(s, n)::
    std.join('\n', [if l == '' then l else std.repeat(' ', n) + l for l in std.split(s, '\n')]),

  // `s` with every line after the first indented by `n` spaces (for a block that continues
  // a line).
  hang(s, n)::
    local lines = std.split(s, '\n');
    std.join('\n', [lines[0]] + [if l == '' then l else std.repeat(' ', n) + l for l in lines[1:]]),

  // `metric{selector,matchers}`
  sel(cfg, metric, matchers='')::
    '%s{%s}' % [metric, std.join(',', [m for m in [cfg.exporterSelector, matchers] if m != ''])],

  // Aggregates the HA replicas of the exporter away (see replicaLabels in config.libsonnet).
  dedup(cfg, expr)::
    'max without (%s) (%s)' % [std.join(', ', cfg.replicaLabels), expr],

  // A per-connector series, one per connector whatever the number of replicas, that survives
  // the exporter's absence for the hold window. The live value wins where any replica exports
  // the connector (so a recovery resolves at once even if another replica just died); only a
  // connector no replica exports any more falls back to its last value in the hold window.
  held(cfg, metric, matchers='')::
    local s = self.sel(cfg, metric, matchers);
    '(\n  %s\n  or\n  %s\n)' % [
      self.dedup(cfg, s),
      self.dedup(cfg, 'last_over_time(%s[%s])' % [s, cfg.holdWindow]),
    ],

  // Seconds as the shortest Prometheus-style duration (7200 -> 2h), for annotations.
  duration(seconds)::
    if seconds % 86400 == 0 && seconds > 86400 then '%dd' % (seconds / 86400)
    else if seconds % 3600 == 0 then '%dh' % (seconds / 3600)
    else if seconds % 60 == 0 then '%dm' % (seconds / 60)
    else '%ds' % seconds,

  percent(ratio):: '%g%%' % (ratio * 100),

  runbook(cfg, alert):: cfg.runbookURLPattern % std.asciiLower(alert),

  connectorDashboard(cfg)::
    '%s/d/%s?var-vendor={{ $labels.vendor | urlquery }}&var-account={{ $labels.account | urlquery }}&var-connector_id={{ $labels.connector_id | urlquery }}'
    % [cfg.grafanaURL, cfg.dashboardUIDs.detail],

  accountDashboard(cfg, uid)::
    '%s/d/%s?var-vendor={{ $labels.vendor | urlquery }}&var-account={{ $labels.account | urlquery }}'
    % [cfg.grafanaURL, uid],

  dashboard(cfg, uid):: '%s/d/%s' % [cfg.grafanaURL, uid],
}
