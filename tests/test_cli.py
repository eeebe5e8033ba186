"""The first hour: every bad input on every command is one clear line and exit 2 (never a
traceback), check-config lists every problem in one pass with "did you mean", the poll_interval
floor, and the example config that check-config accepts as shipped."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.accounts import CatalogAndConnections
from exporter.cli import DEFAULT_DEMO_LISTEN_ADDRESS, build_parser
from exporter.config import DEFAULT_LISTEN_ADDRESS, ConfigError, parse_config
from exporter.simulator import SPECS
from exporter.vendors import REGISTRY
from tests.conftest import cli, deployed_example

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "config.example.yml"
GOOD = "accounts: [{vendor: bindbee, name: a, token: tok-123456, base_url: 'http://127.0.0.1:9'}]\n"


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something else is listening on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.fixture
def good_config(tmp_path: Path) -> str:
    path = tmp_path / "good.yml"
    path.write_text(GOOD)
    return str(path)


def bad_inputs(tmp_path: Path, good: str, taken: int) -> list[tuple[list[str], str]]:
    """(arguments, a fragment the one error line must contain) for every command."""
    not_utf8 = tmp_path / "binary.yml"
    not_utf8.write_bytes(b"\xff\xfe\x00bad")
    bad_listen = tmp_path / "listen.yml"
    bad_listen.write_text("listen_address: '127.0.0.1'\n" + GOOD)
    fast = tmp_path / "fast.yml"
    fast.write_text(
        "poll_interval: 250ms\naccounts: [{vendor: fivetran, name: p, api_key: k, api_secret: s}]\n"
    )
    return [
        (["run", "--config", good, "--listen-address", "127.0.0.1"], "the port is missing"),
        (["run", "--config", good, "--listen-address", "127.0.0.1:99999"], "0 to 65535"),
        (["run", "--config", good, "--listen-address", "::1:9841"], "IPv6 address in brackets"),
        (["run", "--config", good, "--listen-address", "300.1.1.1:9841"], "not a valid IPv4"),
        (["run", "--config", good, "--listen-address", "no such host:9841"], "not a valid host"),
        (["run", "--config", good, "--listen-address", f"127.0.0.1:{taken}"], "already in use"),
        (
            ["run", "--config", good, "--listen-address", "nosuchhost.invalid:9841"],
            "cannot resolve",
        ),
        (["run", "--config", good, "--shard", "3/3"], "--shard"),
        (["run", "--config", good, "--shard", "x"], "INDEX/COUNT"),
        (["run", "--config", good, "--log-level", "loud"], "--log-level: invalid choice"),
        (
            ["run", "--config", good, "--web-config", str(tmp_path / "none.yml")],
            "cannot read web config",
        ),
        (["run", "--config", str(bad_listen)], "listen_address: the port is missing"),
        (["run", "--config", str(fast)], "at least 1m for fivetran"),
        (["run"], "no config file"),
        (["run", "--config", str(tmp_path / "missing.yml")], "No such file or directory"),
        (["run", "--config", str(tmp_path)], "not a regular file"),
        (["run", "--config", str(not_utf8)], "cannot read config file"),
        (["run", "--frobnicate"], "unrecognized arguments"),
        (["demo", "--listen-address", "9841"], "the port is missing"),
        (["demo", "--listen-address", "127.0.0.1:70000"], "0 to 65535"),
        (["demo", "--listen-address", f"127.0.0.1:{taken}"], "already in use"),
        (["simulate", "--port", "bad"], "expected a port number"),
        (["simulate", "--port", "99999"], "expected a port number"),
        (["simulate", "--port", str(taken)], "already in use"),
        (["simulate", "--port", "0", "--fleet-size", "zapier=3"], "--fleet-size"),
        (
            ["simulate", "--port", "0", "--write-config", str(tmp_path / "no" / "dir.yml")],
            "cannot write",
        ),
        (["check-config"], "no config file"),
        (["check-config", "--config", str(tmp_path / "missing.yml")], "No such file or directory"),
        (["check-config", "--config", str(bad_listen)], "listen_address: the port is missing"),
        (["check-config", "--config", str(fast)], "at least 1m for fivetran"),
        (["nonsense"], "invalid choice"),
    ]


def test_every_bad_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, good_config: str, taken_port: int
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CONNECTOR_EXPORTER_CONFIG"}
    cases = bad_inputs(tmp_path, good_config, taken_port)
    for args, fragment in cases:
        result = cli(*args, env=env)
        where = f"connector-exporter {' '.join(args)}"
        assert result.returncode == 2, (where, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, where
        lines = result.stderr.strip().splitlines()
        # One line: no usage block, no log lines (not even "stopped" before a bind error).
        assert len(lines) == 1, (where, lines)
        assert fragment in lines[0], (where, lines[0])
        assert "error" in lines[0] or "invalid" in lines[0], (where, lines[0])


def test_help_texts_name_defaults_and_forms() -> None:
    parser = build_parser()
    helps = {}
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("run", "demo", "simulate"):
        for action in commands.choices[command]._actions:
            for flag in action.option_strings:
                helps[f"{command} {flag}"] = action.help or ""
    for flag in (
        "run --log-level",
        "run --listen-address",
        "demo --listen-address",
        "simulate --port",
    ):
        assert len(helps[flag]) > 20, flag
    assert DEFAULT_DEMO_LISTEN_ADDRESS in helps["demo --listen-address"]
    assert DEFAULT_LISTEN_ADDRESS in helps["run --listen-address"]
    # The demo is for this machine; `run` keeps SPEC's all-interfaces default.
    assert DEFAULT_DEMO_LISTEN_ADDRESS.startswith("127.0.0.1:")
    assert build_parser().parse_args(["demo"]).listen_address == DEFAULT_DEMO_LISTEN_ADDRESS
    assert DEFAULT_LISTEN_ADDRESS == "0.0.0.0:9841"


# --- check-config: one pass -------------------------------------------------------------
# A vendor with two listings that an account may switch both off (the first the registry has),
# polled with its simulator's account, but both switches off and a field error besides: the
# field error must not hide the check across the two switches.
BOTH_OFF = next(v for v, s in REGISTRY.items() if issubclass(s.account, CatalogAndConnections))
NOTHING_TO_POLL = json.dumps(
    {
        **SPECS[BOTH_OFF].account("http://127.0.0.1:9"),
        "base_url": "ftp://127.0.0.1:9",
        "catalog": False,
        "connections": "off",
    }
)
ONE_PASS = f"""
pol_interval: 5m
max_retries: 99
accounts:
  - vendor: fivetrn
    name: typo
  - vendor: fivetran
    name: prod
    api_key: k
    api_secret_fil: /run/secrets/x
  - {{vendor: bindbee, name: hr, token: a, tokn: b}}
  - {{vendor: bindbee, name: hr, token: b}}
  - {NOTHING_TO_POLL}
  - {{vendor: bindbee, name: fast, token: k, poll_interval: 5s}}
  - {{vendor: bindbee, name: local, token: t, poll_interval: 1s,
     base_url: "http://127.0.0.1:9900/bindbee"}}
