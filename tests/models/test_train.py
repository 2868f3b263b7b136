from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from cinegraph.errors import CinegraphError
from cinegraph.models.config import TrainConfig, load_config
from cinegraph.models.data import DataConfig, PreparedData, prepare_data
from cinegraph.models.loop import evaluate, lr_factor
from cinegraph.models.registry import Inputs, load_checkpoint, outputs
from cinegraph.models.runner import TRAIN_MODELS, run
from cinegraph.models.train import pretrain, train_fused
from cinegraph.schema import RATED
from tests.models.tiny import TINY


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Exactly equal metrics, NaN (an empty slice) equal to NaN."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


@pytest.fixture(scope="module")
def tiny_data(tiny_tables: dict[str, pa.Table]) -> PreparedData:
    return prepare_data(tiny_tables, DataConfig(), seed=0)


def test_lr_factor_warms_up_then_decays() -> None:
    assert [round(lr_factor(e, 2, 10), 3) for e in (0, 1, 2)] == [0.333, 0.667, 1.0]
    assert lr_factor(10, 2, 10) == pytest.approx(0.1)
    assert lr_factor(6, 2, 10) == pytest.approx(0.55)


def test_tiny_end_to_end_and_exact_reload(tiny_data: PreparedData, tmp_path: Path) -> None:
    config = TrainConfig(**TINY)
    results = train_fused(tiny_data, config, tmp_path)
    assert set(results) == {"gcn_branch", "hgt_branch", "fused"}
    for r in results.values():
        assert 0.0 <= r.metrics["ndcg@20"] <= 1.0 and 0.0 <= r.metrics["macro_f1"] <= 1.0
        assert r.history and r.epoch_seconds > 0
    for name, result in zip(("gcn", "hgt", "fused"), results.values(), strict=True):
        ckpt = torch.load(tmp_path / f"{name}.pt", weights_only=False)
        assert {"model_args", "config", "optimizer", "epoch", "best_score", "split"} <= set(ckpt)
        model, saved = load_checkpoint(tmp_path / f"{name}.pt", tiny_data)
        assert saved.hidden_dim == 16
        inp = Inputs.of(tiny_data, model)
        assert same(evaluate(model, tiny_data, inp, "valid"), ckpt["valid_metrics"])
        assert same(evaluate(model, tiny_data, inp, "test"), result.metrics)


def test_reload_takes_architecture_from_checkpoint(
    tiny_tables: dict[str, pa.Table], tiny_data: PreparedData, tmp_path: Path
) -> None:
    pretrain("gcn", tiny_data, TrainConfig(**{**TINY, "gcn_epochs": 2}), tmp_path)
    model, config = load_checkpoint(tmp_path / "gcn.pt", tiny_data, TrainConfig(hidden_dim=128))
    assert config.hidden_dim == 16 and model.hidden_dim == 16
    other = prepare_data(tiny_tables, DataConfig(), seed=1)
    with pytest.raises(CinegraphError, match="another split"):
        load_checkpoint(tmp_path / "gcn.pt", other)


@pytest.mark.parametrize("kind", ["gcn", "hgt"])
def test_fixed_seed_is_identical_on_cpu(tiny_data: PreparedData, kind: str) -> None:
    config = TrainConfig(**{**TINY, "gcn_epochs": 3, "hgt_epochs": 3})
    a, ra = pretrain(kind, tiny_data, config)
    b, rb = pretrain(kind, tiny_data, config)
    assert same(ra.metrics, rb.metrics)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


def test_uncertainty_single_task_concat(tiny_data: PreparedData) -> None:
    config = TrainConfig(**{**TINY, "weighting": "uncertainty", "single_task": True, "fusion": "concat"})
    results = train_fused(tiny_data, config)
    assert "genre" not in results["gcn_branch"].history[0]  # single task: rec only
    assert "rec" not in results["hgt_branch"].history[0]
    assert {"rec", "genre"} <= set(results["fused"].history[0])
    assert all(math.isfinite(r.metrics["ndcg@20"]) for r in results.values())


def test_load_config(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"hidden_dim": 32, "data": {"positive_threshold": 3.5}}))
    config = load_config(path, device="cpu", seed=None)
    assert config.hidden_dim == 32 and config.data.positive_threshold == 3.5 and config.seed == 0
    path.write_text(json.dumps({"hidden_dims": 32}))
    with pytest.raises(CinegraphError, match="hidden_dims"):
        load_config(path)
    with pytest.raises(CinegraphError, match="cannot read JSON"):
        load_config(tmp_path / "absent.json")


