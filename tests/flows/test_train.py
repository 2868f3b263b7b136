"""The train flow on the tiny snapshot: checkpoints, results, report and artifacts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

from cinegraph.flows.train import train
from cinegraph.flows.train_params import TrainParams
from cinegraph.models.config import TrainConfig

# A few epochs of a small model: the tiny graph trains in seconds.
TINY = TrainConfig(
    hidden_dim=16,
    gcn_layers=1,
    hgt_layers=1,
    hgt_heads=2,
    fusion_heads=2,
    gcn_epochs=4,
    hgt_epochs=4,
    fusion_epochs=2,
    eval_every=2,
    batch_size=256,
    warmup_epochs=0,
)


def _artifacts(flow_run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a.type for a in found if a.key}


def test_train_flow_on_snapshot(tiny_snapshot: Path, tmp_path: Path) -> None:
    params = TrainParams(
        snapshot=str(tiny_snapshot),
        out=str(tmp_path / "runs"),
        source="snapshot",
        model=TINY,
        seeds=[0, 1],
        run_name="tiny",
        write_back=False,
    )
    state = train(params, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    run = tmp_path / "runs" / "tiny"
    assert result["run_dir"] == str(run) and result["write_back"] is None
    for seed in (0, 1):
        assert {"gcn.pt", "hgt.pt", "fused.pt", "curves_fused.png", "split"} <= {
            p.name for p in (run / "warm" / f"seed-{seed}").iterdir()
        }
    models = json.loads((run / "warm" / "results.json").read_text())["models"]
    assert set(models) == {"fused", "gcn_branch", "hgt_branch"}
    ndcg = models["fused"]["ndcg@20"]
    assert len(ndcg["per_seed"]) == 2 and 0.0 <= ndcg["mean"] <= 1.0
    report = (run / "report.md").read_text()
    assert "| fused |" in report and "mrr@20" in report
    assert report.count("loss and validation per epoch](data:image/png;base64,iVBORw0KGgo") == 3
    assert str(tmp_path) not in report  # no machine paths: the report stands alone
    flow_run_id = state.state_details.flow_run_id
    kinds = _artifacts(flow_run_id)
    assert kinds == {"evaluation": "table", "training-report": "markdown", "training": "progress"}
    with get_client(sync_client=True) as client:
        logs = [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]
        (progress,) = [
            a
            for a in client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            if a.key == "training"
        ]
    line = r"(gcn|hgt|fused) epoch \d+: loss [\d.]+, validation ndcg@10 [\d.]+, ndcg@20 [\d.]+, map [\d.]+"
    evaluated = [m for m in logs if re.fullmatch(line, m)]
    assert len(evaluated) >= 2 * 3 and not any("nan" in m for m in logs)  # every stage, both seeds
    assert any(m.startswith("gcn epoch 2: loss") for m in evaluated)
    assert progress.data == 100.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": {"device": "gpu"}}, "device"),
        ({"seeds": []}, "seeds"),
        ({"run_name": ".."}, "run_name"),
        ({"seeds": [0, 0]}, "repeat a seed"),
        ({"model": {"gcn_weights": {"rec": -1.0}}}, "gcn_weights.rec"),
        ({"model": {"ks": [0, -3]}}, "ks.0"),
        (
            {"subgraph": {"year_min": 2000, "year_max": 1990, "node_types": ["User", "User"]}},
            r"node_types repeat a type: \['User', 'User'\]; year_min=2000 > year_max=1990",
        ),
        ({"subgraph": {"node_types": ["Movie"]}}, "must include User"),
        ({"subgraph": {"edge_types": ["IN_GENRE"]}}, "must include RATED"),
        ({"mode": "fast"}, "mode"),
        ({"dask_address": "tcp://127.0.0.1:8786"}, "needs task_runner='dask'"),
        ({"task_runner": "ray"}, "task_runner"),
    ],
)
def test_invalid_train_parameters_are_refused(change: dict, message: str, tmp_path: Path) -> None:
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match=message):
        train(params={"out": str(tmp_path / "runs"), **change})
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_benchmark_mode_runs_the_baselines(tiny_snapshot: Path, tmp_path: Path) -> None:
    params = TrainParams(
        snapshot=str(tiny_snapshot),
        out=str(tmp_path / "runs"),
        source="snapshot",
        mode="benchmark",
        model=TINY,
        seeds=[3],
        run_name="bench",
    )
    result = train(params)
    models = json.loads((tmp_path / "runs" / "bench" / "warm" / "results.json").read_text())["models"]
    assert {"fused", "popularity", "mf_bpr", "lightgcn", "gcn_branch", "hgt_branch"} <= set(models)
    assert models["lightgcn"]["ndcg@20"]["per_seed"][0] >= 0.0
    assert result["write_back"] is None and Path(result["report"]).read_text().strip()


def test_seeds_on_a_dask_cluster_equal_the_sequential_run(tiny_snapshot: Path, tmp_path: Path) -> None:
    """Two seeds on a real local Dask cluster (two worker processes) give per-seed results equal
    to running them one after the other in the flow's process."""
    from distributed import LocalCluster

    params = TrainParams(
        snapshot=str(tiny_snapshot),
        out=str(tmp_path / "runs"),
        source="snapshot",
        model=TINY,
        seeds=[0, 1],
        write_back=False,
        run_name="sequential",
    )
    train(params)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        result = train(params.model_copy(update={"run_name": "dask", "task_runner": "dask", "dask_address": address}))
    assert Path(result["report"]).exists()
    sequential, parallel = (
        json.loads((tmp_path / "runs" / name / "warm" / "results.json").read_text())["models"]
        for name in ("sequential", "dask")
    )
    for model, metrics in sequential.items():
        for metric in ("ndcg@20", "recall@20", "mrr@20", "macro_f1", "valid_ndcg@20"):
            if metric in metrics:
                assert parallel[model][metric]["per_seed"] == metrics[metric]["per_seed"], (model, metric)
    assert (tmp_path / "runs" / "dask" / "warm" / "seed-1" / "fused.pt").exists()
