// connector-exporter monitoring mixin (https://monitoring.mixins.dev conventions):
//   prometheusAlerts, prometheusRules, grafanaDashboards, configured through _config.
(import 'config.libsonnet') +
(import 'alerts.libsonnet') +
(import 'rules.libsonnet') +
(import 'dashboards.libsonnet')
