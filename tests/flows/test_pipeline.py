"""The pipeline flow and the main job (`cinegraph demo`), embedded and with Neo4j."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from cinegraph.flows.params import RefreshParams
from cinegraph.flows.pipeline import pipeline, run_demo
from cinegraph.flows.train import train
from cinegraph.flows.train_params import PipelineParams, TrainParams
from cinegraph.models.config import TrainConfig
from cinegraph.schema import MOVIE_EMBEDDING_INDEX, RECOMMENDED

TINY = TrainConfig(
    hidden_dim=16,
    gcn_layers=1,
    hgt_layers=1,
    hgt_heads=2,
    fusion_heads=2,
    gcn_epochs=4,
    hgt_epochs=2,
    fusion_epochs=2,
    eval_every=2,
    batch_size=256,
    warmup_epochs=0,
)


def test_demo_runs_the_pipeline_embedded(
    tiny_mirror_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEO4J_URI", raising=False)
    out = tmp_path / "out"
    summary = run_demo("ml-latest-small", out, str(tiny_mirror_dir))
    assert "| fused |" in summary and "| hgt_branch |" in summary
    assert f"report:   {out / 'runs' / 'demo' / 'report.md'}" in summary
    assert (out / "snapshot" / "manifest.json").is_file()
    assert (out / "runs" / "demo" / "warm" / "seed-0" / "fused.pt").is_file()


@pytest.mark.neo4j
def test_pipeline_with_neo4j_loads_and_writes_results_back(tiny_mirror_dir: Path, tmp_path: Path) -> None:
    if not os.environ.get("NEO4J_URI"):
        pytest.skip("NEO4J_URI not set (make test starts Neo4j and sets it)")
    from cinegraph.graph_store.connection import open_driver, settings_from_env
    from cinegraph.graph_store.cypher import load_query, run_query

    run = "flows-test-run"
    params = PipelineParams(
        refresh=RefreshParams(out=tmp_path / "out", mirror=str(tiny_mirror_dir), progress=False, load_neo4j=True),
        train=TrainParams(out=str(tmp_path / "runs"), model=TINY, run_name=run, top_k=5),
    )
    result = pipeline(params)
    assert result["refresh"]["load"] and result["train"]["write_back"]["recommended_edges"] == 30 * 5
    served = Path(result["train"]["run_dir"]) / "warm" / "seed-0" / "refit"  # refit on every rating
    assert (served / "fused.pt").is_file()
    count = f"MATCH ()-[r:{RECOMMENDED.rel} {{run_id: $run}}]->() RETURN count(r) AS n"
    with open_driver(settings_from_env()) as driver:
        assert driver.execute_query(count, run=run).records[0]["n"] == 30 * 5
        indexes = driver.execute_query("SHOW VECTOR INDEXES YIELD name RETURN collect(name) AS names")
        assert MOVIE_EMBEDDING_INDEX in indexes.records[0]["names"]
        _, rows = run_query(driver, load_query("explain_recommendation"), {"user_id": 3, "run_id": run})
        assert rows and all(row["path"] is not None for row in rows)
        per_movie = Counter(row["rank"] for row in rows)  # each recommended movie, a few paths each
        assert len(per_movie) > 1 and max(per_movie.values()) <= 3
        # Rerunning the run replaces its recommendations, never duplicates them.
        train(params.train.model_copy(update={"snapshot": result["refresh"]["snapshot"]}))
        assert driver.execute_query(count, run=run).records[0]["n"] == 30 * 5
