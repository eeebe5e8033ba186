"""What every account of the config file is, whatever its vendor (SPEC §2).

Each vendor module (`exporter/vendors/<vendor>.py`) subclasses `AccountBase` with its own keys;
the config module builds its account union from the vendor registry.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Annotated, Any, ClassVar

import re2  # type: ignore[import-untyped]  # google-re2 ships no type hints
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
MAX_DURATION_SECONDS = 7 * 86400.0
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """`30s`, `5m`, `1h`, `1.5h` or a plain number of seconds, to seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h or a number of seconds")
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (m := _DURATION.match(value)):
            seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        else:
            raise ValueError("expected a duration such as 30s, 5m, 1h or a number of seconds")
    except OverflowError:  # an integer past float range
        seconds = math.inf
    # .inf/.nan (YAML) and 400-digit numbers would pass a plain > 0 check and crash the
    # scheduler at start; a week is far beyond any sensible poll or timeout.
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("must be a finite number of seconds greater than zero")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError("must be at most 7d")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]

# include/exclude run on every connector name of every poll, on the event loop: RE2 matches in
# linear time, so no pattern (`(a+)+$`) and no vendor-chosen name can freeze the daemon.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # RE2 would print parse errors to stderr itself
# C0 and C1 controls: a newline or NUL in a token (a token file written with `echo`, a copied
# value) breaks the request headers, and the HTTP library then quotes the whole token in its
# exception. Rejected at load with the key named, never the value.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


@functools.lru_cache(maxsize=1024)
def compile_filter(pattern: str) -> Any:
    """A filter pattern compiled by RE2; raises ValueError for what RE2 cannot take."""
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as err:
        raw = err.args[0] if err.args else b""
        detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise ValueError(
            f"invalid regular expression: {detail} (RE2 syntax: no lookarounds nor backreferences)"
        ) from None


class StrictModel(BaseModel):
    """Unknown keys are errors (SPEC §2); a loaded config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DropGuard(StrictModel):
    """`drop_guard:` hold a listing that collapsed until it is seen on several polls in a row.

    A vendor answering an empty (or a tenth of the) listing during an incident would otherwise
    wipe every series, and every alert with them.
    """

    # The share of the last good listing that may vanish in one poll (0.5: half).
    max_drop: Annotated[float, Field(gt=0, lt=1)]
    # Polls in a row that must show the shrunken listing before it is believed.
    confirm_polls: Annotated[int, Field(ge=2, le=100)] = 3


class AccountBase(StrictModel):
    """Keys every account accepts, whatever its vendor."""

    # Keys holding secrets: each also accepts `<key>_file`, and they never reach logs or errors.
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ()

    vendor: str  # each vendor's model narrows it to its Literal name (the union's tag)
    name: Annotated[str, Field(min_length=1, max_length=128)]
    base_url: str
    poll_interval: Duration | None = None
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    # The key that signs this account's webhooks (SPEC §6.2); webhooks are refused without it.
    webhook_secret: SecretStr | None = None
    drop_guard: DropGuard | None = None

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("include", "exclude")
    @classmethod
    def _check_patterns(cls, value: list[str]) -> list[str]:
        for i, pattern in enumerate(value):
            try:
                compile_filter(pattern)
            except ValueError as err:
                raise ValueError(f"item {i}: {err}") from None
        return value

    @field_validator("*")
    @classmethod
    def _secrets_printable(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name in cls.SECRET_FIELDS:
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if isinstance(text, str) and _CONTROL.search(text):
                raise ValueError(
                    "contains a control character (a newline inside a token file?); "
                    "secrets must be printable"
                )
        return value

    @property
    def key(self) -> str:
        """`vendor/name`: unique in a config, the account's identity across reloads."""
        return f"{self.vendor}/{self.name}"

    def keeps(self, name: str) -> bool:
        """Whether a connector of this name passes the include/exclude filters (SPEC §2)."""
        if self.include and not any(compile_filter(p).search(name) for p in self.include):
            return False
        return not any(compile_filter(p).search(name) for p in self.exclude)

    @classmethod
    def secret_fields(cls) -> tuple[str, ...]:
        """The vendor's secret keys and the webhook key every account may have."""
        return (*cls.SECRET_FIELDS, "webhook_secret")

    def secret_values(self) -> list[str]:
        """Every secret of this account in clear, so that logs and errors can redact them."""
        out = []
        for field in self.secret_fields():
            value = getattr(self, field, None)
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
        return out


class CatalogAndConnections(AccountBase):
    """Vendors with two listings (a connector catalog and connections); at least one is polled."""

    catalog: bool = True
    connections: bool = True

    @model_validator(mode="wrap")
    @classmethod
    def _something_to_poll(
        cls, data: Any, handler: ModelWrapValidatorHandler[CatalogAndConnections]
    ) -> CatalogAndConnections:
        # Judged on the raw keys around the field validation, not after it: an error in another
        # field of the account must not hide this one (check-config lists all in one pass).
        nothing = isinstance(data, dict) and not any(
            _lax_bool(data.get(key, True)) for key in ("catalog", "connections")
        )
        error = InitErrorDetails(
            type=PydanticCustomError(
                "nothing_to_poll", "catalog and connections are both false: nothing to poll"
            ),
            loc=(),
            # the two keys only: the account's other keys hold its secrets
            input={key: data[key] for key in ("catalog", "connections") if key in data}
            if isinstance(data, dict)
            else None,
        )
        try:
            account = handler(data)
        except ValidationError as err:
            if not nothing:
                raise
            # Every field error is pydantic's own type (account fields raise no custom ones),
            # so each can be rebuilt from its type, location, input and context.
            errors = [
                InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e["ctx"])
                if "ctx" in e
                else InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"])
                for e in err.errors()
            ]
            raise ValidationError.from_exception_data(err.title, [*errors, error]) from None
        if nothing:
            raise ValidationError.from_exception_data(cls.__name__, [error])
        return account


_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


def _lax_bool(value: object) -> bool:
    """`value` as the bool field will read it; a value it will refuse counts as true (that
    field's own error is reported instead)."""
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        return True
