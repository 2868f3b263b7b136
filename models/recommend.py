"""A trained model's outputs as plain tables for the graph: each user's top-K unseen movies and
one embedding per movie (what ``graph_store.results`` writes back to Neo4j)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import torch

from cinegraph.errors import CinegraphError
from cinegraph.models.data import PreparedData
from cinegraph.models.fusion import FusedModel
from cinegraph.models.registry import Inputs, Model, outputs


@torch.no_grad()
def recommendation_table(model: Model, data: PreparedData, k: int = 20, batch_size: int = 1024) -> pa.Table:
    """Top-``k`` movies per user by model score, never one the user rated: neither the ratings of
    the model input nor those held out for validation and test (what is served must not
    recommend a watched film); columns ``user_id``, ``movie_id`` (keys, not indices), ``score``,
    ``rank`` (1 = best)."""
    if k < 1:
        raise CinegraphError(f"k={k}: must be at least 1")
    model.eval()
    z_user, z_movie, _ = outputs(model, Inputs.of(data, model))  # [U, D], [M, D]
    k = min(k, data.num_movies)
    seen = rated_pairs(data).to(z_user.device)  # [2, S]
    users, movies, scores = [], [], []
    for batch in torch.arange(data.num_users, device=z_user.device).split(batch_size):
        s = z_user[batch] @ z_movie.t()  # [B, M], B users of this batch
        in_batch = (seen[0] >= batch[0]) & (seen[0] <= batch[-1])
        s[seen[0, in_batch] - batch[0], seen[1, in_batch]] = float("-inf")
        top = s.topk(k, dim=1)  # values, indices: [B, k]
        users.append(batch.repeat_interleave(k).cpu())  # [B * k]
        movies.append(top.indices.reshape(-1).cpu())  # [B * k]
        scores.append(top.values.reshape(-1).cpu())  # [B * k]
    user_idx, movie_idx, score = torch.cat(users), torch.cat(movies), torch.cat(scores)
    keep = torch.isfinite(score)  # a user who rated almost everything has fewer than k
    user_ids, movie_ids = np.asarray(data.user_ids), np.asarray(data.movie_ids)
    rank = torch.arange(k).repeat(data.num_users) + 1
    return pa.table(
        {
            "user_id": pa.array(user_ids[user_idx[keep].numpy()], pa.int64()),
            "movie_id": pa.array(movie_ids[movie_idx[keep].numpy()], pa.int64()),
            "score": pa.array(score[keep].double().numpy()),
            "rank": pa.array(rank[keep].numpy(), pa.int32()),
        }
    )


def rated_pairs(data: PreparedData) -> torch.Tensor:
    """``[2, R]`` (user, movie) index pairs of every rating the data holds: the model input's
    RATED edges and the held-out validation and test positives."""
    return torch.cat([data.seen_edges, data.valid_edges, data.test_edges], dim=1)


@torch.no_grad()
def movie_embeddings(model: Model, data: PreparedData) -> tuple[list[int], np.ndarray]:
    """(movie ids, ``[M, D]`` float32): the fused representation for a :class:`FusedModel`, the
    branch's movie embedding otherwise."""
    model.eval()
    inp = Inputs.of(data, model)
    if isinstance(model, FusedModel):
        _, _, emb = model(inp.adj, inp.x, inp.edge_index, inp.evidence)  # [M, 2D]
    else:
        _, emb, _ = outputs(model, inp)  # [M, D]
    return [int(i) for i in data.movie_ids], emb.float().cpu().numpy()
