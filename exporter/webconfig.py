"""`--web-config FILE`: TLS and basic auth in the Prometheus exporter-toolkit format.

The format is the one every Go exporter reads (exporter-toolkit's docs/web-configuration.md),
so a platform team can reuse its files: `tls_server_config` (cert_file, key_file,
client_ca_file, client_auth_type, min_version, max_version) and `basic_auth_users` (user →
bcrypt hash). Keys exporter-toolkit knows but this exporter cannot honour are rejected by name
rather than silently ignored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import ssl
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exporter.config import (
    MAX_SECRET_FILE_BYTES,
    ConfigError,
    FileProblem,
    Problem,
    read_small_file,
)

_UNSUPPORTED = (
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
)
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Successful checks are cached (as exporter-toolkit does): bcrypt costs ~100 ms of CPU by
# design, and Prometheus sends the same credentials every scrape.
_AUTH_CACHE_SIZE = 256
# bcrypt runs on its own threads, never the shared pool that renders scrapes and pages, and at
# most this many checks wait or run at once; past that an attempt is refused without hashing.
BCRYPT_THREADS = 1
BCRYPT_PENDING = 4
# Per client address: this many failed attempts are free, then each further one blocks the
# address for twice as long as the last (up to the cap); forgotten after a quiet while.
FREE_FAILURES = 5
BLOCK_BASE_SECONDS = 1.0
BLOCK_CAP_SECONDS = 60.0
FORGET_AFTER_SECONDS = 600.0
MAX_TRACKED_ADDRESSES = 10_000
# Below: fast enough to guess offline; above: each check of a scrape takes seconds of CPU.
WEAK_BCRYPT_COST = 10
SLOW_BCRYPT_COST = 15
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
# bcrypt only reads 72 bytes (and bcrypt>=5 refuses more); longer inputs are checked cut, at the
# same cost, and can never match.
_BCRYPT_MAX_PASSWORD = 72


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServerConfig(_Strict):
    cert_file: Annotated[str, Field(min_length=1)]
    key_file: Annotated[str, Field(min_length=1)]
    client_ca_file: str = ""
    client_auth_type: Literal[
        "NoClientCert", "RequestClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"
    ] = "NoClientCert"
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] = "TLS13"

    @model_validator(mode="before")
    @classmethod
    def _reject_unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _UNSUPPORTED:
                if key in data:
                    raise ValueError(f"{key} is not supported by this exporter; remove it")
        return data

    @model_validator(mode="after")
    def _client_auth(self) -> TLSServerConfig:
        # Same rules as exporter-toolkit: a client CA without a policy is a mistake, and a
        # policy that verifies needs a CA to verify against.
        if self.client_ca_file and self.client_auth_type == "NoClientCert":
            raise ValueError("client_ca_file is set but client_auth_type is NoClientCert")
        if self.client_auth_type != "NoClientCert" and not self.client_ca_file:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file")
        return self


class WebConfigModel(_Strict):
    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)
    http_server_config: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> WebConfigModel:
        for user, hashed in self.basic_auth_users.items():
            # The full shape, not a prefix: a file cut short at reload must not load.
            match = _BCRYPT_HASH.match(hashed)
            if not match or not 4 <= int(match.group(1)) <= 31:
                raise ValueError(f"basic_auth_users.{user}: expected a bcrypt hash ($2y$…)")
        unknown = set(self.http_server_config) - {"headers"}
        if unknown:
            raise ValueError(f"http_server_config: not supported: {', '.join(sorted(unknown))}")
        return self


def bcrypt_cost(hashed: bytes) -> int:
    return int(hashed[4:6])


@dataclass(frozen=True)
class _Users:
    """One generation of basic-auth users and the checks that succeeded against THEM.

    Swapped as one reference at reload: a check in flight during a reload stores its result in
    the generation it started with, which is then discarded, so no old password survives.
    """

    users: Mapping[str, bytes]
    verified: dict[str, bool] = field(default_factory=dict)

    @property
    def dummy(self) -> bytes | None:
        """The costliest user's hash: an unknown user is checked against it, so that a wrong
        name costs exactly as much as a wrong password and reveals no user."""
        return max(self.users.values(), key=bcrypt_cost, default=None)


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


class Throttle:
    """Failed attempts per client address, and how long each address must wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_address: dict[str, _Failures] = {}

    def retry_after(self, address: str) -> float:
        """Seconds this address must still wait before its next attempt is checked (0: none)."""
        entry = self._by_address.get(address)
        if entry is None:
            return 0.0
        now = self._clock()
        if now - entry.last > FORGET_AFTER_SECONDS:
            del self._by_address[address]
            return 0.0
        return max(0.0, entry.blocked_until - now)

    def failed(self, address: str) -> None:
        now = self._clock()
        entry = self._by_address.pop(address, None) or _Failures()
        if now - entry.last > FORGET_AFTER_SECONDS:
            entry = _Failures()
        entry.count += 1
        entry.last = now
        over = entry.count - FREE_FAILURES
        if over > 0:
            entry.blocked_until = now + min(
                BLOCK_CAP_SECONDS, BLOCK_BASE_SECONDS * 2 ** min(over, 16)
            )
        # Re-inserted last: the dict's order is least recently failed first, evicted first.
        self._by_address[address] = entry
        while len(self._by_address) > MAX_TRACKED_ADDRESSES:
            del self._by_address[next(iter(self._by_address))]


