"""Versori: GET /o/{organisation_id}/connectors, one unit per embedded connection, cursors."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from exporter.accounts import AccountBase
from exporter.model import Connector, Health, PollResult, StateSets, first_applying
from exporter.vendors.base import (
    Adapter,
    BearerToken,
    Vendor,
    cursor_at,
    list_at,
)
from exporter.vendors.fields import as_list, as_mapping, as_str


class VersoriAccount(AccountBase):
    SECRET_FIELDS: ClassVar[tuple[str, ...]] = ("token",)

    vendor: Literal["versori"]
    token: SecretStr
    # A ULID in the seed's path parameter; only URL-safe characters are accepted.
    organisation_id: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")]
    base_url: str = "https://platform.versori.com/api/connect/v1"


PAGE_SIZE = 100  # SPEC §4 (`first=100`); the seed's default is 20
# A connection's credentials come in two groups (seed: `credentials.action`, `.trigger`).
CREDENTIAL_GROUPS = ("action", "trigger")

STATES = StateSets(setup=("valid", "invalid", "unvalidated"))


def _credentials(connection: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """Each credential usage of a connection: `{id, authSchemeConfig, credential}` objects."""
    groups = as_mapping(connection.get("credentials"))
    for group in CREDENTIAL_GROUPS:
        for usage in as_list(groups.get(group)):
            if isinstance(usage, Mapping):
                yield usage


def _severities(messages: Any) -> set[str]:
    return {as_str(m.get("severity")).lower() for m in as_list(messages) if isinstance(m, Mapping)}


def translate_connection(
    connection: Mapping[str, Any], connector: Mapping[str, Any], organisation_id: str
) -> Connector | None:
    """One connection embedded in a connector to a Connector.

    Only a credential's `errors` is read; its `data` (the secret) never is. `expiresAt` is not
    read either: connect-v1-openapi.yaml describes it as the time the credential is deleted
    automatically, not as a token expiry (docs/vendors.md, "Versori: decisions").
    """
    connection_id = as_str(connection.get("id"))
    if not connection_id:
        return None
    schemes_by_id = {
        as_str(s.get("id")): s
        for s in as_list(connector.get("authSchemeConfigs"))
        if isinstance(s, Mapping) and as_str(s.get("id"))
    }
    invalid = False
    unvalidated = False
    severities: set[str] = set()
    for usage in _credentials(connection):
        credential = as_mapping(usage.get("credential"))
        errors = credential.get("errors")
        if not isinstance(errors, list):
            # Absent (or null): no validation result. The Go server omits an empty list
            # (`x-go-type-skip-optional-pointer`, i.e. omitempty), so this is also how a valid
            # credential arrives: a state to show, never a fault.
            unvalidated = True
        elif errors:
            invalid = True
        # The scheme a credential uses, embedded, and the connector's own copy of it.
        scheme = as_mapping(usage.get("authSchemeConfig"))
        severities |= _severities(scheme.get("validationMessages"))
        shared = schemes_by_id.get(as_str(scheme.get("id")), {})
        severities |= _severities(shared.get("validationMessages"))

    # A connection without any credential has nothing validated: `unvalidated`.
    if invalid:
        setup = "invalid"
    elif unvalidated or not any(True for _ in _credentials(connection)):
        setup = "unvalidated"
    else:
        setup = "valid"
    relink = invalid

    # SPEC §5, versori row: the first rule that applies wins. An `expiresAt` in the past is not
    # a relink: it is when Versori deletes the credential (see translate_connection's doc).
    health = first_applying(
        (relink, Health.RELINK_NEEDED),
        ("error" in severities, Health.BROKEN),
        ("warning" in severities, Health.DEGRADED),
        otherwise=Health.HEALTHY,
    )

    return Connector(
        connector_id=connection_id,
        name=as_str(connection.get("name")),
        integration=as_str(connector.get("name")),
        group=organisation_id,
        end_user="",
        health=health,
        setup_state=setup,
        relink_needed=relink,
    )


def translate(items: Iterable[Any], organisation_id: str) -> list[Connector]:
    """Versori connector objects to one Connector per embedded connection."""
    out = []
    for connector in items:
        if not isinstance(connector, Mapping):
            continue
        for connection in as_list(connector.get("connections")):
            if (
                isinstance(connection, Mapping)
                and (c := translate_connection(connection, connector, organisation_id)) is not None
            ):
                out.append(c)
    return out


def parse_page(data: Any) -> tuple[list[Any], str | None]:
    """A ConnectorPage's connectors and its `next` cursor (absent or empty at the end)."""
    return list_at(data, "connectors"), cursor_at(data, "next")


class VersoriAdapter(BearerToken, Adapter[VersoriAccount]):
    states = STATES

    async def poll(self) -> PollResult:
        org = self.account.organisation_id
        path = f"/o/{org}/connectors"
        connectors: list[Connector] = []
        async for items in self.cursor_listing(path, parse_page, ("first", PAGE_SIZE), "after"):
            connectors.extend(translate(items, org))
        return PollResult(connectors=tuple(connectors))


# Versori documents no rate limit; the default floor keeps the exporter a polite client.
MIN_POLL_INTERVAL_SECONDS = 60.0
RATE_LIMIT = "Versori publishes no rate limit; the exporter stays a polite client"

VENDOR = Vendor(
    "versori",
    VersoriAccount,
    VersoriAdapter,
    min_poll_interval=MIN_POLL_INTERVAL_SECONDS,
    rate_limit=RATE_LIMIT,
)
