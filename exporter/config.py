"""The config file (SPEC §2): YAML, ${VAR} expansion, *_file secrets, strict keys."""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from exporter.accounts import AccountBase, Duration, StrictModel
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

    def interval_of(self, account: AccountBase) -> float:
        return account.poll_interval or self.poll_interval


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
                account[field] = read_small_file(path).rstrip("\r\n")
            except FileProblem as err:
                problems.append(Problem(where, f"cannot read {file_value}: {err}"))
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
    text: str, *, env: Mapping[str, str] | None = None, base_dir: Path | None = None
) -> Config:
    """Parse and validate config text; raises ConfigError listing every problem."""
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
    try:
        config = Config.model_validate(raw)
    except ValidationError as err:
        problems.extend(p for p in _problems_from(err) if p.path not in unreadable)
        config = None
    if problems or config is None:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate the config file at `path`."""
    path = Path(path)
    try:
        text = read_small_file(path, MAX_CONFIG_FILE_BYTES)
    except FileProblem as err:
        raise ConfigError([Problem("", f"cannot read config file {path}: {err}")]) from None
    return parse_config(text, env=env, base_dir=path.parent)
