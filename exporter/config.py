"""The config file (SPEC §2): YAML, ${VAR} expansion, *_file secrets, strict keys."""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import math
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from exporter.accounts import AccountBase, Duration, StrictModel, parse_duration
from exporter.families import ALL
from exporter.vendors import REGISTRY

DEFAULT_LISTEN_ADDRESS = "0.0.0.0:9841"
ENV_CONFIG = "CONNECTOR_EXPORTER_CONFIG"
# A `*_file` holds one token; the config and web config files are small too. A FIFO, a device
# (/dev/zero) or a huge file in their place must fail the load with a message, not hang it or
# exhaust memory.
MAX_SECRET_FILE_BYTES = 64 * 1024
MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024
FILE_READ_TIMEOUT_SECONDS = 5.0
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


_HOSTNAME = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
LISTEN_ADDRESS_FORMS = "HOST:PORT, e.g. 127.0.0.1:9841, 0.0.0.0:9841, :9841 or [::1]:9841"


def parse_listen_address(value: str) -> tuple[str, int]:
    """`HOST:PORT` (HOST may be empty, a name, IPv4, or IPv6 in brackets) to (host, port).

    Port 0 asks the system for a free port. Raises ValueError saying which part is wrong.
    """
    host, sep, port = value.strip().rpartition(":")
    if not sep:
        raise ValueError(f"the port is missing: expected {LISTEN_ADDRESS_FORMS}")
    if not (port.isascii() and port.isdigit()):
        raise ValueError(
            f"the port must be a number from 0 to 65535: expected {LISTEN_ADDRESS_FORMS}"
        )
    if int(port) > 65535:
        raise ValueError("the port must be a number from 0 to 65535")
    if host.startswith("[") or host.endswith("]"):
        inner = host[1:-1] if host.startswith("[") and host.endswith("]") else None
        try:
            ipaddress.IPv6Address(inner or "")
        except ValueError:
            raise ValueError("expected an IPv6 address in brackets, e.g. [::1]:9841") from None
        return inner or "", int(port)
    if ":" in host:
        raise ValueError("write an IPv6 address in brackets, e.g. [::1]:9841")
    if not host:
        return "0.0.0.0", int(port)  # noqa: S104 - an exporter listens on all interfaces by default
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError("the host is not a valid IPv4 address") from None
    elif not _HOSTNAME.match(host):
        raise ValueError("the host is not a valid host name or IP address")
    return host, int(port)


