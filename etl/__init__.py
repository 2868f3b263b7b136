"""MovieLens + IMDb ETL: fetch, stage in DuckDB, match titles, write the graph snapshot.

Flows call only these; the step modules stay internal."""

from etl.config import EtlConfig
from etl.match import MatchConfig
from etl.pipeline import EtlResult, run_etl, summarize

__all__ = ["EtlConfig", "EtlResult", "MatchConfig", "run_etl", "summarize"]
