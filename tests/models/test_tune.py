"""``cinegraph tune`` on the tiny snapshot: real two-trial Optuna searches, several models into one file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cinegraph.errors import CinegraphError
from cinegraph.flows.cli import main
from cinegraph.models.benchmark import baseline_config
from cinegraph.models.config import TrainConfig, load_config
from cinegraph.models.tune import study_path, tune
from tests.models.tiny import QUICK


def test_two_trials_of_the_fused_model_write_a_config_train_accepts(tiny_snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned.json"
    start = QUICK.model_copy(update={"hidden_dim": 32})  # a point of the search space: tried first
    fused = tune(tiny_snapshot, ["fused"], out, trials=2, config=start)["models"]["fused"]
    assert fused["trials_done"] == 2 and 0.0 <= fused["best_value"] <= 1.0
    first, second = fused["trials"]
    assert first["params"]["hidden_dim"] == 32 and first["params"]["temperature"] == 1.0  # the given setting first
    assert second["params"]["hidden_dim"] in (32, 64, 128)  # then the sampler's
    assert fused["best_value"] == max(first["value"], second["value"])
    config = load_config(out)
    assert config.hidden_dim == fused["best_params"]["hidden_dim"]
    assert config.temperature == pytest.approx(fused["best_params"]["temperature"])
    assert config.gcn_epochs == 2  # untuned fields come from the starting config


def test_baselines_tune_into_one_file_with_one_budget_and_a_study_record(tiny_snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned.json"
    tune(tiny_snapshot, ["lightgcn", "ease"], out, trials=2, timeout_s=600.0, config=QUICK)
    study = tune(tiny_snapshot, ["itemknn", "content_knn"], out, trials=2, config=load_config(out))
    config = load_config(out)
    assert set(config.baselines) == {"lightgcn", "ease", "itemknn", "content_knn"}
    assert baseline_config("lightgcn", config).num_layers == config.baselines["lightgcn"]["num_layers"]
    assert json.loads(out.read_text())["hidden_dim"] == 16  # the fused model's fields untouched
    saved = json.loads(study_path(out).read_text())
    assert saved == json.loads(json.dumps(study))
    assert set(saved["models"]) == {"lightgcn", "ease", "itemknn", "content_knn"}  # the earlier run's kept
    assert saved["models"]["ease"]["budget"] == {"trials": 2, "timeout_s": 600.0, "parallel": 1}
    assert saved["split"] == "validation" and saved["seed"] == 0
    for name, record in saved["models"].items():
        assert record["trials_done"] == len(record["trials"]) == 2
        assert all(t["seconds"] > 0 and 0.0 <= t["value"] <= 1.0 for t in record["trials"])
        values = [t["value"] for t in record["trials"]]
        assert (record["start_value"] is None) == (name == "lightgcn")  # a default grid is scored, not a trial
        assert record["best_value"] == max([*values, record["start_value"] or 0.0])
        grid_wins = record["start_value"] is not None and record["start_value"] >= max(values)
        assert (config.baselines[name] == {}) == grid_wins  # the default grid kept unless a trial beats it
    ease = saved["models"]["ease"]
    if ease["best_params"]:
        assert baseline_config("ease", config).lambdas == tuple(ease["best_params"]["lambdas"])


def test_a_tuned_baseline_is_the_next_search_s_first_trial(tiny_snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned.json"
    config = QUICK.model_copy(update={"baselines": {"ease": {"lambdas": [123.0]}}})
    ease = tune(tiny_snapshot, ["ease"], out, trials=1, config=config)["models"]["ease"]
    assert ease["trials"][0]["params"] == {"lambda": 123.0}


def test_errors(tiny_snapshot: Path, tmp_path: Path) -> None:
    with pytest.raises(CinegraphError, match="--model popularity: nothing to tune"):
        tune(tiny_snapshot, ["ease", "popularity"], tmp_path / "x.json", trials=1)
    with pytest.raises(CinegraphError, match="--trials 0"):
        tune(tiny_snapshot, ["fused"], tmp_path / "x.json", trials=0)
    with pytest.raises(CinegraphError, match="--model: name at least one"):
        tune(tiny_snapshot, [], tmp_path / "x.json", trials=1)
    with pytest.raises(CinegraphError, match="--parallel 0"):
        tune(tiny_snapshot, ["fused"], tmp_path / "x.json", trials=2, parallel=0)
    assert not (tmp_path / "x.json").exists()
    bad = TrainConfig(baselines={"lightgcn": {"num_layer": 2}})
    with pytest.raises(CinegraphError, match=r"baselines\.lightgcn\.num_layer"):
        baseline_config("lightgcn", bad)


def test_the_cli_tunes_several_models_into_one_file(
    tiny_snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tuned.json"
    argv = ["tune", "--snapshot", str(tiny_snapshot), "--model", "ease,itemknn", "--trials", "1", "--out", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"ease", "itemknn"} and all(m["trials_done"] == 1 for m in printed.values())
    assert set(load_config(out).baselines) == {"ease", "itemknn"}
    assert json.loads(study_path(out).read_text())["budget"] == {"trials": 1, "timeout_s": None, "parallel": 1}
    assert main([*argv[:4], "ease,popularity", *argv[5:]]) == 2
    assert "--model popularity: nothing to tune" in capsys.readouterr().err
