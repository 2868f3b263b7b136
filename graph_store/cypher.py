"""Run the ready-made ``queries/*.cypher`` files (or any Cypher file) with parameters.

A query file is plain Cypher that also pastes into Neo4j Browser. Its header comments declare the
parameters with example values in Browser syntax (``// :param movie_id => 1``); those values are
the defaults here, ``--param name=value`` overrides them, and an undeclared name is refused. A value
must have its default's type (a number for ``limit``); wherever a query takes a movie id, a title
is accepted too and looked up in the movie title full-text index (the ``find_movie`` query).
Queries run in READ transactions, so a file cannot change the graph.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import neo4j
from neo4j.graph import Node, Relationship
from neo4j.graph import Path as GraphPath

from cinegraph import schema
from cinegraph.errors import CinegraphError

log = logging.getLogger(__name__)

QUERIES_DIR = Path(__file__).resolve().parent / "queries"
_PARAM_LINE = re.compile(r"^\s*//\s*:param\s+(\w+)\s*=>\s*(.+?)\s*;?\s*$")
_PARAM_USE = re.compile(r"\$(\w+)")
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
# Parameters naming a movie: its movie_id, or a title resolved through FIND_MOVIE.
MOVIE_PARAMS = frozenset({"movie_id", "movie_a", "movie_b"})
FIND_MOVIE = "find_movie"
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "text"}


@dataclass(frozen=True)
class CypherFile:
    """One query file: its statement, the parameters it uses and their declared defaults."""

    path: Path
    text: str
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def parameters(self) -> set[str]:
        """Every ``$name`` the statement uses (comments and string literals excluded)."""
        code = "\n".join(line.split("//", 1)[0] for line in self.text.splitlines())
        return set(_PARAM_USE.findall(_STRING_LITERAL.sub("''", code)))


def parse_value(text: str) -> Any:
    """A parameter value as typed on the command line: int, float, null, true/false, a quoted
    string (quotes removed, so ``'"42"'`` stays a string), else the text itself."""
    text = text.strip()
    if text == "null":
        return None
    if text in ("true", "false"):
        return text == "true"
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``["name=value", ...]`` -> ``{name: parsed value}``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip().isidentifier():
            raise CinegraphError(f"--param {pair!r}: expected name=value")
        params[name.strip()] = parse_value(value)
    return params


def available_queries() -> list[str]:
    """Names of the bundled query files."""
    return sorted(p.stem for p in QUERIES_DIR.glob("*.cypher"))


def load_query(name_or_path: str | Path) -> CypherFile:
    """A bundled query by name (``also_rated``) or any ``.cypher`` file by path."""
    path = Path(name_or_path)
    if not path.exists():
        path = QUERIES_DIR / f"{Path(name_or_path).stem}.cypher"
    if not path.is_file():
        raise CinegraphError(
            f"{name_or_path}: no such Cypher file or bundled query (bundled: {', '.join(available_queries())})"
        )
    raw = path.read_text(encoding="utf-8")
    defaults = {}
    for line in raw.splitlines():
        if m := _PARAM_LINE.match(line):
            defaults[m.group(1)] = parse_value(m.group(2))
    statement = raw.strip().rstrip(";").strip()
    if not statement:
        raise CinegraphError(f"{path}: the file holds no statement")
    return CypherFile(path=path, text=statement, defaults=defaults)


def resolve_params(query: CypherFile, given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overridden by ``given``; refuses names the query does not use, parameters it
    uses that have neither a default nor a value, and values of another type than the default
    (all problems in one message). Movie parameters may hold a title (text) until
    :func:`resolve_movies` replaces it by an id."""
    used = query.parameters
    unknown = sorted(set(given) - used)
    if unknown:
        raise CinegraphError(f"{query.path.name}: unknown parameter(s) {unknown}; it takes {sorted(used)}")
    params = {k: v for k, v in query.defaults.items() if k in used} | dict(given)
    missing = sorted(used - set(params))
    if missing:
        raise CinegraphError(f"{query.path.name}: missing parameter(s) {missing}")
    problems = [p for name in sorted(given) if (p := _type_problem(name, given[name], query.defaults.get(name)))]
    if problems:
        raise CinegraphError(f"{query.path.name}: " + "; ".join(problems))
    return {k: float(v) if type(query.defaults.get(k)) is float and type(v) is int else v for k, v in params.items()}


