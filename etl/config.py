"""The ETL's one configuration model: every knob of fetch -> stage -> match -> snapshot, each
defaulted, so ``EtlConfig()`` runs ml-latest-small from the official sites into ``out/``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from cinegraph.etl.extract import DEFAULT_MAX_EXTRACT_BYTES
from cinegraph.etl.match import MatchConfig
from cinegraph.etl.sources import Variant
from cinegraph.etl.staging import FILM_TITLE_TYPES


class EtlConfig(BaseModel):
    """Parameters of :func:`etl.pipeline.run_etl` (a Prefect flow renders them as a form)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: Variant = Field("ml-latest-small", description="MovieLens variant to fetch and stage")
    out: Path = Field(Path("out"), description="holds raw/, warehouse.duckdb, match_review.csv and snapshot/")
    mirror: str | None = Field(
        None, description="directory or http(s) URL in the mirror layout; empty: the official sites"
    )
    movielens_base: str | None = Field(
        None, title="MovieLens base", description="MovieLens base URL or directory; wins over mirror"
    )
    imdb_base: str | None = Field(None, title="IMDb base", description="IMDb base URL or directory; wins over mirror")
    match: MatchConfig = Field(
        default_factory=MatchConfig,
        title="Title matching",
        description="title matching: mode links|fuzzy, threshold, margin, ...",
    )
    overrides: Path | None = Field(None, description="CSV movieId -> tconst (or none), always honoured")
    max_reject_fraction: float = Field(
        0.01, ge=0, le=1, title="Max reject fraction", description="fail when a file rejects more rows"
    )
    max_extract_bytes: int = Field(DEFAULT_MAX_EXTRACT_BYTES, gt=0, description="cap on the unzipped variant")
    film_title_types: tuple[str, ...] = Field(
        FILM_TITLE_TYPES, title="IMDb film title types", description="IMDb titleTypes staged and matched"
    )
    # DuckDB fills memory_limit with cached pages, so it sits ~3 GB under the 8 GB a full-size run
    # may take: the matcher and Arrow batches need the rest.
    memory_limit: str = Field("5GB", description="DuckDB memory_limit; beyond it DuckDB spills to disk")
    threads: int | None = Field(None, description="DuckDB threads; empty: all cores")
    progress: bool = Field(True, description="download progress bars")
