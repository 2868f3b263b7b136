"""Opening a Neo4j driver at the edge (CLI, flows, benchmarks) and turning connection failures into
one-line :class:`CinegraphError` messages. Library functions take the open driver as an argument."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from neo4j import Driver, GraphDatabase
from neo4j.exceptions import AuthError, ClientError, ServiceUnavailable, SessionExpired

from cinegraph.errors import CinegraphError

URI_VAR, USER_VAR, PASSWORD_VAR = "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"
_DATABASE_NOT_FOUND = "Neo.ClientError.Database.DatabaseNotFound"
DEFAULT_URI, DEFAULT_USER = "bolt://127.0.0.1:7687", "neo4j"
URI_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")


@dataclass(frozen=True)
class Neo4jSettings:
    uri: str
    user: str
    password: str = field(repr=False)  # never shown in logs or tracebacks


def settings_from_env(env: Mapping[str, str] = os.environ) -> Neo4jSettings:
    """NEO4J_URI / NEO4J_USER (defaulted) and NEO4J_PASSWORD (required)."""
    password = env.get(PASSWORD_VAR)
    if not password:
        raise CinegraphError(f"{PASSWORD_VAR} is not set: export the Neo4j password before running")
    uri = env.get(URI_VAR, DEFAULT_URI)
    check_uri(uri)
    return Neo4jSettings(uri, env.get(USER_VAR, DEFAULT_USER), password)


def check_uri(uri: str) -> None:
    """Refuse a URI the driver cannot use, naming what is wrong, before any connection."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as exc:
        raise CinegraphError(f"{URI_VAR}={uri!r}: {exc}") from None
    if parts.scheme not in URI_SCHEMES:
        raise CinegraphError(f"{URI_VAR}={uri!r}: the scheme must be one of {', '.join(URI_SCHEMES)}")
    if not parts.hostname:
        raise CinegraphError(f"{URI_VAR}={uri!r}: no host (expected e.g. {DEFAULT_URI})")
    if port == 0:
        raise CinegraphError(f"{URI_VAR}={uri!r}: port 0 is not a port")


@contextmanager
def open_driver(settings: Neo4jSettings, *, verify: bool = True, **config: Any) -> Iterator[Driver]:
    """``with open_driver(settings) as driver:`` — connectivity and auth are checked up front, and a
    lost server or rejected login anywhere inside the block becomes a one-line CinegraphError.
    ``config`` goes to the driver (e.g. ``max_transaction_retry_time``). Server notifications are
    off by default: the schema's types legitimately do not exist yet in an empty graph."""
    config.setdefault("notifications_min_severity", "OFF")
    try:
        driver = GraphDatabase.driver(settings.uri, auth=(settings.user, settings.password), **config)
    except ValueError as exc:  # the driver's answer to a malformed URI
        raise CinegraphError(f"{URI_VAR}={settings.uri!r}: {_first_line(exc)}") from exc
    try:
        with driver:
            if verify:
                driver.verify_connectivity()
            yield driver
    except AuthError as exc:
        raise CinegraphError(
            f"Neo4j at {settings.uri} rejected user {settings.user!r}: check {USER_VAR}/{PASSWORD_VAR}"
        ) from exc
    except (ServiceUnavailable, SessionExpired) as exc:
        raise CinegraphError(
            f"cannot reach Neo4j at {settings.uri} ({_first_line(exc)}); is it running? "
            "(cinegraph neo4j start, or docker compose up neo4j)"
        ) from exc
    except ClientError as exc:
        if exc.code != _DATABASE_NOT_FOUND:
            raise
        raise CinegraphError(f"Neo4j at {settings.uri}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
