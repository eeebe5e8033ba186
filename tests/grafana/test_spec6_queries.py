"""The panel queries that read the SPEC §6 metrics, evaluated by promtool on series shaped like
SPEC §6 from two HA replicas of one job (so they hold before the exporter serves those metrics).

While the metrics are pending the end-to-end test only checks that Prometheus accepts these
queries; here each one must give exactly the numbers a person should read off the panel:
webhook counters added up over the replicas (each event reaches one), last values once per
connector, one row per account and reason, shards counted by ordinal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.alerts.procs import binary, run
from tests.grafana.dashboards import (
    SPEC6_METRICS,
    VARIABLE,
    Target,
    committed,
    metric_names,
    targets,
)

# Windows long enough to hold every sample of the 10-minute series below, so increase() and
# rate() need no extrapolation and the expected values are exact.
WINDOWS = {"$__rate_interval": "10m", "$__range": "10m", "$__interval": "1m"}
EVAL_TIME = "10m"
WEBHOOKS = "connector_exporter_webhook_requests_total"
REASON = "connector_exporter_last_poll_failure_reason"
CONNECTOR = {"vendor": "fivetran", "account": "demo", "connector_id": "c1"}
ACCOUNT = {"vendor": "fivetran", "account": "demo"}
REPLICAS = (
    {"job": "connector-exporter", "instance": "replica-0", "pod": "connector-exporter-0"},
    {"job": "connector-exporter", "instance": "replica-1", "pod": "connector-exporter-1"},
)


def _labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _series(metric: str, per_replica: tuple[str | None, str | None], **labels: str) -> list[Any]:
    """One input series per replica that serves it (None: that replica does not)."""
    return [
        {"series": metric + _labels({**labels, **replica}), "values": values}
        for replica, values in zip(REPLICAS, per_replica, strict=True)
        if values is not None
    ]


# Replica 0 and replica 1 each received some of the webhook events; both poll every account.
INPUT = [
    *_series("connector_syncs_total", ("0+1x10", "0+2x10"), **CONNECTOR, result="success"),
    *_series("connector_syncs_total", ("0+1x10", None), **CONNECTOR, result="failure"),
    *_series("connector_last_sync_duration_seconds", ("120x10", "90x10"), **CONNECTOR),
    *_series("connector_last_event_timestamp_seconds", ("540x10", "300x10"), **CONNECTOR),
    *_series("connector_sync_progress_ratio", ("0.5x10", "0.5x10"), **CONNECTOR),
    *_series("connector_issue_info", ("1x10", "1x10"), **CONNECTOR, kind="task", code="reconnect"),
    *_series("connector_issue_info", ("1x10", "1x10"), **CONNECTOR, kind="warning", code="delay"),
    *_series("connector_schema_state", ("1x10", None), **CONNECTOR, state="blocked_on_customer"),
    *_series("connector_schema_state", ("0x10", None), **CONNECTOR, state="ready"),
    *_series("connector_manual_schedule", ("1x10", None), **CONNECTOR),
    *_series("connector_historical_sync", ("0x10", None), **CONNECTOR),
    *_series(WEBHOOKS, ("0+60x10", "0+60x10"), **ACCOUNT, result="accepted"),
    *_series(WEBHOOKS, ("0+6x10", None), **ACCOUNT, result="bad_signature"),
    *_series(WEBHOOKS, (None, "0+30x10"), **ACCOUNT, result="duplicate"),
    # The replicas disagree: replica 0's last poll timed out, replica 1's succeeded.
    *_series(REASON, ("1x10", "0x10"), **ACCOUNT, reason="timeout"),
    *_series(REASON, ("0x10", "1x10"), **ACCOUNT, reason="none"),
    # Two shards of three report (ordinal 2 is missing).
    *_series("connector_exporter_shard_ordinal", ("0x10", "1x10")),
    *_series("connector_exporter_total_shards", ("3x10", "3x10")),
]


def _full(metric: str, replica: int, **labels: str) -> str:
    """A series as selected, every label kept."""
    return metric + _labels({**labels, **REPLICAS[replica]})


# (dashboard, panel title, refId) -> the samples the panel must show: labels -> value.
EXPECTED: dict[tuple[str, str, str], dict[str, float]] = {
    ("connector-detail", "Setup, sync, update and schema state", "D"): {
        _full("connector_schema_state", 0, **CONNECTOR, state="blocked_on_customer"): 1,
    },
    ("connector-detail", "Manual schedule and historical sync", "A"): {
        _full("connector_manual_schedule", 0, **CONNECTOR): 1,
    },
    ("connector-detail", "Manual schedule and historical sync", "B"): {
        _full("connector_historical_sync", 0, **CONNECTOR): 0,
    },
    ("connector-detail", "Syncs in range", "A"): {
        '{result="success"}': 30,
        '{result="failure"}': 10,
    },
    ("connector-detail", "Last sync took", "A"): {_labels(CONNECTOR): 120},
    ("connector-detail", "Last webhook event", "A"): {_labels(CONNECTOR): 60},
    ("connector-detail", "Sync progress", "A"): {_labels(CONNECTOR): 0.5},
    ("connector-detail", "Open tasks and warnings", "A"): {
        _labels({**CONNECTOR, "kind": "task", "code": "reconnect"}): 1,
        _labels({**CONNECTOR, "kind": "warning", "code": "delay"}): 1,
    },
    ("connector-detail", "Syncs by result", "A"): {
        _labels({**CONNECTOR, "result": "success"}): 30,
        _labels({**CONNECTOR, "result": "failure"}): 10,
    },
    ("connector-detail", "Sync duration", "A"): {_labels(CONNECTOR): 120},
    ("connector-exporter-health", "Webhooks rejected in range", "A"): {"{}": 60},
    ("connector-exporter-health", "Shards reporting", "A"): {"{}": 2},
    ("connector-exporter-health", "Shards reporting", "B"): {"{}": 3},
    ("connector-exporter-health", "Shards", "A"): {
        _labels({"job": "connector-exporter", "instance": "replica-0"}): 0,
        _labels({"job": "connector-exporter", "instance": "replica-1"}): 1,
    },
    ("connector-exporter-health", "Shards", "B"): {
        _labels({"job": "connector-exporter", "instance": "replica-0"}): 3,
        _labels({"job": "connector-exporter", "instance": "replica-1"}): 3,
    },
    # requests per second: 60 per minute per replica accepted, 6 per minute rejected, ...
    ("connector-exporter-health", "Webhook requests by result", "A"): {
        _labels({**ACCOUNT, "result": "accepted"}): 2,
        _labels({**ACCOUNT, "result": "bad_signature"}): 0.1,
        _labels({**ACCOUNT, "result": "duplicate"}): 0.5,
    },
    ("connector-exporter-health", "Last poll failure reason", "A"): {
        _labels({**ACCOUNT, "reason": "timeout"}): 1,
        _labels({**ACCOUNT, "reason": "none"}): 1,
    },
}


def _spec6_targets() -> dict[tuple[str, str, str], Target]:
    return {
        (t.dashboard.removesuffix(".json"), t.panel_title, t.ref_id): t
        for t in targets(committed())
        if metric_names(_substitute(t.expr)) & SPEC6_METRICS
    }


def _substitute(expr: str) -> str:
    for var, value in WINDOWS.items():
        expr = expr.replace(var, value)
    return VARIABLE.sub(".*", expr)


def test_every_query_of_a_spec6_metric_has_its_expected_numbers() -> None:
    assert set(_spec6_targets()) == set(EXPECTED)


def _promtool(tmp_path: Path, tests: list[dict[str, Any]]) -> tuple[int, str]:
    """promtool's unit test of `tests` (promql_expr_test entries) over INPUT: (code, output)."""
    spec = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": INPUT, "promql_expr_test": tests}],
    }
    path = tmp_path / "pending.test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run([binary("promtool"), "test", "rules", str(path)], timeout=60)
    return result.returncode, result.stdout + result.stderr


def _expr_test(target: Target, want: dict[str, float]) -> dict[str, Any]:
    return {
        "expr": _substitute(target.expr),
        "eval_time": EVAL_TIME,
        "exp_samples": [{"labels": labels, "value": value} for labels, value in want.items()],
    }


def test_spec6_queries_give_the_numbers_people_read(tmp_path: Path) -> None:
    found = _spec6_targets()
    tests = [_expr_test(found[key], want) for key, want in EXPECTED.items() if key in found]
    assert len(tests) == len(EXPECTED)
    code, output = _promtool(tmp_path, tests)
    assert code == 0, output


def test_promtool_check_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    # The check above would pass vacuously if promtool ignored the samples: one wrong number.
    key = ("connector-exporter-health", "Shards reporting", "A")
    code, output = _promtool(tmp_path, [_expr_test(_spec6_targets()[key], {"{}": 3})])
    assert code != 0
    assert "got: {} 2E+00" in output
