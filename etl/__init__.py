"""MovieLens + IMDb ETL: fetch, stage in DuckDB, match titles, write the graph snapshot.

Flows call only these; the step modules stay internal."""

from cinegraph.etl.config import EtlConfig
from cinegraph.etl.match import MatchConfig
from cinegraph.etl.pipeline import EtlResult, run_etl, summarize

__all__ = ["EtlConfig", "EtlResult", "MatchConfig", "run_etl", "summarize"]
