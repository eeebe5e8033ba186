"""Versori: GET /o/{organisation_id}/connectors, one unit per embedded connection, cursors."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from exporter.accounts import AccountBase
from exporter.model import Connector, Health, PollResult, StateSets
from exporter.vendors.base import (
    Adapter,
    Vendor,
    cursor_pages,
    expect_list,
    expect_mapping,
    optional_cursor,
)
from exporter.vendors.fields import as_list, as_mapping, as_str, parse_timestamp


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
    connection: Mapping[str, Any],
    connector: Mapping[str, Any],
    organisation_id: str,
    now: float,
) -> Connector | None:
    """One connection embedded in a connector to a Connector, as of `now`.

    Only a credential's `errors` and `expiresAt` are read; its `data` (the secret) never is.
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
    expiries: list[float] = []
    severities: set[str] = set()
    for usage in _credentials(connection):
        credential = as_mapping(usage.get("credential"))
        errors = credential.get("errors")
        if not isinstance(errors, list):
            unvalidated = True  # absent (or null): never validated
        elif errors:
            invalid = True
        if (expiry := parse_timestamp(credential.get("expiresAt"))) is not None:
            expiries.append(expiry)
        # The scheme a credential uses, embedded, and the connector's own copy of it.
        scheme = as_mapping(usage.get("authSchemeConfig"))
        severities |= _severities(scheme.get("validationMessages"))
        shared = schemes_by_id.get(as_str(scheme.get("id")), {})
        severities |= _severities(shared.get("validationMessages"))

    expiry = min(expiries) if expiries else None
    expired = expiry is not None and expiry <= now
    # A connection without any credential has nothing validated: `unvalidated`.
    if invalid:
        setup = "invalid"
    elif unvalidated or not any(True for _ in _credentials(connection)):
        setup = "unvalidated"
    else:
        setup = "valid"
    relink = invalid or expired

    # SPEC §5, versori row: the first rule that applies wins.
    if relink:
        health = Health.RELINK_NEEDED
    elif "error" in severities:
        health = Health.BROKEN
    elif "warning" in severities:
        health = Health.DEGRADED
    else:
        health = Health.HEALTHY

    return Connector(
        connector_id=connection_id,
        name=as_str(connection.get("name")),
        integration=as_str(connector.get("name")),
        group=organisation_id,
        end_user="",
        health=health,
        setup_state=setup,
        relink_needed=relink,
        credential_expiry=expiry,
    )


def translate(items: Iterable[Any], organisation_id: str, now: float) -> list[Connector]:
    """Versori connector objects to one Connector per embedded connection."""
    out = []
    for connector in items:
        if not isinstance(connector, Mapping):
            continue
        for connection in as_list(connector.get("connections")):
            if (
                isinstance(connection, Mapping)
                and (c := translate_connection(connection, connector, organisation_id, now))
                is not None
            ):
                out.append(c)
    return out


def parse_page(data: Any) -> tuple[list[Any], str | None]:
    """A ConnectorPage's connectors and its `next` cursor (absent or empty at the end)."""
    body = expect_mapping(data, "response")
    items = expect_list(body.get("connectors"), "response.connectors")
    return items, optional_cursor(body.get("next"))


class VersoriAdapter(Adapter[VersoriAccount]):
    states = STATES

    @staticmethod
    def headers(account: VersoriAccount) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {account.token.get_secret_value()}",
            "Accept": "application/json",
        }

    async def poll(self) -> PollResult:
        org = self.account.organisation_id
        path = f"/o/{org}/connectors"

        async def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            return parse_page(await self.api.get_json(path, {"first": PAGE_SIZE, "after": cursor}))

        connectors: list[Connector] = []
        async for items in cursor_pages(fetch):
            # "Expired" is judged against the time each page arrived.
            connectors.extend(translate(items, org, time.time()))
        return PollResult(connectors=tuple(connectors))


VENDOR = Vendor("versori", VersoriAccount, VersoriAdapter)
