"""Parameters of the refresh flow: a typed pydantic model, so the Prefect UI renders a form with
the defaults and refuses bad input before a run starts. Kept apart from ``flows.train_params`` so
that a refresh worker never imports torch.

Credentials never appear here: the Neo4j target comes from NEO4J_URI / NEO4J_USER /
NEO4J_PASSWORD in the environment of the process that runs the flow.
"""

from __future__ import annotations

from pydantic import Field

from cinegraph.etl.config import EtlConfig


class RefreshParams(EtlConfig):
    """The ETL's own configuration (variant, sources, matching, staging limits) plus what the
    flow adds: the Neo4j target and how downloads are cached and retried."""

    load_neo4j: bool | None = Field(
        None, title="Load into Neo4j", description="load the snapshot into Neo4j; empty: when NEO4J_URI is set"
    )
    neo4j_database: str = Field("neo4j", title="Neo4j database", description="Neo4j database name")
    verify_graph: bool = Field(
        False,
        title="Verify every table",
        description="compare every table with the graph, also those the graph's last snapshot already held "
        "(repairs changes made to the graph by hand; reads the whole graph back)",
    )
    download_cache_hours: float = Field(
        24.0,
        gt=0,
        title="Download cache (hours)",
        description="how long an unchanged upstream file is trusted without re-download",
    )
    retry_backoff_s: float = Field(
        2.0, ge=0, title="Retry backoff (s)", description="first retry delay of a failed download; doubles each retry"
    )
