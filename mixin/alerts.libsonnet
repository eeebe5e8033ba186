// prometheusAlerts: every alert of connector-exporter. Runbooks: docs/runbooks.md; how the
// alerts fit together (hold window, HA, shards, storms): docs/alerting.md.
local lib = import 'lib.libsonnet';

{
  local cfg = $._config,
  local held(metric, matchers='') = lib.held(cfg, metric, matchers),
  local sel(metric, matchers='') = lib.sel(cfg, metric, matchers),
  local vcc = 'on (vendor, account, connector_id)',
  local notPaused = 'unless %s (%s == 1)' % [vcc, held('connector_paused')],

  // A per-connector alert: `cond` is one series per connector (replicas aggregated away), the
  // connector's human name and integration are joined from connector_info. `topk` keeps the
  // join one-to-one when a rename leaves two info series inside the hold window.
  local connectorAlert(name, cond, summary, what) = {
    alert: name,
    expr: '(\n%s\n)\n* %s group_left (name, integration)\n  topk by (vendor, account, connector_id) (1, last_over_time(%s[%s]))\n' % [
      lib.indent(cond, 2),
      vcc,
      sel('connector_info'),
      cfg.holdWindow,
    ],
    'for': cfg['for'][name],
    labels: { severity: cfg.severities[name] },
    annotations: {
      summary: summary,
      description: '{{ $labels.vendor }} connector "{{ $labels.name }}" (id {{ $labels.connector_id }}, integration {{ $labels.integration }}) in account {{ $labels.account }} ' + what,
      runbook_url: lib.runbook(cfg, name),
      dashboard_url: lib.connectorDashboard(cfg),
    },
  },

  local exporterAlert(name, expr, summary, description, dashboard_url) = {
    alert: name,
    expr: expr + '\n',
    'for': cfg['for'][name],
    [if std.objectHas(cfg.keepFiringFor, name) then 'keep_firing_for']: cfg.keepFiringFor[name],
    labels: { severity: cfg.severities[name] },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: lib.runbook(cfg, name),
      dashboard_url: dashboard_url,
    },
  },

  local stale = cfg.syncStale,
  local age = held('connector_last_success_age_seconds'),
  local staleThreshold =
    '(\n    clamp_min(%g * %s, %d)\n  or %s\n    0 * %s + %d\n)' % [
      stale.frequencyMultiplier,
      lib.hang(held('connector_sync_frequency_seconds'), 4),
      stale.floorSeconds,
      vcc,
      lib.hang(age, 4),
      stale.defaultSeconds,
    ],

  // Per connector: 1 when it is neither healthy nor paused, and 1 when it is not paused. Read
  // from two states only (healthy, paused) of the eight: a storm is exactly when this alert
  // must stay cheap to evaluate.
  local healthyH = held('connector_health', 'health="healthy"'),
  local pausedH = held('connector_health', 'health="paused"'),
  local unhealthy = '1\n- %s\n- ignoring (health)\n%s' % [healthyH, pausedH],
  local nonPaused = '1\n- %s' % pausedH,
  local byAccount(x) = 'sum by (job, vendor, account) (\n%s\n)' % lib.indent(x, 2),
  local webhook = cfg.webhookBadSignatures,
  local webhookRate(results) =
    'sum by (job, vendor, account) (rate(%s[%s]))' % [
      sel('connector_exporter_webhook_requests_total', 'result=~"%s"' % results),
      webhook.window,
    ],
  local slo = cfg.fleetSLO,

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'connector-exporter.connectors',
        rules: [
          connectorAlert(
            'ConnectorBroken',
            '%s == 1' % held('connector_health', 'health="broken"'),
            'A connector is broken and no longer syncs data.',
            'is broken: connector_health{health="broken"} = {{ $value }}.',
          ),
          connectorAlert(
            'ConnectorRelinkNeeded',
            '(%s == 1)\n%s' % [held('connector_relink_needed'), notPaused],
            'A connector needs its end user to re-authenticate.',
            'needs to be re-linked by its end user: connector_relink_needed = {{ $value }}.',
          ),
          connectorAlert(
            'ConnectorSyncFailing',
            '%s == 1' % held('connector_health', 'health="failing"'),
            "A connector's syncs are failing.",
            'is failing its syncs: connector_health{health="failing"} = {{ $value }}.',
          ),
          // Threshold: max(2 x sync frequency, 2h) where the vendor reports a frequency, else
          // 24h; during a historical sync at least 3d (an initial or full re-sync of a large
          // source runs for days and updates no success time). Connectors on a manual schedule
          // never sync by themselves, so their age says nothing. Only connectors with a
          // last-success timestamp can be judged.
          connectorAlert(
            'ConnectorSyncStale',
            '%s\n> %s group_left ()\n%s\nunless %s (\n  (%s == 1)\n  and %s (%s <= %d)\n)\n%s\nunless %s (%s == 1)' % [
              age,
              vcc,
              staleThreshold,
              vcc,
              lib.hang(held('connector_historical_sync'), 2),
              vcc,
              lib.hang(age, 2),
              stale.historicalSeconds,
              notPaused,
              vcc,
              held('connector_manual_schedule'),
            ],
            'A connector has not synced successfully for longer than expected.',
            'last synced successfully {{ $value | humanizeDuration }} ago, more than max(%g x its sync frequency, %s) (%s when the vendor reports no frequency, at least %s during a historical sync).' % [
              stale.frequencyMultiplier,
              lib.duration(stale.floorSeconds),
              lib.duration(stale.defaultSeconds),
              lib.duration(stale.historicalSeconds),
            ],
          ),
          connectorAlert(
            'ConnectorSyncDelayed',
            '(%s == 1)\n%s' % [held('connector_update_state', 'state="delayed"'), notPaused],
            "A connector's data is not updating on schedule.",
            'is behind its sync schedule: connector_update_state{state="delayed"} = {{ $value }}.',
          ),
          connectorAlert(
            'ConnectorIncomplete',
            '%s == 1' % held('connector_health', 'health="incomplete"'),
            "A connector's setup has not been completed.",
            'has an incomplete setup: connector_health{health="incomplete"} = {{ $value }}.',
          ),
          // Only an expiry that needs a human: inside the window AND not moved later over
          // `unchangedFor`. An OAuth access token the vendor refreshes by itself moves its
          // expiry forward on every refresh and never fires; a fixed expiry (an API key, a
          // client secret, a token whose refresh has stopped) does. The value is the expiry
          // time itself, so the description reads the same before and after it has passed.
          connectorAlert(
            'ConnectorCredentialExpiringSoon',
            '(%s < time() + %d)\nand %s\n(\n  %s\n  <= %s\n  %s\n)\n%s' % [
              held('connector_credential_expiry_timestamp_seconds'),
              cfg.credentialExpiry.windowSeconds,
              vcc,
              lib.hang(held('connector_credential_expiry_timestamp_seconds'), 2),
              vcc,
              lib.dedup(cfg, 'last_over_time(%s[%s] offset %s)' % [
                sel('connector_credential_expiry_timestamp_seconds'),
                cfg.holdWindow,
                cfg.credentialExpiry.unchangedFor,
              ]),
              notPaused,
            ],
            "A connector's credentials expire soon and are not being renewed.",
            'has credentials that expire at {{ $value | humanizeTimestamp }}, less than %s from now or already past, and their expiry has not moved for %s: they are not refreshed automatically.' % [
              if cfg.credentialExpiry.windowSeconds % 86400 == 0 then '%d days' % (cfg.credentialExpiry.windowSeconds / 86400) else lib.duration(cfg.credentialExpiry.windowSeconds),
              cfg.credentialExpiry.unchangedFor,
            ],
          ),
        ],
      },
      {
        name: 'connector-exporter.accounts',
        rules: [
          // One alert for an account whose connectors break together (a vendor outage, a
          // revoked account-wide credential); the Alertmanager example inhibits the account's
          // per-connector alerts while it fires. Read through the hold window like the
          // per-connector alerts, so an exporter restart does not resolve it and release
          // hundreds of inhibited alerts.
          exporterAlert(
            'ConnectorAccountDegraded',
            '(\n  %s\n  /\n  %s\n  > %g\n)\nand on (job, vendor, account)\n(\n  %s\n  >= %d\n)' % [
              lib.hang(byAccount(unhealthy), 2),
              lib.hang(byAccount(nonPaused), 2),
              cfg.accountDegraded.unhealthyRatio,
              lib.hang(byAccount(unhealthy), 2),
              cfg.accountDegraded.minUnhealthy,
            ],
            "A large share of an account's connectors are unhealthy.",
            '{{ $value | humanizePercentage }} of the non-paused connectors of {{ $labels.vendor }} account {{ $labels.account }} are not healthy (threshold ' + lib.percent(cfg.accountDegraded.unhealthyRatio) + ', at least %d connectors); their per-connector alerts are held back while this fires.' % cfg.accountDegraded.minUnhealthy,
            lib.accountDashboard(cfg, cfg.dashboardUIDs.fleet),
          ),
        ] + (
          if slo.objective == null then [] else [
            {
              alert: 'ConnectorFleetErrorBudgetBurn',
              expr: 'job:connector_health:unhealthy_ratio_avg%s > (%g * %g)\nand on (job)\njob:connector_health:unhealthy_ratio_avg%s > (%g * %g)\n' % [
                w.long,
                w.factor,
                1 - slo.objective,
                w.short,
                w.factor,
                1 - slo.objective,
              ],
              'for': w['for'],
              labels: { severity: cfg.severities.ConnectorFleetErrorBudgetBurn[w.severity], long: w.long, short: w.short },
              annotations: {
                summary: 'The fleet is burning its connector health error budget too fast.',
                description: 'Over the last %s (and %s), {{ $value | humanizePercentage }} of the non-paused connectors of job {{ $labels.job }} were not healthy on average: %g times the error budget of the %s objective.' % [
                  w.long,
                  w.short,
                  w.factor,
                  lib.percent(slo.objective),
                ],
                runbook_url: lib.runbook(cfg, 'ConnectorFleetErrorBudgetBurn'),
                dashboard_url: lib.dashboard(cfg, cfg.dashboardUIDs.fleet),
              },
            }
            for w in slo.windows
          ]
        ),
      },
      {
        name: 'connector-exporter.exporter',
        rules: [
          exporterAlert(
            'ConnectorExporterPollFailing',
            '%s == 0' % sel('connector_exporter_poll_success'),
            'The exporter cannot poll a vendor account.',
            'The last poll of {{ $labels.vendor }} account {{ $labels.account }} by {{ $labels.instance }} failed (connector_exporter_poll_success = {{ $value }}); the connector metrics of this account are frozen at the last successful poll.',
            lib.accountDashboard(cfg, cfg.dashboardUIDs.exporter),
          ),
          exporterAlert(
            'ConnectorExporterStaleData',
            'time() - %s\n  > %g * %s' % [
              sel('connector_exporter_last_poll_success_timestamp_seconds'),
              cfg.staleDataPollIntervals,
              sel('connector_exporter_poll_interval_seconds'),
            ],
            "The exporter's data for a vendor account is stale.",
            'The last successful poll of {{ $labels.vendor }} account {{ $labels.account }} by {{ $labels.instance }} ended {{ $value | humanizeDuration }} ago, more than %g poll intervals; connector alerts of this account are based on old data.' % cfg.staleDataPollIntervals,
            lib.accountDashboard(cfg, cfg.dashboardUIDs.exporter),
          ),
          // The job selector appears twice; the Helm chart rewrites both.
          exporterAlert(
            'ConnectorExporterDown',
            '%s == 0\nor\nabsent(%s)' % [sel('up'), sel('up')],
            'The connector exporter cannot be scraped.',
            '{{ if $labels.instance }}Prometheus cannot scrape the connector exporter at {{ $labels.instance }} (job {{ $labels.job }}, up = {{ $value }}){{ else }}Prometheus has no connector exporter target for job {{ $labels.job }}{{ end }}; no connector of its accounts is monitored.',
            lib.dashboard(cfg, cfg.dashboardUIDs.exporter),
          ),
          // No exporter series at all for the job: every target is down or gone, or the job
          // scrapes something that is not the exporter (up = 1, no connector_exporter_*).
          exporterAlert(
            'ConnectorExporterAbsent',
            'absent(%s)' % sel('connector_exporter_build_info'),
            'No connector exporter series exist for the job.',
            'Prometheus has no connector_exporter_build_info series for job {{ $labels.job }} (absent = {{ $value }}): no exporter of this job is scraped, so no connector is monitored and every connector alert of the job is held back.',
            lib.dashboard(cfg, cfg.dashboardUIDs.exporter),
          ),
          // The kube-state-metrics pattern: every ordinal 0..total-1 must have an up target.
          // Ordinals are values, so count_values turns them into a label to count distinct
          // ones (HA replicas of one shard count once).
          exporterAlert(
            'ConnectorExporterShardsMissing',
            'max by (job) (\n  %s\n  and on (job, instance) (%s == 1)\n)\n-\ncount by (job) (\n  count_values by (job) (\n    "shard",\n    %s\n    and on (job, instance) (%s == 1)\n  )\n)\n> 0' % [
              sel('connector_exporter_total_shards'),
              sel('up'),
              sel('connector_exporter_shard_ordinal'),
              sel('up'),
            ],
            'Shards of the connector exporter are missing.',
            '{{ $value }} shard(s) of job {{ $labels.job }} have no target that is up: the accounts that hash to them are not polled, and the connector alerts of the job are held back until they are back.',
            lib.dashboard(cfg, cfg.dashboardUIDs.exporter),
          ),
          exporterAlert(
            'ConnectorExporterShardingMismatch',
            'max by (job) (%s)\n!= on (job)\nmin by (job) (%s)' % [
              sel('connector_exporter_total_shards'),
              sel('connector_exporter_total_shards'),
            ],
            'Shards of the connector exporter disagree on the number of shards.',
            'The targets of job {{ $labels.job }} were started with different --shard totals (largest {{ $value }}): some accounts are polled twice and others not at all.',
            lib.dashboard(cfg, cfg.dashboardUIDs.exporter),
          ),
          // A rotated secret at the vendor or here: signed requests keep failing verification
          // while genuine ones would be accepted. The minimum count keeps a stray probe from
          // paging an account that receives few events.
          exporterAlert(
            'ConnectorExporterWebhookBadSignatures',
            '(\n  %s\n  /\n  %s\n  > %g\n)\nand on (job, vendor, account)\n(\n  sum by (job, vendor, account) (increase(%s[%s]))\n  >= %d\n)' % [
              webhookRate('bad_signature'),
              webhookRate('accepted|duplicate|bad_signature'),
              webhook.ratio,
              sel('connector_exporter_webhook_requests_total', 'result="bad_signature"'),
              webhook.window,
              webhook.minFailures,
            ],
            'Signed webhook requests keep failing verification.',
            '{{ $value | humanizePercentage }} of the signed webhook requests for {{ $labels.vendor }} account {{ $labels.account }} failed signature verification over the last %s: the webhook secret was probably rotated on one side only. Events are rejected; the connectors are seen at the next poll.' % webhook.window,
            lib.accountDashboard(cfg, cfg.dashboardUIDs.exporter),
          ),
          // The dead man's switch: always firing, routed to a heartbeat receiver that raises
          // the alarm when the notifications stop (Prometheus, rule evaluation, Alertmanager or
          // the notification path is broken).
          {
            alert: 'ConnectorExporterWatchdog',
            expr: 'vector(1)\n',
            labels: { severity: cfg.severities.ConnectorExporterWatchdog },
            annotations: {
              summary: 'The alerting pipeline is working (always firing).',
              description: 'This alert always fires (value {{ $value }}) so that a heartbeat service notices when its notifications stop: then Prometheus, its rule evaluation, Alertmanager or the route to the receiver is broken.',
              runbook_url: lib.runbook(cfg, 'ConnectorExporterWatchdog'),
              dashboard_url: lib.dashboard(cfg, cfg.dashboardUIDs.exporter),
            },
          },
        ],
      },
    ],
  },
}
