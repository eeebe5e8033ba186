"""Config file (SPEC §2) and `check-config` (SPEC §1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.accounts import parse_duration
from exporter.config import LISTEN_ADDRESS_FORMS, ConfigError, load_config, parse_config
from exporter.vendors.bindbee import BindbeeAccount
from exporter.vendors.fivetran import FivetranAccount
from tests.conftest import cli

SECRET = "S3NT1NEL-very-secret-value"
VALID = """
accounts:
  - vendor: fivetran
    name: prod
    api_key: ${FT_KEY}
    api_secret_file: secret.txt
  - vendor: bindbee
    name: hr
    token: tok-${SUFFIX}-end
    categories: [ats]
    include: ["^prod-"]
    exclude: ["-test$"]
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=env or {})
    return [str(p) for p in info.value.problems]


def test_valid_config_with_env_and_file_secrets(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("from-file\n")
    path = tmp_path / "config.yml"
    path.write_text(VALID)
    config = load_config(path, env={"FT_KEY": "k1", "SUFFIX": "x"})
    ft, bb = config.accounts
    assert isinstance(ft, FivetranAccount) and isinstance(bb, BindbeeAccount)
    assert ft.api_key.get_secret_value() == "k1"
    assert ft.api_secret.get_secret_value() == "from-file"  # trailing newline stripped
    assert bb.token.get_secret_value() == "tok-x-end"
    assert bb.categories == ["ats"]
    assert ft.base_url == "https://api.fivetran.com" and ft.endpoint == "connections"
    assert config.poll_interval == 300 and config.listen_address == "0.0.0.0:9841"
    assert bb.keeps("prod-payroll") and not bb.keeps("prod-payroll-test")
    assert not bb.keeps("staging")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1.5h", 5400), (90, 90), ("45", 45), ("250ms", 0.25)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["5x", "", "-1s", 0, True, "m", float("inf"), float("nan"), 10**400, "8d", "9" * 400]
)
def test_bad_durations(text: str | int | float) -> None:
    with pytest.raises(ValueError, match=r"duration|greater than zero|at most 7d"):
        parse_duration(text)


def test_non_finite_interval_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("poll_interval: .inf\naccounts: [{vendor: bindbee, name: a, token: t}]\n")
    for command in ("check-config", "run"):
        result = cli(command, "--config", str(path))
        assert result.returncode == 2, command
        assert "poll_interval: must be a finite number of seconds" in result.stderr
        assert "Traceback" not in result.stderr


def test_every_problem_is_listed_with_its_path() -> None:
    got = problems(
        """
poll_interval: soon
max_retries: 99
surprise: 1
accounts:
  - vendor: fivetran
    name: a
    api_key: ${MISSING_VAR}
    api_secret: s
    colour: blue
  - vendor: zapier
    name: z
  - vendor: bindbee
    name: b
    categories: [hris, crm]
    include: ["("]
"""
    )
    assert got == [
        "accounts[0].api_key: environment variable MISSING_VAR is not set",
        "poll_interval: expected a duration such as 30s, 5m, 1h or a number of seconds",
        "max_retries: Input should be less than or equal to 10",
        "accounts[0].colour: unknown key",
        "accounts[1]: unknown vendor; expected one of: " + ", ".join(_vendors()),
        "accounts[2].include: item 0: invalid regular expression: "
        "missing ): ( (RE2 syntax: no lookarounds nor backreferences)",
        "accounts[2].token: required key is missing",
        "accounts[2].categories[1]: Input should be 'hris', 'ats' or 'lms'",
        "surprise: unknown key",
    ]


def _vendors() -> list[str]:
    from exporter.config import ACCOUNT_MODELS

    return list(ACCOUNT_MODELS)


def test_duplicate_account_names_per_vendor() -> None:
    got = problems(
        """
accounts:
  - {vendor: bindbee, name: hr, token: a}
  - {vendor: bindbee, name: hr, token: b}
"""
    )
    assert got == ["accounts[1].name: duplicate account name 'hr' for vendor bindbee"]
    # the same name under two vendors is fine: the label pair (vendor, account) stays unique
    parse_config(
        """
accounts:
  - {vendor: bindbee, name: hr, token: a}
  - {vendor: fivetran, name: hr, api_key: k, api_secret: s}
"""
    )