@dataclass
class WebConfig:
    """A loaded web config: the TLS context (if any) and the basic-auth users."""

    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _users: _Users = field(default_factory=lambda: _Users({}))
    # The context new TLS connections switch to (after a reload); see `update_from`.
    _tls_current: ssl.SSLContext | None = None
    throttle: Throttle = field(default_factory=Throttle)
    _executor: ThreadPoolExecutor | None = None
    _pending: int = 0

    def __post_init__(self) -> None:
        self._users = _Users(dict(self.users))

    @property
    def auth_required(self) -> bool:
        return bool(self._users.users)

    @staticmethod
    def _check_sync(generation: _Users, user: str, password: bytes) -> bool:
        hashed = generation.users.get(user)
        against = hashed or generation.dummy
        if against is None:
            return False
        ok = bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], against)
        return ok and hashed is not None and len(password) <= _BCRYPT_MAX_PASSWORD

    async def authorize(self, user: str, password: str, address: str) -> str:
        """ "ok", "denied" (wrong credentials) or "throttled" (not checked: too many failures
        from this address, or too many checks waiting)."""
        generation = self._users  # read once: the generation this check belongs to
        raw = password.encode("utf-8", "surrogateescape")
        key = hashlib.sha256(user.encode("utf-8", "surrogateescape") + b"\x00" + raw).hexdigest()
        if generation.verified.get(key):
            return "ok"
        if self.throttle.retry_after(address) > 0 or self._pending >= BCRYPT_PENDING:
            return "throttled"
        if self._executor is None:
            self._executor = ThreadPoolExecutor(BCRYPT_THREADS, thread_name_prefix="bcrypt")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(self._executor, self._check_sync, generation, user, raw)
        finally:
            self._pending -= 1
        if not ok:
            self.throttle.failed(address)
            return "denied"
        if len(generation.verified) >= _AUTH_CACHE_SIZE:
            generation.verified.clear()
        generation.verified[key] = True
        return "ok"

    async def check(self, user: str, password: str) -> bool:
        """Whether the credentials are valid (no throttling: for callers without an address)."""
        return await self.authorize(user, password, "") == "ok"

    def _switch_context(self, ssl_object: Any, _name: str | None, _ctx: ssl.SSLContext) -> None:
        # Called on every ClientHello: the handshake goes on with the newest certificates and
        # client CA. Loading into the listening context would ADD the new CA to the old one.
        if self._tls_current is not None:
            ssl_object.context = self._tls_current

    def update_from(self, other: WebConfig) -> None:
        """Take over `other`'s users, headers and TLS context (for new connections)."""
        self.users = other.users
        self.headers = other.headers
        self.warnings = other.warnings
        self._users = _Users(dict(other.users))
        if self.ssl_context is not None and other.ssl_context is not None:
            self._tls_current = other.ssl_context
            self.ssl_context.sni_callback = self._switch_context

    def shutdown(self) -> None:
        """Stop the bcrypt thread without waiting for a check in progress."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _tls_context(tls: TLSServerConfig, base: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _TLS_VERSIONS[tls.min_version]
    ctx.maximum_version = _TLS_VERSIONS[tls.max_version]
    ctx.load_cert_chain(base / tls.cert_file, base / tls.key_file)
    if tls.client_ca_file:
        ctx.load_verify_locations(cafile=str(base / tls.client_ca_file))
        ctx.verify_mode = (
            ssl.CERT_REQUIRED
            if tls.client_auth_type == "RequireAndVerifyClientCert"
            else ssl.CERT_OPTIONAL
        )
    return ctx


def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate a web config file; raises ConfigError listing the problems.

    A fresh TLS context is built each time; `WebConfig.update_from` makes the running server's
    new connections use it (how SIGHUP rotates certificates and client CAs).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(read_small_file(path, MAX_SECRET_FILE_BYTES))
    except FileProblem as err:
        raise ConfigError([Problem("", f"cannot read web config {path}: {err}")]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError([Problem("", f"web config {path}: invalid YAML{where}")]) from None
    # An empty file (or one cut before its first key) would silently turn TLS and
    # authentication off: a web config must say something.
    if not isinstance(raw, dict) or not raw:
        raise ConfigError([Problem("", f"web config {path} is empty or not a YAML mapping")])
    for key, value in raw.items():
        if value is None:
            raise ConfigError([Problem(str(key), "is empty (a file cut short?)")])
    try:
        model = WebConfigModel.model_validate(raw)
    except ValidationError as err:
        problems = [
            Problem(".".join(str(p) for p in e["loc"]), str(e["msg"]).removeprefix("Value error, "))
            for e in err.errors(include_input=False, include_url=False)
        ]
        raise ConfigError(problems) from None
    base = path.parent
    ssl_context = None
    if model.tls_server_config is not None:
        try:
            ssl_context = _tls_context(model.tls_server_config, base)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(
                [Problem("tls_server_config", f"cannot load certificates: {err}")]
            ) from None
    headers = model.http_server_config.get("headers") or {}
    users = {u: h.encode() for u, h in model.basic_auth_users.items()}
    warnings = []
    for user, hashed in users.items():
        cost = bcrypt_cost(hashed)
        if cost < WEAK_BCRYPT_COST:
            warnings.append(
                f"basic_auth_users.{user}: bcrypt cost {cost} is weak (below "
                f"{WEAK_BCRYPT_COST}): a stolen hash is quick to crack; re-hash with cost 10-12"
            )
        elif cost > SLOW_BCRYPT_COST:
            warnings.append(
                f"basic_auth_users.{user}: bcrypt cost {cost} makes every new client's check "
                "take seconds of CPU; cost 10-12 is the usual choice"
            )
    return WebConfig(
        ssl_context=ssl_context,
        users=users,
        headers={str(k): str(v) for k, v in headers.items()},
        warnings=warnings,
    )


def parse_basic_auth(header: str) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic …` header, None when malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    value = value.strip()
    # Far longer than any user:password pair; base64 of non-ASCII text is a ValueError.
    if len(value) > 4096 or not value.isascii():
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
