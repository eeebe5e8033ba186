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
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exporter.config import ConfigError, Problem

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
# Checked against when the user is unknown, so that a wrong user name costs as much time as a
# wrong password and does not reveal which users exist.
_DUMMY_HASH = bcrypt.hashpw(b"connector-exporter", bcrypt.gensalt(rounds=10))


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
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"basic_auth_users.{user}: expected a bcrypt hash ($2y$…)")
        unknown = set(self.http_server_config) - {"headers"}
        if unknown:
            raise ValueError(f"http_server_config: not supported: {', '.join(sorted(unknown))}")
        return self


@dataclass
class WebConfig:
    """A loaded web config: the TLS context (if any) and the basic-auth users."""

    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    _verified: dict[str, bool] = field(default_factory=dict)

    @property
    def auth_required(self) -> bool:
        return bool(self.users)

    def _check_sync(self, user: str, password: str) -> bool:
        hashed = self.users.get(user)
        ok = bcrypt.checkpw(password.encode(), hashed or _DUMMY_HASH)
        return ok and hashed is not None

    async def check(self, user: str, password: str) -> bool:
        """Whether the credentials are valid; bcrypt runs off the event loop."""
        key = hashlib.sha256(f"{user}\x00{password}".encode()).hexdigest()
        cached = self._verified.get(key)
        if cached is not None:
            return cached
        ok = await asyncio.to_thread(self._check_sync, user, password)
        if ok:
            if len(self._verified) >= _AUTH_CACHE_SIZE:
                self._verified.clear()
            self._verified[key] = True
        return ok

    def update_from(self, other: WebConfig) -> None:
        """Take over `other`'s users and headers; TLS certificates are reloaded in place."""
        self.users = other.users
        self.headers = other.headers
        self._verified = {}


def _tls_context(
    tls: TLSServerConfig, base: Path, context: ssl.SSLContext | None = None
) -> ssl.SSLContext:
    ctx = context or ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
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


def load_web_config(path: str | Path, context: ssl.SSLContext | None = None) -> WebConfig:
    """Read and validate a web config file; raises ConfigError listing the problems.

    With `context`, new certificates are loaded into that existing context, which the running
    server picks up for every new connection (how SIGHUP rotates certificates).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Problem("", f"cannot read web config {path}: {err}")]) from None
    except yaml.YAMLError as err:
        raise ConfigError([Problem("", f"web config {path}: invalid YAML: {err}")]) from None
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
            ssl_context = _tls_context(model.tls_server_config, base, context)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(
                [Problem("tls_server_config", f"cannot load certificates: {err}")]
            ) from None
    headers = model.http_server_config.get("headers") or {}
    return WebConfig(
        ssl_context=ssl_context,
        users={u: h.encode() for u, h in model.basic_auth_users.items()},
        headers={str(k): str(v) for k, v in headers.items()},
    )


def parse_basic_auth(header: str) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic …` header, None when malformed."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