def _type_problem(name: str, value: Any, default: Any) -> str | None:
    """Why ``value`` does not fit parameter ``name`` whose declared default is ``default``."""
    if value is None or (default is None and name not in MOVIE_PARAMS):
        return None  # null is always allowed; a null default declares no type
    expected: tuple[type, ...] = (int, str) if name in MOVIE_PARAMS else (type(default),)
    if float in expected:
        expected += (int,)
    if type(value) in expected:
        return None
    if name in MOVIE_PARAMS:
        return f"{name}={value!r}: expected a movie id (an integer) or a title"
    hint = " (quote it to pass text)" if str in expected else ""
    return f"{name}={value!r}: expected {_TYPE_NAMES.get(type(default), type(default).__name__)}{hint}"


def resolve_movies(driver: neo4j.Driver, params: Mapping[str, Any], *, database: str = "neo4j") -> dict[str, Any]:
    """``params`` with every movie parameter given as a title replaced by the id of the best
    title match (exact titles first); a title matching no movie is an error."""
    out = dict(params)
    finder = load_query(FIND_MOVIE)
    for name in sorted(MOVIE_PARAMS & set(params)):
        title = params[name]
        if not isinstance(title, str):
            continue
        _, rows = run_query(driver, finder, {"title": title, "limit": 1}, database=database)
        if not rows:
            raise CinegraphError(f"{name}={title!r}: no movie title matches (try cinegraph cypher {FIND_MOVIE})")
        out[name] = rows[0]["movie_id"]
        log.info("%s=%r: movie %d %r (%s)", name, title, rows[0]["movie_id"], rows[0]["title"], rows[0]["year"])
    return out


def run_query(
    driver: neo4j.Driver,
    query: CypherFile,
    params: Mapping[str, Any] | None = None,
    *,
    database: str = "neo4j",
) -> tuple[list[str], list[dict[str, Any]]]:
    """Run a query file in a READ transaction (titles given for movie ids looked up first);
    returns ``(column names, rows)``."""
    resolved = resolve_movies(driver, resolve_params(query, params or {}), database=database)
    log.debug("running %s with %s", query.name, resolved)
    try:
        records, _, keys = driver.execute_query(
            query.text, resolved, routing_=neo4j.RoutingControl.READ, database_=database
        )
    except neo4j.exceptions.ClientError as exc:
        raise CinegraphError(f"{query.path.name}: {exc.message}") from exc
    return list(keys), [dict(record.items()) for record in records]


def _node_text(node: Node) -> str:
    label = sorted(node.labels)[0] if node.labels else ""
    try:
        key = node.get(schema.node_type(label).key)
    except KeyError:
        key = node.element_id
    name = node.get("title") or node.get("name")
    suffix = f" {json.dumps(name, ensure_ascii=False)}" if name and name != key else ""
    return f"(:{label} {key}{suffix})"


def format_value(value: Any) -> str:
    """A compact one-line rendering: nodes by label and key, paths as arrows, floats to 4 digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Node):
        return _node_text(value)
    if isinstance(value, Relationship):
        return f"[:{value.type}]"
    if isinstance(value, GraphPath):
        nodes = value.nodes
        parts = [_node_text(nodes[0])]
        for before, rel, after in zip(nodes[:-1], value.relationships, nodes[1:], strict=True):
            forward = rel.start_node is not None and rel.start_node.element_id == before.element_id
            parts += [f"-[:{rel.type}]->" if forward else f"<-[:{rel.type}]-", _node_text(after)]
        return "".join(parts)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


# Control characters and line/paragraph separators, shown escaped: a value must not break a
# table row nor send terminal control sequences.
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def format_table(keys: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """An aligned text table with a row count, for the terminal; one line per row."""
    cells = [[format_value(row[k]).translate(_ESCAPES) for k in keys] for row in rows]
    widths = [max([len(k), *(len(r[i]) for r in cells)]) for i, k in enumerate(keys)]

    def line(values: Sequence[str]) -> str:
        return " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out = [line(keys), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def run_cypher_file(
    driver: neo4j.Driver, file: str | Path, params: Sequence[str] = (), *, database: str = "neo4j"
) -> str:
    """What ``cinegraph cypher FILE --param k=v`` prints: the query's result as a table."""
    query = load_query(file)
    keys, rows = run_query(driver, query, parse_params(params), database=database)
    return format_table(keys, rows)