def test_secret_file_problems(tmp_path: Path) -> None:
    got = problems(
        f"""
accounts:
  - vendor: fivetran
    name: a
    api_key: k
    api_key_file: {tmp_path}/k
    api_secret_file: {tmp_path}/missing
"""
    )
    assert got == [
        "accounts[0].api_key_file: give either api_key or api_key_file, not both",
        f"accounts[0].api_secret_file: cannot read {tmp_path}/missing: No such file or directory",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("accounts: []", ["accounts: List should have at least 1 item after validation, not 0"]),
        ("- a list", ["the config file must be a YAML mapping"]),
        (
            "accounts: [unclosed",
            ["line 1, column 20: invalid YAML: expected ',' or ']', but got '<stream end>'"],
        ),
        (
            "listen_address: nowhere\naccounts: [{vendor: bindbee, name: a, token: t}]",
            ["listen_address: the port is missing: expected " + LISTEN_ADDRESS_FORMS],
        ),
        (
            "accounts: [{vendor: bindbee, name: a, token: t, base_url: 'ftp://x'}]",
            ["accounts[0].base_url: must be an http:// or https:// URL"],
        ),
    ],
)
def test_shape_problems(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_check_config_cli_exit_codes_and_no_secret_echo(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(f"accounts: [{{vendor: bindbee, name: a, token: {SECRET}}}]\n")
    ok = cli("check-config", "--config", str(good))
    assert ok.returncode == 0, ok.stderr
    assert "valid, 1 accounts" in ok.stdout
    assert SECRET not in ok.stdout + ok.stderr

    bad = tmp_path / "bad.yml"
    bad.write_text(
        f"""
accounts:
  - vendor: fivetran
    name: a
    api_key: {SECRET}
    api_secret: [{SECRET}]
    poll_interval: {SECRET}
    unknown_key: {SECRET}
"""
    )
    result = cli("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert SECRET not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{bad}: invalid configuration (3 problems):"
    assert sorted(line.strip() for line in lines[1:]) == [
        "accounts[0].api_secret: Input should be a valid string",
        "accounts[0].poll_interval: expected a duration such as 30s, 5m, 1h or a number of seconds",
        "accounts[0].unknown_key: unknown key",
    ]


def test_check_config_from_environment_and_missing(tmp_path: Path) -> None:
    import os

    path = tmp_path / "c.yml"
    path.write_text("accounts: [{vendor: bindbee, name: a, token: t}]\n")
    env = {**os.environ, "CONNECTOR_EXPORTER_CONFIG": str(path)}
    assert cli("check-config", env=env).returncode == 0
    env.pop("CONNECTOR_EXPORTER_CONFIG")
    missing = cli("check-config", env=env)
    assert missing.returncode == 2 and "no config file" in missing.stderr
    unreadable = cli("check-config", "--config", str(tmp_path / "nope.yml"))
    assert unreadable.returncode == 2
    assert "cannot read config file" in unreadable.stderr and "Traceback" not in unreadable.stderr


def test_run_rejects_invalid_config_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("accounts: []\n")
    result = cli("run", "--config", str(path))
    assert result.returncode == 2 and "invalid configuration" in result.stderr
    bad_shard = tmp_path / "ok.yml"
    bad_shard.write_text("accounts: [{vendor: bindbee, name: a, token: t}]\n")
    result = cli("run", "--config", str(bad_shard), "--shard", "3/3")
    assert result.returncode == 2 and "--shard" in result.stderr


def test_version() -> None:
    from exporter import __version__

    result = cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"connector-exporter {__version__}"


def test_accounts_of_the_wrong_type_is_a_listed_problem() -> None:
    """Found by the property tests: `accounts: 1` raised a ConfigError with no problem."""
    assert any(p.startswith("accounts:") for p in problems("accounts: 1\n"))


def test_an_unhashable_vendor_is_a_listed_problem() -> None:
    """Found by the property tests: `vendor: []` crashed the duplicate-name check."""
    text = "accounts:\n- {vendor: [], name: a}\n- {vendor: bindbee, name: a, token: t}\n"
    assert any(p.startswith("accounts[0]") for p in problems(text))
