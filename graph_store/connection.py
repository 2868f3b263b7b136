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

from graph_store.errors import CinegraphError

URI_VAR, USER_VAR, PASSWORD_VAR = "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD"
_DATABASE_NOT_FOUND = "Neo.ClientError.Database.DatabaseNotFound"
DEFAULT_URI, DEFAULT_USER = "bolt://127.0.0.1:7687", "neo4j"


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
    return Neo4jSettings(env.get(URI_VAR, DEFAULT_URI), env.get(USER_VAR, DEFAULT_USER), password)


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
