"""``cinegraph tune`` on the tiny snapshot: a real two-trial Optuna search per model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cinegraph.errors import CinegraphError
from cinegraph.models.benchmark import baseline_config
from cinegraph.models.config import TrainConfig, load_config
from cinegraph.models.tune import tune

TINY = TrainConfig(
    hidden_dim=16,
    hgt_heads=2,
    fusion_heads=2,
    gcn_epochs=2,
    hgt_epochs=2,
    fusion_epochs=2,
    eval_every=2,
    batch_size=256,
    num_threads=1,
)


def test_two_trials_of_the_fused_model_write_a_config_train_accepts(tiny_snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned.json"
    result = tune(tiny_snapshot, "fused", out, trials=2, config=TINY)
    assert result["trials"] == 2 and 0.0 <= result["value"] <= 1.0
    config = load_config(out)
    assert config.hidden_dim == result["params"]["hidden_dim"] in (32, 64, 128)
    assert config.temperature == pytest.approx(result["params"]["temperature"])
    assert config.gcn_epochs == 2  # untuned fields come from the starting config


def test_baselines_tune_into_the_same_file(tiny_snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned.json"
    tune(tiny_snapshot, "lightgcn", out, trials=2, config=TINY)
    for model in ("ease", "itemknn", "content_knn"):
        tune(tiny_snapshot, model, out, trials=2, config=load_config(out))
    config = load_config(out)
    assert set(config.baselines) == {"lightgcn", "ease", "itemknn", "content_knn"}
    assert baseline_config("lightgcn", config).num_layers == config.baselines["lightgcn"]["num_layers"]
    assert len(baseline_config("ease", config).lambdas) == 1
    assert json.loads(out.read_text())["hidden_dim"] == 16  # the fused model's fields untouched


def test_errors(tiny_snapshot: Path, tmp_path: Path) -> None:
    with pytest.raises(CinegraphError, match="--model popularity: nothing to tune"):
        tune(tiny_snapshot, "popularity", tmp_path / "x.json", trials=1)
    with pytest.raises(CinegraphError, match="--trials 0"):
        tune(tiny_snapshot, "fused", tmp_path / "x.json", trials=0)
    with pytest.raises(CinegraphError, match="--parallel 0"):
        tune(tiny_snapshot, "fused", tmp_path / "x.json", trials=2, parallel=0)
    bad = TrainConfig(baselines={"lightgcn": {"num_layer": 2}})
    with pytest.raises(CinegraphError, match=r"baselines\.lightgcn\.num_layer"):
        baseline_config("lightgcn", bad)