"""


def test_check_config_lists_field_and_cross_account_problems_in_one_pass(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text(ONE_PASS)
    result = cli("check-config", "--config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line.strip() for line in result.stderr.strip().splitlines()]
    assert lines[0] == f"{path}: invalid configuration (10 problems):"
    bindbee = REGISTRY["bindbee"]
    assert lines[1:] == [
        "max_retries: Input should be less than or equal to 10",
        "accounts[0]: unknown vendor (did you mean 'fivetran'?); expected one of: "
        + ", ".join(REGISTRY),
        "accounts[1].api_secret: required key is missing",
        "accounts[1].api_secret_fil: unknown key (did you mean 'api_secret_file'?)",
        "accounts[2].tokn: unknown key (did you mean 'token'?)",
        # account 2 has a field error, and the duplicate of its name is still found
        "accounts[3].name: duplicate account name 'hr' for vendor bindbee",
        "accounts[4].base_url: must be an http:// or https:// URL",
        "accounts[4]: catalog and connections are both false: nothing to poll",
        f"accounts[5].poll_interval: must be at least 1m for bindbee: {bindbee.rate_limit};"
        " only loopback base_url (simulators, tests) may poll faster",
        # account 6 polls every second, but a loopback simulator: exempt
        "pol_interval: unknown key (did you mean 'poll_interval'?)",
    ]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    return [str(p) for p in info.value.problems]


def test_did_you_mean_top_level_and_per_vendor() -> None:
    got = problems(
        """