@pytest.mark.gpu
def test_a_few_steps_on_cuda(tiny_data: PreparedData) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    config = TrainConfig(**{**TINY, "device": "cuda", "gcn_epochs": 2, "hgt_epochs": 2, "fusion_epochs": 2})
    results = train_fused(tiny_data.to("cuda"), config)
    assert all(math.isfinite(r.metrics["ndcg@20"]) for r in results.values())


@pytest.mark.slow
@pytest.mark.realdata
def test_short_train_on_the_real_snapshot(real_snapshot: Path, tmp_path: Path) -> None:
    config = TrainConfig(gcn_epochs=4, hgt_epochs=2, fusion_epochs=2, eval_every=2)
    summary = run(real_snapshot, tmp_path, config, [0], TRAIN_MODELS, ("warm",), "cinegraph train")["warm"]
    assert summary["models"]["fused"]["ndcg@20"]["mean"] > 0.0
    seed = tmp_path / "warm" / "seed-0"
    assert (tmp_path / "warm" / "results.json").exists() and (seed / "curves_fused.png").exists()
    assert (seed / "fused.pt").exists() and (seed / "split" / "test.csv").exists()


def test_hide_genres_removes_the_edges_of_hidden_training_movies(tiny_data: PreparedData) -> None:
    from cinegraph.models.loop import hide_genres
    from cinegraph.schema import IN_GENRE

    inp = Inputs.of(tiny_data)
    masked, hidden = hide_genres(inp, tiny_data, torch.Generator().manual_seed(0))
    assert hidden.any() and not (hidden & ~tiny_data.genre_masks["train"]).any()
    before, after = inp.edge_index[IN_GENRE.triplet], masked.edge_index[IN_GENRE.triplet]
    assert not hidden[after[0]].any()  # no hidden movie keeps a genre edge
    assert after.size(1) == (~hidden[before[0]]).sum()  # every other edge stays
    rev = masked.edge_index[IN_GENRE.reverse_triplet]
    assert torch.equal(rev.flip(0), after)


def test_dropping_hides_the_user_edges_of_dropped_movies_only(tiny_data: PreparedData) -> None:
    from cinegraph.schema import TAGGED

    inp = Inputs.of(tiny_data)
    drop = torch.zeros(tiny_data.num_movies, dtype=torch.bool)
    drop[inp.edge_index[RATED.triplet][1, :5]] = True
    dropped = inp.dropping(drop)
    for et in (RATED, TAGGED):
        before, after = inp.edge_index[et.triplet], dropped.edge_index[et.triplet]
        assert not drop[after[1]].any() and after.size(1) == (~drop[before[1]]).sum()
        assert torch.equal(dropped.edge_index[et.reverse_triplet].flip(0), after)
    others = [t for t in inp.edge_index if "User" not in (t[0], t[2])]
    assert others and all(torch.equal(inp.edge_index[t], dropped.edge_index[t]) for t in others)
    assert torch.equal(dropped.drop, drop) and inp.drop is None


def test_hgt_represents_dropped_movies_as_new(tiny_data: PreparedData) -> None:
    """A dropped movie reaches the HGT as a new one: no user edge and no learned embedding, so
    its representation is its content's alone (as the pretraining's DropoutNet steps need)."""
    torch.manual_seed(0)
    hgt, _ = pretrain("hgt", tiny_data, TrainConfig(**{**TINY, "hgt_epochs": 1}))
    hgt.eval()
    inp = Inputs.of(tiny_data, hgt)
    drop = torch.zeros(tiny_data.num_movies, dtype=torch.bool)
    drop[inp.edge_index[RATED.triplet][1, :5]] = True
    dropped = inp.dropping(drop)
    cold = inp.evidence <= 0
    with torch.no_grad():
        _, z_movie, _ = outputs(hgt, dropped)
        _, as_new = hgt.embed(inp.x, dropped.edge_index, cold | drop)
        _, with_embedding = hgt.embed(inp.x, dropped.edge_index, cold)
    assert torch.allclose(z_movie, as_new)
    assert not torch.allclose(z_movie[drop], with_embedding[drop])
