"""The single source of truth for the cinegraph property graph.

Every label, relationship type, key and property is spelled here and nowhere else. The ETL writes
snapshot tables with :func:`node_arrow_schema` / :func:`edge_arrow_schema`, the Neo4j loader derives
its constraints and Cypher from the same objects, and the HeteroData builder reads :func:`metadata`
(PyG's ``(node_types, edge_types)`` pair, as ``HGTConv(metadata=...)`` expects).

Snapshot layout (``OUT/snapshot/``)::

    manifest.json
    matches.parquet
    nodes/<Label>.parquet      key column + properties
    edges/<REL>.parquet        src, dst (the endpoint keys) + properties
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SCHEMA_VERSION = 1

NodeTypeName = str
EdgeTriplet = tuple[str, str, str]
Metadata = tuple[list[NodeTypeName], list[EdgeTriplet]]

REVERSE_PREFIX = "rev_"
SRC, DST = "src", "dst"
NODES_DIR, EDGES_DIR = "nodes", "edges"
MANIFEST_FILE = "manifest.json"
MATCHES_FILE = "matches.parquet"
# The longest UTF-8 string (bytes) a Neo4j 5.26 index accepts, measured by bisection on the
# embedded server: a RANGE index (so a key's uniqueness constraint) and a TEXT index.
INDEX_MAX_BYTES = {"RANGE": 8_164, "TEXT": 32_766}


@dataclass(frozen=True)
class Property:
    name: str
    type: pa.DataType
    doc: str = ""
    # Neo4j index for lookups by this property: "RANGE" (exact) or "TEXT" (CONTAINS / STARTS
    # WITH searches), values up to INDEX_MAX_BYTES; None for no index.
    index: str | None = None


@dataclass(frozen=True)
class NodeType:
    label: str
    key: str
    key_type: pa.DataType
    properties: tuple[Property, ...] = ()
    doc: str = ""

    @property
    def columns(self) -> list[str]:
        return [self.key, *(p.name for p in self.properties)]

    def arrow_schema(self) -> pa.Schema:
        fields = [pa.field(self.key, self.key_type, nullable=False)]
        fields += [pa.field(p.name, p.type) for p in self.properties]
        return pa.schema(fields)


@dataclass(frozen=True)
class EdgeType:
    rel: str
    src: NodeType
    dst: NodeType
    properties: tuple[Property, ...] = ()
    doc: str = ""
    # Properties that, with (src, dst), identify one relationship: the loader MERGEs on them and
    # syncs incrementally by them. Empty: at most one relationship per (src, dst).
    identity: tuple[str, ...] = ()

    @property
    def triplet(self) -> EdgeTriplet:
        return (self.src.label, self.rel, self.dst.label)

    @property
    def reverse_triplet(self) -> EdgeTriplet:
        return (self.dst.label, REVERSE_PREFIX + self.rel, self.src.label)

    @property
    def columns(self) -> list[str]:
        return [SRC, DST, *(p.name for p in self.properties)]

    def arrow_schema(self) -> pa.Schema:
        fields = [
            pa.field(SRC, self.src.key_type, nullable=False),
            pa.field(DST, self.dst.key_type, nullable=False),
        ]
        fields += [pa.field(p.name, p.type) for p in self.properties]
        return pa.schema(fields)


# --- node types -------------------------------------------------------------------------------

USER = NodeType(
    "User",
    key="user_id",
    key_type=pa.int64(),
    properties=(
        Property("gender", pa.string(), "M/F, ml-100k and ml-1m only"),
        Property("age", pa.int32(), "age (ml-100k) or age bucket (ml-1m)"),
        Property("occupation", pa.string(), "occupation name, ml-100k and ml-1m only"),
        Property("zip_code", pa.string(), "ml-100k and ml-1m only"),
    ),
    doc="A MovieLens rater.",
)

MOVIE = NodeType(
    "Movie",
    key="movie_id",
    key_type=pa.int64(),
    properties=(
        Property("title", pa.string(), "MovieLens title without the year", index="TEXT"),
        Property("year", pa.int32(), "year parsed from the MovieLens title"),
        Property("tconst", pa.string(), "matched IMDb title id, null when unmatched", index="RANGE"),
        Property("imdb_title", pa.string(), "IMDb primaryTitle"),
        Property("title_type", pa.string(), "IMDb titleType"),
        Property("start_year", pa.int32(), "IMDb startYear"),
        Property("runtime", pa.int32(), "IMDb runtimeMinutes"),
        Property("imdb_genres", pa.list_(pa.string()), "IMDb genres"),
        Property("imdb_rating", pa.float64(), "IMDb averageRating"),
        Property("num_votes", pa.int64(), "IMDb numVotes"),
    ),
    doc="A MovieLens movie, enriched with its matched IMDb title.",
)

GENRE = NodeType("Genre", key="name", key_type=pa.string(), doc="A MovieLens genre.")
NO_GENRES = "(no genres listed)"  # MovieLens's marker for a movie without genres; never a GENRE

PERSON = NodeType(
    "Person",
    key="nconst",
    key_type=pa.string(),
    properties=(
        Property("name", pa.string(), "IMDb primaryName", index="TEXT"),
        Property("birth_year", pa.int32()),
        Property("death_year", pa.int32()),
        Property("professions", pa.list_(pa.string()), "IMDb primaryProfession"),
    ),
    doc="An IMDb person linked to at least one matched movie.",
)

NODE_TYPES: tuple[NodeType, ...] = (USER, MOVIE, GENRE, PERSON)

# --- edge types -------------------------------------------------------------------------------

RATED = EdgeType(
    "RATED",
    USER,
    MOVIE,
    (Property("rating", pa.float32()), Property("timestamp", pa.int64(), "unix seconds")),
)
TAGGED = EdgeType(
    "TAGGED",
    USER,
    MOVIE,
    (Property("tag", pa.string()), Property("timestamp", pa.int64(), "unix seconds")),
    doc="One row per (user, movie, tag); a user may tag a movie several times.",
    identity=("tag", "timestamp"),
)
IN_GENRE = EdgeType("IN_GENRE", MOVIE, GENRE)
ACTED_IN = EdgeType(
    "ACTED_IN",
    PERSON,
    MOVIE,
    (Property("characters", pa.list_(pa.string())), Property("ordering", pa.int32())),
    doc="title.principals rows; one person may have two (e.g. actor and self), told apart by ordering.",
    identity=("ordering",),
)
DIRECTED = EdgeType("DIRECTED", PERSON, MOVIE)
WROTE = EdgeType("WROTE", PERSON, MOVIE)
PRODUCED = EdgeType("PRODUCED", PERSON, MOVIE)
COMPOSED = EdgeType("COMPOSED", PERSON, MOVIE)
EDITED = EdgeType("EDITED", PERSON, MOVIE)
PHOTOGRAPHED = EdgeType("PHOTOGRAPHED", PERSON, MOVIE, doc="cinematographer")
WORKED_ON = EdgeType(
    "WORKED_ON",
    PERSON,
    MOVIE,
    (Property("category", pa.string(), "IMDb principal category"),),
    doc="Any other principal category (production designer, casting director, ...).",
    identity=("category",),
)
KNOWN_FOR = EdgeType("KNOWN_FOR", PERSON, MOVIE, doc="name.basics knownForTitles")

EDGE_TYPES: tuple[EdgeType, ...] = (
    RATED,
    TAGGED,
    IN_GENRE,
    ACTED_IN,
    DIRECTED,
    WROTE,
    PRODUCED,
    COMPOSED,
    EDITED,
    PHOTOGRAPHED,
    WORKED_ON,
    KNOWN_FOR,
)

# Person -> Movie edge for each IMDb title.principals category; any other category is WORKED_ON.
PRINCIPAL_CATEGORY_EDGES: dict[str, EdgeType] = {
    "actor": ACTED_IN,
    "actress": ACTED_IN,
    "self": ACTED_IN,
    "director": DIRECTED,
    "writer": WROTE,
    "producer": PRODUCED,
    "composer": COMPOSED,
    "editor": EDITED,
    "cinematographer": PHOTOGRAPHED,
}
# title.crew columns -> edge.
CREW_EDGES: dict[str, EdgeType] = {"directors": DIRECTED, "writers": WROTE}

# Edges that come from IMDb; dropping them gives the MovieLens-only graph of the ablation.
IMDB_EDGE_TYPES: tuple[EdgeType, ...] = tuple(e for e in EDGE_TYPES if PERSON in (e.src, e.dst))

# Properties the models read (models/data.py): rating strength, time, node features.
RATING, TIMESTAMP = "rating", "timestamp"  # of RATED
MOVIELENS_MOVIE_FEATURES = ("year",)  # of MOVIE, kept in the MovieLens-only ablation
IMDB_MOVIE_FEATURES = ("runtime", "num_votes", "imdb_rating")  # of MOVIE
USER_CATEGORICAL_FEATURES = ("gender", "occupation")  # of USER, one-hot
USER_NUMERIC_FEATURES = ("age",)  # of USER

# --- graph-only types (written by loads and training runs, never part of a snapshot) ----------

SNAPSHOT_TABLES = "tables"  # the Snapshot node's content digest per table
SNAPSHOT = NodeType(
    "Snapshot",
    key="id",
    key_type=pa.string(),
    properties=(
        Property("created_at", pa.string()),
        Property("sha256", pa.string(), "of manifest.json"),
        Property("counts", pa.string(), "JSON of the manifest counts"),
        Property("schema_version", pa.int32()),
        Property(SNAPSHOT_TABLES, pa.string(), "JSON {label or type: content digest}: what a refresh need not re-read"),
    ),
    doc="Which snapshot the graph holds; one node, replaced on each load.",
)
RECOMMENDED = EdgeType(
    "RECOMMENDED",
    USER,
    MOVIE,
    (
        Property("score", pa.float64()),
        Property("rank", pa.int32()),
        Property("model", pa.string()),
        Property("run_id", pa.string()),
    ),
    doc="Top-K recommendations of a training run.",
)
MOVIE_EMBEDDING_PROPERTY = "embedding"
MOVIE_EMBEDDING_INDEX = "movie_embedding"
# Full-text index for finding a movie by title, in its MovieLens and IMDb forms.
MOVIE_TITLE_INDEX = "movie_title_search"
MOVIE_TITLE_PROPERTIES = ("title", "imdb_title")


def node_type(label: str) -> NodeType:
    for nt in (*NODE_TYPES, SNAPSHOT):
        if nt.label == label:
            return nt
    raise KeyError(f"unknown node label {label!r}; known: {[n.label for n in NODE_TYPES]}")


def edge_type(rel: str) -> EdgeType:
    for et in (*EDGE_TYPES, RECOMMENDED):
        if et.rel == rel:
            return et
    raise KeyError(f"unknown relationship type {rel!r}; known: {[e.rel for e in EDGE_TYPES]}")


def node_arrow_schema(label: str) -> pa.Schema:
    return node_type(label).arrow_schema()


def edge_arrow_schema(rel: str) -> pa.Schema:
    return edge_type(rel).arrow_schema()


def metadata(
    node_types: tuple[NodeType, ...] = NODE_TYPES,
    edge_types: tuple[EdgeType, ...] = EDGE_TYPES,
    reverse: bool = True,
) -> Metadata:
    """PyG metadata in schema order, with ``rev_<REL>`` reverse edges like ``ToUndirected``."""
    triplets = [e.triplet for e in edge_types]
    if reverse:
        triplets += [e.reverse_triplet for e in edge_types]
    return [n.label for n in node_types], triplets


def constraint_statements() -> list[str]:
    """One uniqueness constraint per node label (Neo4j 5 syntax), idempotent."""
    return [
        f"CREATE CONSTRAINT {n.label.lower()}_{n.key} IF NOT EXISTS FOR (x:{n.label}) REQUIRE x.{n.key} IS UNIQUE"
        for n in (*NODE_TYPES, SNAPSHOT)
    ]


def index_statements() -> list[str]:
    """One index per node property with an ``index`` kind (lookups by IMDb id, title, name) and the
    movie title full-text index, idempotent."""
    return [
        f"CREATE {p.index} INDEX {n.label.lower()}_{p.name} IF NOT EXISTS FOR (x:{n.label}) ON (x.{p.name})"
        for n in NODE_TYPES
        for p in n.properties
        if p.index is not None
    ] + [
        f"CREATE FULLTEXT INDEX {MOVIE_TITLE_INDEX} IF NOT EXISTS FOR (x:{MOVIE.label}) "
        f"ON EACH [{', '.join(f'x.{p}' for p in MOVIE_TITLE_PROPERTIES)}]"
    ]


def node_path(label: str) -> str:
    """Path of a node table relative to the snapshot root."""
    return f"{NODES_DIR}/{node_type(label).label}.parquet"


def edge_path(rel: str) -> str:
    """Path of an edge table relative to the snapshot root."""
    return f"{EDGES_DIR}/{edge_type(rel).rel}.parquet"
