"""connector-exporter: Prometheus metrics and alerts for SaaS integration connectors."""

__version__ = "0.1.0"
