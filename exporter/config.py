"""The config file (SPEC §2): YAML, ${VAR} expansion, *_file secrets, strict keys."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from exporter.accounts import AccountBase, Duration, StrictModel
from exporter.families import ALL
from exporter.vendors import REGISTRY

DEFAULT_LISTEN_ADDRESS = "0.0.0.0:9841"
ENV_CONFIG = "CONNECTOR_EXPORTER_CONFIG"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_listen_address(value: str) -> tuple[str, int]:
    """`HOST:PORT` (HOST may be empty or a bracketed IPv6 address) to (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT, e.g. 0.0.0.0:9841")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - an exporter listens on all interfaces by default
    return host, int(port)


ACCOUNT_MODELS: dict[str, type[AccountBase]] = {name: v.account for name, v in REGISTRY.items()}
if TYPE_CHECKING:
    Account = AccountBase
else:
    # The tagged union of every registered vendor's account model.
    Account = Annotated[Union[tuple(ACCOUNT_MODELS.values())], Field(discriminator="vendor")]  # noqa: UP007


class Config(StrictModel):
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    poll_interval: Duration = 300.0
    poll_timeout: Duration = 120.0
    request_timeout: Duration = 30.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console", "auto"] = "auto"
    accounts: Annotated[list[Account], Field(min_length=1)]
    # Cardinality controls as kube-state-metrics has them (--metric-allowlist/-denylist):
    # family names or regular expressions matching whole names; at most one of the two.
    metric_allowlist: tuple[str, ...] = ()
    metric_denylist: tuple[str, ...] = ()

    @field_validator("listen_address")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen_address(value)
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[tuple[str, str]] = set()
        for i, account in enumerate(self.accounts):
            key = (account.vendor, account.name)
            if key in seen:
                raise _AtPath(
                    f"accounts[{i}].name",
                    f"duplicate account name {account.name!r} for vendor {account.vendor}",
                )
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _metric_lists(self) -> Config:
        if self.metric_allowlist and self.metric_denylist:
            raise _AtPath("metric_denylist", "give either metric_allowlist or metric_denylist")
        for key in ("metric_allowlist", "metric_denylist"):
            for i, pattern in enumerate(getattr(self, key)):
                try:
                    matched = _matching(pattern)
                except re.error as err:
                    raise _AtPath(f"{key}[{i}]", f"invalid regular expression: {err}") from None
                if not matched:
                    raise _AtPath(
                        f"{key}[{i}]",
                        f"{pattern!r} matches no metric family (names: see the README's metrics)",
                    )
        return self

    @cached_property
    def enabled_families(self) -> frozenset[str]:
        """The metric families served: all, less the denied, or only the allowed."""
        every = frozenset(f.name for f in ALL)
        if self.metric_allowlist:
            return frozenset().union(*(_matching(p) for p in self.metric_allowlist))
        return every.difference(*(_matching(p) for p in self.metric_denylist))

    def interval_of(self, account: AccountBase) -> float:
        return account.poll_interval or self.poll_interval


def _matching(pattern: str) -> frozenset[str]:
    """The family names `pattern` matches whole (an exact name matches itself)."""
    regex = re.compile(pattern)
    return frozenset(f.name for f in ALL if regex.fullmatch(f.name))


def split_list(value: str) -> list[str]:
    """A comma-separated flag value as a list, blanks dropped (`--metric-denylist a,b`)."""
    return [part.strip() for part in value.split(",") if part.strip()]


class _AtPath(ValueError):
    """A model-level problem that belongs to one key path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config file: where, and what (never the offending value)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """The config file is invalid; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _expand_env(node: Any, path: str, env: Mapping[str, str], problems: list[Problem]) -> Any:
    if isinstance(node, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                problems.append(Problem(path, f"environment variable {name} is not set"))
                return ""
            return env[name]

        return _ENV_REF.sub(sub, node)
    if isinstance(node, dict):
        return {k: _expand_env(v, _join(path, str(k)), env, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, _join(path, i), env, problems) for i, v in enumerate(node)]
    return node


def _read_secret_files(raw: Any, problems: list[Problem], base_dir: Path) -> set[str]:
    """Replace every `<secret>_file: PATH` of an account by `<secret>: <file contents>`.

    Returns the paths of the secrets whose file could not be read, whose absence is then not
    reported a second time as a missing key.
    """
    failed: set[str] = set()
    if not isinstance(raw, dict) or not isinstance(raw.get("accounts"), list):
        return failed
    for i, account in enumerate(raw["accounts"]):
        if not isinstance(account, dict):
            continue
        model = ACCOUNT_MODELS.get(str(account.get("vendor")))
        if model is None:
            continue
        for field in model.SECRET_FIELDS:
            key = f"{field}_file"
            if key not in account:
                continue
            where = f"accounts[{i}].{key}"
            file_value = account.pop(key)
            if field in account:
                problems.append(Problem(where, f"give either {field} or {key}, not both"))
                continue
            failed.add(f"accounts[{i}].{field}")
            if not isinstance(file_value, str) or not file_value:
                problems.append(Problem(where, "expected a file path"))
                continue
            path = Path(file_value)
            if not path.is_absolute():
                path = base_dir / path
            try:
                account[field] = path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as err:
                reason = err.strerror if isinstance(err, OSError) and err.strerror else "unreadable"
                problems.append(Problem(where, f"cannot read {file_value}: {reason}"))
            else:
                failed.discard(f"accounts[{i}].{field}")
    return failed


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    parts = list(loc)
    # Discriminated unions put the tag (e.g. "fivetran") after the list index; users never
    # wrote that key, so it is dropped from the path they see.
    if len(parts) >= 3 and parts[0] == "accounts" and parts[2] in ACCOUNT_MODELS:
        del parts[2]
    for part in parts:
        path = _join(path, part)
    return path


def _problems_from(err: ValidationError) -> Iterator[Problem]:
    for e in err.errors(include_input=False, include_url=False):
        ctx_error = (e.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _AtPath):
            yield Problem(ctx_error.path, ctx_error.message)
            continue
        message = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "union_tag_invalid":
            message = "unknown vendor; expected one of: " + ", ".join(ACCOUNT_MODELS)
        elif e["type"] == "extra_forbidden":
            message = "unknown key"
        elif e["type"] == "missing":
            message = "required key is missing"
        yield Problem(_loc_to_path(e["loc"]), message)


def parse_config(
    text: str,
    *,
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Parse and validate config text; raises ConfigError listing every problem.

    `overrides`: top-level keys set by command-line flags, validated like the file's own.
    """
    env = os.environ if env is None else env
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError([Problem(where, f"invalid YAML: {problem}")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([Problem("", "the config file must be a YAML mapping")])
    problems: list[Problem] = []
    raw = _expand_env(raw, "", env, problems)
    unreadable = _read_secret_files(raw, problems, base_dir or Path.cwd())
    raw.update(overrides or {})
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        problems.extend(p for p in _problems_from(err) if p.path not in unreadable)
        config = None
    if problems or config is None:
        raise ConfigError(problems)
    return config


def load_config(
    path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read, expand and validate the config file at `path` (`overrides`: from flags)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else "unreadable"
        raise ConfigError([Problem("", f"cannot read config file {path}: {reason}")]) from None
    return parse_config(text, env=env, base_dir=path.parent, overrides=overrides)