def is_loopback_url(url: str) -> bool:
    """Whether `url` points at this machine (127.0.0.0/8, ::1, localhost): simulators, tests."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _seconds_text(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


ACCOUNT_MODELS: dict[str, type[AccountBase]] = {name: v.account for name, v in REGISTRY.items()}
if TYPE_CHECKING:
    Account = AccountBase
else:
    # The tagged union of every registered vendor's account model.
    Account = Annotated[Union[tuple(ACCOUNT_MODELS.values())], Field(discriminator="vendor")]  # noqa: UP007


DEFAULT_WEBHOOK_BODY_BYTES = 1024 * 1024
# A vendor event is a few kilobytes; past this a "webhook" is an attack on memory, not an event.
MAX_WEBHOOK_BODY_BYTES = 16 * 1024 * 1024


class WebhooksConfig(StrictModel):
    """The webhook listener (SPEC §6.2): its own address, so /metrics can stay internal."""

    listen_address: str
    max_body_bytes: Annotated[int, Field(ge=1024, le=MAX_WEBHOOK_BODY_BYTES)] = (
        DEFAULT_WEBHOOK_BODY_BYTES
    )

    @field_validator("listen_address")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen_address(value)
        return value


class Config(StrictModel):
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    poll_interval: Duration = 300.0
    poll_timeout: Duration = 120.0
    request_timeout: Duration = 30.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console", "auto"] = "auto"
    accounts: Annotated[list[Account], Field(min_length=1)]
    webhooks: WebhooksConfig | None = None
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
    def _across_accounts(self, info: ValidationInfo) -> Config:
        # parse_config runs these itself, over every account (valid or not), to list them all.
        if info.context and info.context.get(_COLLECTING):
            return self
        names = ((i, a.vendor, a.name) for i, a in enumerate(self.accounts))
        problems = [
            *duplicate_names(names),
            *poll_floor_problems(self.poll_interval, enumerate(self.accounts)),
        ]
        if problems:
            raise _AtPath(problems[0].path, problems[0].message)
        return self

    @model_validator(mode="after")
    def _webhook_vendors(self) -> Config:
        for i, account in enumerate(self.accounts):
            if account.webhook_secret is not None and REGISTRY[account.vendor].webhook is None:
                raise _AtPath(
                    f"accounts[{i}].webhook_secret",
                    f"{account.vendor} sends no webhooks (see docs/webhooks.md)",
                )
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


_COLLECTING = "collect_problems"  # validation context: cross-account checks run separately


def duplicate_names(accounts: Iterable[tuple[int, str, str]]) -> list[Problem]:
    """(index, vendor, name) of each account: one problem per repeated name within a vendor."""
    problems = []
    seen: set[tuple[str, str]] = set()
    for i, vendor, name in accounts:
        if (vendor, name) in seen:
            problems.append(
                Problem(
                    f"accounts[{i}].name", f"duplicate account name {name!r} for vendor {vendor}"
                )
            )
        seen.add((vendor, name))
    return problems


def poll_floor_problems(
    default_interval: float | None, accounts: Iterable[tuple[int, AccountBase]]
) -> list[Problem]:
    """Accounts that would poll a real vendor API faster than that vendor's documented floor.

    Loopback base URLs (the simulators, tests) are exempt. `default_interval` is the top-level
    poll_interval (None when it is itself invalid: then only per-account overrides are checked).
    """
    problems = []
    for i, account in accounts:
        vendor = REGISTRY[account.vendor]
        interval = account.poll_interval or default_interval
        if interval is None or interval >= vendor.min_poll_interval:
            continue
        if is_loopback_url(account.base_url):
            continue
        own = account.poll_interval is not None
        path = f"accounts[{i}].poll_interval" if own else "poll_interval"
        whose = "" if own else f" (the default of accounts[{i}], {vendor.name} {account.name!r})"
        problems.append(
            Problem(
                path,
                f"must be at least {_seconds_text(vendor.min_poll_interval)} for {vendor.name}"
                f"{whose}: {vendor.rate_limit}; only loopback base_url (simulators, tests) may"
                " poll faster",
            )
        )
    return problems


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


class FileProblem(Exception):
    """A file that cannot be used; the message says why, without its contents."""


def _read_bounded(path: Path, limit: int) -> bytes:
    # O_NONBLOCK: opening a FIFO with no writer would otherwise block for ever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem("not a regular file")
        if info.st_size > limit:
            raise FileProblem(f"larger than {limit // 1024} KiB")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > limit:  # grew while we read it
                raise FileProblem(f"larger than {limit // 1024} KiB")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_small_file(
    path: str | Path, limit: int = MAX_SECRET_FILE_BYTES, timeout: float = FILE_READ_TIMEOUT_SECONDS
) -> str:
    """A regular file of at most `limit` bytes as UTF-8 text, read within `timeout` seconds.

    Raises FileProblem. The read runs on a daemon thread: a file on a hung network mount then
    costs one parked thread, never the reload (nor the exit, which does not wait for it).
    """
    result: list[bytes | BaseException] = []

    def read() -> None:
        try:
            result.append(_read_bounded(Path(path), limit))
        except BaseException as err:  # handed to the caller below
            result.append(err)

    reader = threading.Thread(target=read, name="file-read", daemon=True)
    reader.start()
    reader.join(timeout)
    if not result:
        raise FileProblem(f"not read within {timeout:g}s")
    outcome = result[0]
    if isinstance(outcome, FileProblem):
        raise outcome
    if isinstance(outcome, OSError):
        raise FileProblem(outcome.strerror or "unreadable") from None
    if isinstance(outcome, BaseException):
        raise FileProblem(f"unreadable ({type(outcome).__name__})") from None
    try:
        return outcome.decode("utf-8")
    except UnicodeDecodeError:
        raise FileProblem("not UTF-8 text") from None


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
        for field in model.secret_fields():
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
                account[field] = read_small_file(path).rstrip("\r\n")
            except FileProblem as err:
                problems.append(Problem(where, f"cannot read {file_value}: {err}"))
            else:
                failed.discard(f"accounts[{i}].{field}")
    return failed


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    parts = list(loc)
    # Discriminated unions put the tag (the vendor name) after the list index; users never
    # wrote that key, so it is dropped from the path they see.
    if len(parts) >= 3 and parts[0] == "accounts" and parts[2] in ACCOUNT_MODELS:
        del parts[2]
    for part in parts:
        path = _join(path, part)
    return path


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field's annotation (through Optional, list, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the mapping at `loc` (a pydantic error location, minus its last part) accepts."""
    parts = list(loc)
    model: type[BaseModel] = Config
    if len(parts) >= 3 and parts[0] == "accounts" and parts[2] in ACCOUNT_MODELS:
        model, parts = ACCOUNT_MODELS[str(parts[2])], parts[3:]
    for part in parts:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        sub = _model_in(field.annotation) if field is not None else None
        if sub is None:
            return []
        model = sub
    keys = [field.alias or name for name, field in model.model_fields.items()]
    if issubclass(model, AccountBase):
        keys += [f"{secret}_file" for secret in model.SECRET_FIELDS]
    return keys


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for the closest of `choices`, or nothing when none is close."""
    by_lower = {c.lower(): c for c in choices}
    # 0.7: catches typos and missing prefixes ("intervall", "interval") but not unrelated words.
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.7)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def _problems_from(err: ValidationError, prefix: tuple[int | str, ...] = ()) -> Iterator[Problem]:
    for e in err.errors(include_input=False, include_url=False):
        ctx = e.get("ctx") or {}
        ctx_error = ctx.get("error")
        loc = (*prefix, *e["loc"])
        if isinstance(ctx_error, _AtPath):
            yield Problem(ctx_error.path, ctx_error.message)
            continue
        message = str(e["msg"]).removeprefix("Value error, ")
        if e["type"] == "union_tag_invalid":
            # The vendor name is never a secret, so it may be matched against the known ones.
            hint = _did_you_mean(str(ctx.get("tag", "")), ACCOUNT_MODELS)
            message = f"unknown vendor{hint}; expected one of: " + ", ".join(ACCOUNT_MODELS)
        elif e["type"] == "union_tag_not_found":
            loc = (*loc, "vendor")
            message = "required key is missing; one of: " + ", ".join(ACCOUNT_MODELS)
        elif e["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(str(loc[-1]), known_keys(loc[:-1]))
        elif e["type"] == "missing":
            message = "required key is missing"
        yield Problem(_loc_to_path(loc), message)


ACCOUNT: TypeAdapter[AccountBase] = TypeAdapter(Account)


def _account_index(problem: Problem) -> float:
    match = re.match(r"accounts\[(\d+)\]", problem.path)
    return int(match.group(1)) if match else math.inf


def _collect(raw: dict[str, Any]) -> tuple[Config | None, list[Problem]]:
    """Validate every account on its own, then the top level and the cross-account checks, so
    that one account's field error hides nothing else: every problem comes out in one pass.
    """
    accounts_raw = raw.get("accounts")
    account_problems: list[Problem] = []
    valid: list[tuple[int, AccountBase]] = []
    names: list[tuple[int, str, str]] = []
    if isinstance(accounts_raw, list):
        for i, item in enumerate(accounts_raw):
            try:
                valid.append((i, ACCOUNT.validate_python(item)))
            except ValidationError as err:
                account_problems.extend(_problems_from(err, ("accounts", i)))
            # Names are compared as written, so that an account with a field error of its own
            # still shows up as another's duplicate.
            if (
                isinstance(item, dict)
                and isinstance(item.get("vendor"), str)
                and item["vendor"] in ACCOUNT_MODELS
                and isinstance(item.get("name"), str)
            ):
                names.append((i, item["vendor"], item["name"]))
    # The top level sees only the accounts that validated; their own errors are already listed.
    listed = isinstance(accounts_raw, list) and bool(accounts_raw)
    top = {**raw, "accounts": [a for _, a in valid]} if listed else raw
    config: Config | None = None
    top_problems: list[Problem] = []
    try:
        config = Config.model_validate(top, context={_COLLECTING: True})
    except ValidationError as err:
        top_problems = [p for p in _problems_from(err) if not (listed and p.path == "accounts")]
    default_interval: float | None = None
    if config is not None:
        default_interval = config.poll_interval
    else:
        with contextlib.suppress(ValueError):  # already reported as a top-level problem
            default_interval = parse_duration(
                raw.get("poll_interval", Config.model_fields["poll_interval"].default)
            )
    cross = [*duplicate_names(names), *poll_floor_problems(default_interval, valid)]
    # Listed in the file's order: keys above `accounts`, the accounts, then the rest.
    fields = list(Config.model_fields)
    before = set(fields[: fields.index("accounts")])
    head = [p for p in top_problems if re.split(r"[.\[]", p.path)[0] in before]
    tail = [p for p in top_problems if p not in head]
    problems = [*head, *sorted([*account_problems, *cross], key=_account_index), *tail]
    return (None if problems else config), problems


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
    config, found = _collect(raw)
    problems.extend(p for p in found if p.path not in unreadable)
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
        text = read_small_file(path, MAX_CONFIG_FILE_BYTES)
    except FileProblem as err:
        raise ConfigError([Problem("", f"cannot read config file {path}: {err}")]) from None
    return parse_config(text, env=env, base_dir=path.parent, overrides=overrides)
