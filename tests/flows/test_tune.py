"""flows/tune.py: trials as tasks, in this process or a batch at a time on a real Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from cinegraph.flows.train_params import TuneParams
from cinegraph.flows.tune import tune
from cinegraph.graph_store.snapshot_io import read_snapshot
from cinegraph.models.config import TrainConfig, load_config
from cinegraph.models.data import prepare_data
from cinegraph.models.tune import tune as tune_here
from cinegraph.models.tune import validation_score


def _rescored(snapshot: Path, out: Path) -> float:
    """Validation ndcg@20 of the written config, trained again here."""
    config = load_config(out)
    return validation_score("itemknn", prepare_data(read_snapshot(snapshot), config.data, config.seed), config)


def test_flow_trials_equal_the_in_process_search(tiny_snapshot: Path, tmp_path: Path) -> None:
    """One trial at a time, the flow's tasks propose and score exactly what the plain search does."""
    config = TrainConfig(num_threads=1)
    here = tune_here(tiny_snapshot, ["itemknn"], tmp_path / "here.json", trials=2, config=config)
    params = TuneParams(snapshot=str(tiny_snapshot), model="itemknn", out=str(tmp_path / "flow.json"), trials=2)
    flowed = tune(params.model_copy(update={"config": config}))

    def decided(study: dict) -> tuple:
        m = study["models"]["itemknn"]
        return m["best_value"], m["best_params"], m["start_value"], [(t["params"], t["value"]) for t in m["trials"]]

    assert decided(flowed) == decided(here)
    assert load_config(tmp_path / "flow.json") == load_config(tmp_path / "here.json")


@pytest.mark.slow
def test_parallel_trials_on_a_dask_cluster(tiny_snapshot: Path, tmp_path: Path) -> None:
    """Two trials at a time on a local Dask cluster (two worker processes): every trial runs,
    the best is written, and its value is what that config scores when trained again here."""
    from distributed import LocalCluster

    out = tmp_path / "tuned.json"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        params = TuneParams(
            snapshot=str(tiny_snapshot),
            model="itemknn",
            out=str(out),
            config=TrainConfig(num_threads=1),
            trials=4,
            parallel=2,
            task_runner="dask",
            dask_address=cluster.scheduler_address,
        )
        result = tune(params)["models"]["itemknn"]
    assert result["trials_done"] == 4 and 0.0 < result["best_value"] <= 1.0
    assert len({t["seconds"] for t in result["trials"]}) == 2  # two batches of two, each timed as one
    if result["best_params"]:  # else the starting grid stayed the best
        assert load_config(out).baselines["itemknn"] == result["best_params"]
    assert _rescored(tiny_snapshot, out) == pytest.approx(result["best_value"], abs=1e-6)


def test_params_refuse_an_address_without_dask() -> None:
    with pytest.raises(ValidationError, match="needs task_runner='dask'"):
        TuneParams(dask_address="tcp://127.0.0.1:8786")
    with pytest.raises(ValidationError, match="parallel"):
        TuneParams(parallel=0)
