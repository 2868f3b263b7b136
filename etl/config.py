"""The ETL's one configuration model: every knob of fetch -> stage -> match -> snapshot, each
defaulted, so ``EtlConfig()`` runs ml-latest-small from the official sites into ``out/``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from etl.extract import DEFAULT_MAX_EXTRACT_BYTES
from etl.match import MatchConfig
from etl.sources import Variant
from etl.staging import FILM_TITLE_TYPES


class EtlConfig(BaseModel):
    """Parameters of :func:`etl.pipeline.run_etl` (a Prefect flow renders them as a form)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: Variant = "ml-latest-small"  # MovieLens variant to fetch and stage
    out: Path = Path("out")  # holds raw/, warehouse.duckdb, match_review.csv and snapshot/
    mirror: str | None = None  # directory or http(s) URL in the mirror layout; None: official sites
    movielens_base: str | None = None  # MovieLens base URL or directory; wins over mirror
    imdb_base: str | None = None  # IMDb base URL or directory; wins over mirror
    match: MatchConfig = MatchConfig()  # title matching: mode links|fuzzy, threshold, margin, ...
    overrides: Path | None = None  # CSV movieId -> tconst (or none), always honoured
    max_reject_fraction: float = Field(0.01, ge=0, le=1)  # fail when a file rejects more rows
    max_extract_bytes: int = Field(DEFAULT_MAX_EXTRACT_BYTES, gt=0)  # cap on the unzipped variant
    film_title_types: tuple[str, ...] = FILM_TITLE_TYPES  # IMDb titleTypes staged and matched
    # DuckDB memory_limit; beyond it DuckDB spills to disk. DuckDB fills it with cached pages, so it
    # sits ~3 GB under the 8 GB a full-size run may take: the matcher and Arrow batches need the rest.
    memory_limit: str = "5GB"
    threads: int | None = None  # DuckDB threads; None: all cores
    progress: bool = True  # download progress bars