listen_adress: ":9841"
accounts:
  - {vendor: bindbee, name: a, token: t, categorys: [hris]}
  - {vendor: fivetran, name: b, api_key: k, api_secret: s, endpont: connections}
  - {vendr: bindbee, name: c}
  - {vendor: bindbee, name: d, token: t, colour: blue}
"""
    )
    assert got == [
        "accounts[0].categorys: unknown key (did you mean 'categories'?)",
        "accounts[1].endpont: unknown key (did you mean 'endpoint'?)",
        "accounts[2].vendor: required key is missing; one of: " + ", ".join(REGISTRY),
        "accounts[3].colour: unknown key",  # nothing close: no guess
        "listen_adress: unknown key (did you mean 'listen_address'?)",
    ]


def test_poll_interval_floor_per_vendor_with_loopback_exempt() -> None:
    for name, vendor in REGISTRY.items():
        assert vendor.min_poll_interval >= 60, name
        assert vendor.rate_limit, name
    assert "20,000" in REGISTRY["fivetran"].rate_limit
    # The inherited default names the account it would apply to.
    got = problems(
        "poll_interval: 250ms\naccounts: [{vendor: fivetran, name: p, api_key: k, api_secret: s}]"
    )
    assert got == [
        "poll_interval: must be at least 1m for fivetran (the default of accounts[0], fivetran"
        f" 'p'): {REGISTRY['fivetran'].rate_limit}; only loopback base_url (simulators, tests)"
        " may poll faster"
    ]
    # At the floor is fine; loopback (IPv4 /8, IPv6, localhost) may go faster.
    parse_config(
        "poll_interval: 1m\naccounts: [{vendor: fivetran, name: p, api_key: k, api_secret: s}]"
    )
    for base in (
        "http://127.0.0.1:9900",
        "http://127.1.2.3",
        "http://[::1]:80",
        "http://localhost:1",
    ):
        account = f"{{vendor: bindbee, name: a, token: t, base_url: '{base}'}}"
        parse_config(f"poll_interval: 250ms\naccounts: [{account}]")
    # A hostname that merely contains "localhost" is not loopback.
    assert problems(
        "accounts: [{vendor: bindbee, name: a, token: t, poll_interval: 5s,"
        " base_url: 'https://localhost.example.com'}]"
    )[0].startswith("accounts[0].poll_interval: must be at least 1m for bindbee")


@pytest.mark.parametrize(
    ("address", "ok"),
    [
        ("0.0.0.0:9841", True),
        (":9841", True),
        ("127.0.0.1:0", True),
        ("[::1]:9841", True),
        ("[::]:9841", True),
        ("exporter.internal:9841", True),
        ("127.0.0.1", False),
        ("9841", False),
        ("127.0.0.1:99999", False),
        ("127.0.0.1:http", False),
        ("::1:9841", False),
        ("[::1:9841", False),
        ("[nope]:9841", False),
        ("1.2.3:9841", False),
        ("bad_host:9841", False),
    ],
)
def test_listen_address_forms(address: str, ok: bool) -> None:
    text = f"listen_address: '{address}'\n" + GOOD
    if ok:
        assert parse_config(text).listen_address == address
    else:
        assert problems(text)[0].startswith("listen_address: ")


# --- the example config -----------------------------------------------------------------
def test_example_config_covers_every_vendor_and_passes_check_config(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    for vendor in REGISTRY:
        assert f"vendor: {vendor}" in text, vendor
    assert re.search(r"^\s+\w+_file: ", text, re.M), "no *_file secret"
    assert "include:" in text and "exclude:" in text
    # Every ${VAR} it references, and every secret file, provided as a deployment would.
    config, variables = deployed_example(tmp_path)
    env = {**os.environ, **variables}
    env.pop("CONNECTOR_EXPORTER_CONFIG", None)
    result = cli("check-config", "--config", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "value-of-" not in result.stdout + result.stderr
