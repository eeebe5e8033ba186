// grafanaDashboards: the generated dashboards of grafana/ (grafana/generate.py writes them;
// the mixin ships them as they are, so there is one source for each).
{
  grafanaDashboards+:: {
    'connector-fleet-overview.json': import '../grafana/connector-fleet-overview.json',
    'connector-detail.json': import '../grafana/connector-detail.json',
    'connector-exporter-health.json': import '../grafana/connector-exporter-health.json',
  },
}
