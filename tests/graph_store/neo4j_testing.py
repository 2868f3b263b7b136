"""Helpers for the Neo4j tests: hand-built snapshots, wiping the database, reading it back."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pyarrow as pa
from neo4j import Driver

from cinegraph import schema
from cinegraph.graph_store import server
from cinegraph.graph_store.connection import Neo4jSettings
from cinegraph.graph_store.snapshot_io import write_snapshot

PRIVATE_PASSWORD = "private-test-password"


def wipe(driver: Driver, database: str = "neo4j") -> None:
    """Delete every node and relationship, in batches (constraints and indexes stay)."""
    while driver.execute_query(
        "MATCH (n) WITH n LIMIT 10000 DETACH DELETE n RETURN count(*) AS n", database_=database
    ).records[0]["n"]:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((server.HOST, 0))
        return int(sock.getsockname()[1])


def start_private(home: Path) -> server.ServerStatus:
    """(Re)start the private test server on a fresh port: right after a kill, the old port can stay
    unbindable for a while (the dead server's half-closed connections hold it)."""
    return server.start(home, free_port(), password=PRIVATE_PASSWORD, heap_mb=512, pagecache_mb=128)


def private_settings(home: Path, password: str = PRIVATE_PASSWORD) -> Neo4jSettings:
    """Settings for the private server as it runs now."""
    uri = server.status(home).uri
    assert uri is not None, f"the private server of {home} is not running"
    return Neo4jSettings(uri, "neo4j", password)


def node_table(nt: schema.NodeType, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=nt.arrow_schema())


def edge_table(et: schema.EdgeType, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=et.arrow_schema())


def write_test_snapshot(
    out: Path,
    tables: dict[str, pa.Table],
    *,
    created_at: str = "2026-01-01T00:00:00Z",
    schema_version: int = schema.SCHEMA_VERSION,
) -> Path:
    """A snapshot like the ETL writes, by the same writer: one Parquet per schema type (empty
    where not given) and a manifest with the counts."""
    write_snapshot(out, tables, created_at=created_at, schema_version=schema_version)
    return out


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True)


def graph_rows(driver: Driver, database: str = "neo4j") -> dict[str, list[dict[str, Any]]]:
    """Every node and relationship of the schema, read back as snapshot-shaped rows (sorted), an
    independent path from the loader's own reads."""
    out: dict[str, list[dict[str, Any]]] = {}
    for nt in schema.NODE_TYPES:
        props = ", ".join(f".{c}" for c in nt.columns)
        records = driver.execute_query(f"MATCH (n:{nt.label}) RETURN n {{{props}}} AS row", database_=database).records
        out[nt.label] = sorted((r["row"] for r in records), key=_canonical)
    for et in schema.EDGE_TYPES:
        props = "".join(f", {p.name}: r.{p.name}" for p in et.properties)
        records = driver.execute_query(
            f"MATCH (s:{et.src.label})-[r:{et.rel}]->(d:{et.dst.label}) "
            f"RETURN {{{schema.SRC}: s.{et.src.key}, {schema.DST}: d.{et.dst.key}{props}}} AS row",
            database_=database,
        ).records
        out[et.rel] = sorted((r["row"] for r in records), key=_canonical)
    return out


def expected_rows(tables: dict[str, pa.Table]) -> dict[str, list[dict[str, Any]]]:
    """The snapshot tables in :func:`graph_rows`' shape."""
    empty: dict[str, list[dict[str, Any]]] = {nt.label: [] for nt in schema.NODE_TYPES}
    empty |= {et.rel: [] for et in schema.EDGE_TYPES}
    return empty | {name: sorted(t.to_pylist(), key=_canonical) for name, t in tables.items()}


def small_tables() -> dict[str, pa.Table]:
    """Three users, four movies, genres, people and every kind of property (lists, nulls, floats),
    including a user who tags one movie twice with the same tag and an actor listed twice."""
    return {
        "User": node_table(
            schema.USER,
            [
                {"user_id": 1, "gender": "F", "age": 25, "occupation": "artist", "zip_code": "02139"},
                {"user_id": 2, "gender": None, "age": None, "occupation": None, "zip_code": None},
                {"user_id": 3, "gender": "M", "age": 40, "occupation": "writer", "zip_code": None},
            ],
        ),
        "Movie": node_table(
            schema.MOVIE,
            [
                {
                    "movie_id": 10,
                    "title": "Toy Story",
                    "year": 1995,
                    "tconst": "tt0114709",
                    "imdb_title": "Toy Story",
                    "title_type": "movie",
                    "start_year": 1995,
                    "runtime": 81,
                    "imdb_genres": ["Adventure", "Animation"],
                    "imdb_rating": 8.3,
                    "num_votes": 1_000_000,
                },
                {"movie_id": 20, "title": "Heat", "year": 1995},
                {"movie_id": 30, "title": "Metropolis", "year": 1927, "tconst": "tt0017136", "imdb_genres": []},
                {"movie_id": 40, "title": "Nosferatu", "year": None},
            ],
        ),
        "Genre": node_table(schema.GENRE, [{"name": g} for g in ("Animation", "Crime", "Horror", "Sci-Fi")]),
        "Person": node_table(
            schema.PERSON,
            [
                {
                    "nconst": "nm0000001",
                    "name": "Fritz Lang",
                    "birth_year": 1890,
                    "death_year": 1976,
                    "professions": ["director", "writer"],
                },
                {"nconst": "nm0000002", "name": "Brigitte Helm", "birth_year": 1906},
            ],
        ),
        "RATED": edge_table(
            schema.RATED,
            [
                {"src": 1, "dst": 10, "rating": 4.5, "timestamp": 100},
                {"src": 1, "dst": 20, "rating": 3.0, "timestamp": 200},
                {"src": 2, "dst": 30, "rating": 5.0, "timestamp": 300},
                {"src": 3, "dst": 40, "rating": 0.5, "timestamp": 400},
            ],
        ),
        "TAGGED": edge_table(
            schema.TAGGED,
            [
                {"src": 1, "dst": 10, "tag": "pixar", "timestamp": 110},
                {"src": 3, "dst": 40, "tag": "scary", "timestamp": 410},
                {"src": 3, "dst": 40, "tag": "scary", "timestamp": 420},
                {"src": 3, "dst": 40, "tag": "silent", "timestamp": 410},
            ],
        ),
        "IN_GENRE": edge_table(
            schema.IN_GENRE,
            [
                {"src": 10, "dst": "Animation"},
                {"src": 20, "dst": "Crime"},
                {"src": 30, "dst": "Sci-Fi"},
                {"src": 40, "dst": "Horror"},
            ],
        ),
        "ACTED_IN": edge_table(
            schema.ACTED_IN,
            [
                {"src": "nm0000002", "dst": 30, "characters": ["Maria", "Robot"], "ordering": 1},
                {"src": "nm0000002", "dst": 30, "characters": ["Herself"], "ordering": 5},
            ],
        ),
        "DIRECTED": edge_table(schema.DIRECTED, [{"src": "nm0000001", "dst": 30}]),
        "WROTE": edge_table(schema.WROTE, [{"src": "nm0000001", "dst": 30}]),
        "WORKED_ON": edge_table(
            schema.WORKED_ON,
            [
                {"src": "nm0000001", "dst": 30, "category": "production_designer"},
                {"src": "nm0000001", "dst": 30, "category": "casting_director"},
            ],
        ),
        "KNOWN_FOR": edge_table(schema.KNOWN_FOR, [{"src": "nm0000001", "dst": 30}, {"src": "nm0000002", "dst": 30}]),
    }
