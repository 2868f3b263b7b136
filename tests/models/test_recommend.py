"""Top-K tables and movie embeddings of a trained model (what the train flow writes to Neo4j)."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pytest
import torch

from cinegraph.models.data import DataConfig, PreparedData, prepare_data
from cinegraph.models.recommend import movie_embeddings, recommendation_table
from cinegraph.models.registry import Inputs, load_checkpoint, outputs
from cinegraph.models.train import finetune, pretrain, refit, serving_data, train_fused
from tests.models.tiny import QUICK


@pytest.fixture(scope="module")
def trained(tiny_tables: dict[str, pa.Table]) -> tuple[dict[str, torch.nn.Module], PreparedData]:
    data = prepare_data(tiny_tables, DataConfig(), seed=0)
    gcn, _ = pretrain("gcn", data, QUICK)
    hgt, _ = pretrain("hgt", data, QUICK)
    fused, _ = finetune(gcn, hgt, data, QUICK)
    return {"gcn": gcn, "fused": fused}, data


@pytest.mark.parametrize("kind", ["gcn", "fused"])
@pytest.mark.parametrize("k", [1, 5, 10_000])
def test_top_k_is_ranked_unseen_and_keyed_by_ids(trained, tiny_tables, kind: str, k: int) -> None:
    models, data = trained
    table = recommendation_table(models[kind], data, k, batch_size=3)
    rated = tiny_tables["RATED"]  # every rating, held-out ones included: none may be recommended
    seen = set(zip(rated.column("src").to_pylist(), rated.column("dst").to_pylist(), strict=True))
    held_out = torch.cat([data.valid_edges, data.test_edges], dim=1)
    assert held_out.size(1) > 0 and {(data.user_ids[u], data.movie_ids[m]) for u, m in held_out.t().tolist()} <= seen
    rows = table.to_pylist()
    assert not {(r["user_id"], r["movie_id"]) for r in rows} & seen
    per_user = min(k, data.num_movies)
    for user in data.user_ids:
        mine = [r for r in rows if r["user_id"] == user]
        unseen = data.num_movies - sum(1 for u, _ in seen if u == user)
        assert [r["rank"] for r in mine] == list(range(1, min(per_user, unseen) + 1))
        assert all(a["score"] >= b["score"] for a, b in itertools.pairwise(mine))
    # Agrees with scoring every pair directly.
    z_user, z_movie, _ = outputs(models[kind].eval(), Inputs.of(data, models[kind]))
    best = rows[0]
    u, m = data.user_ids.index(best["user_id"]), data.movie_ids.index(best["movie_id"])
    assert best["score"] == pytest.approx(float(z_user[u] @ z_movie[m]), rel=1e-5)


def test_embeddings_are_the_fused_representation(trained) -> None:
    models, data = trained
    ids, emb = movie_embeddings(models["fused"], data)
    assert ids == [int(i) for i in data.movie_ids]
    assert emb.shape == (data.num_movies, 2 * QUICK.hidden_dim) and emb.dtype.name == "float32"
    ids, emb = movie_embeddings(models["gcn"], data)
    assert emb.shape[0] == data.num_movies


def test_refit_learns_from_every_rating_for_the_selected_epochs(tiny_tables, tmp_path) -> None:
    """What is served is fitted on all of each user's data: no held-out split, every positive in
    training and every rating in the model input, each stage for its epochs selected on validation."""
    evaluated = tmp_path / "evaluated"
    evaluated.mkdir()
    train_fused(prepare_data(tiny_tables, DataConfig(), seed=0), QUICK, evaluated)
    selected = {
        stage: torch.load(evaluated / f"{stage}.pt", weights_only=False)["epoch"] for stage in ("gcn", "hgt", "fused")
    }
    out = refit(tiny_tables, QUICK.model_copy(update={"patience": 1}), evaluated, tmp_path / "refit")
    for stage, count in selected.items():  # exactly the selected epochs: patience plays no part
        assert torch.load(out / f"{stage}.pt", weights_only=False)["epoch"] == count
    data = prepare_data(tiny_tables, serving_data(DataConfig()), seed=0)
    assert data.valid_edges.size(1) == 0 and data.test_edges.size(1) == 0
    rated = tiny_tables["RATED"]
    assert data.seen_edges.size(1) == rated.num_rows
    positives = sum(r >= data.config.positive_threshold for r in rated.column("rating").to_pylist())
    assert data.train_edges.size(1) == positives
    labelled = data.genre_labels.sum(1) > 0
    assert not data.genre_masks["valid"].any() and torch.equal(data.genre_masks["train"], labelled)
    model, _ = load_checkpoint(out / "fused.pt", data, QUICK)
    table = recommendation_table(model, data, k=5)
    seen = set(zip(rated.column("src").to_pylist(), rated.column("dst").to_pylist(), strict=True))
    assert table.num_rows > 0 and not {(r["user_id"], r["movie_id"]) for r in table.to_pylist()} & seen
