"""Models by saved constructor arguments, the inputs their forward passes read, and checkpoints.

A checkpoint holds the model args (:func:`model_args`), the config, the optimizer, the epoch, the
best score and the split, so :func:`load_checkpoint` rebuilds the model without its config.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cinegraph.errors import CinegraphError
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData
from cinegraph.models.fusion import FusedModel
from cinegraph.models.gcn_branch import MultiTaskGCN, normalized_adjacency
from cinegraph.models.hgt_branch import MultiTaskHGT
from cinegraph.schema import MOVIE, RATED, USER

Outputs = tuple[Tensor, Tensor, Tensor]  # z_user [U, D], z_movie [M, D], genre logits [M, G]
Model = MultiTaskGCN | MultiTaskHGT | FusedModel


def model_args(kind: str, data: PreparedData, config: TrainConfig) -> dict[str, Any]:
    """Constructor arguments of ``kind`` ("gcn", "hgt", "fused"); saved in every checkpoint."""
    g = data.graph
    if kind == "gcn":
        return {
            "kind": "gcn",
            "num_users": data.num_users,
            "num_movies": data.num_movies,
            "num_genres": len(data.genre_names),
            "hidden_dim": config.hidden_dim,
            "num_layers": config.gcn_layers,
            "user_in_dim": g[USER.label].x.size(1),
            "movie_in_dim": g[MOVIE.label].x.size(1),
            "dropout": config.dropout,
            "graph": config.gcn_graph,
        }
    if kind == "hgt":
        edge_types = [t for t in g.edge_types if g[t].num_edges > 0]  # empty relations add nothing
        return {
            "kind": "hgt",
            "metadata": (list(g.node_types), [list(t) for t in edge_types]),
            "num_nodes": {t: g[t].num_nodes for t in g.node_types},
            "in_dims": {t: g[t].x.size(1) for t in g.node_types},
            "num_genres": len(data.genre_names),
            "user_type": USER.label,
            "movie_type": MOVIE.label,
            "hidden_dim": config.hidden_dim,
            "num_layers": config.hgt_layers,
            "heads": config.hgt_heads,
            "dropout": config.dropout,
        }
    if kind == "fused":
        return {
            "kind": "fused",
            "gcn": model_args("gcn", data, config),
            "hgt": model_args("hgt", data, config),
            "heads": config.fusion_heads,
            "dropout": config.dropout,
            "mode": config.fusion,
            "item_item_rank": config.item_item_rank,
            "item_item_scale": config.item_item_scale,
            "content_map_hidden": config.content_map_hidden,
        }
    raise ValueError(f"kind={kind!r} is not 'gcn', 'hgt' or 'fused'")


def build_gcn(args: dict[str, Any]) -> MultiTaskGCN:
    """The GCN branch of saved constructor ``args`` (``model_args("gcn", ...)``)."""
    return MultiTaskGCN(**_without_kind(args, "gcn"))


def build_hgt(args: dict[str, Any]) -> MultiTaskHGT:
    """The HGT branch of saved constructor ``args`` (``model_args("hgt", ...)``)."""
    args = _without_kind(args, "hgt")
    node_types, edge_types = args.pop("metadata")
    return MultiTaskHGT(metadata=(node_types, [(s, r, d) for s, r, d in edge_types]), **args)


def build_model(args: dict[str, Any]) -> Model:
    """The model of saved constructor ``args`` (see :func:`model_args`)."""
    if args["kind"] == "gcn":
        return build_gcn(args)
    if args["kind"] == "hgt":
        return build_hgt(args)
    args = _without_kind(args, "fused")
    return FusedModel(build_gcn(args.pop("gcn")), build_hgt(args.pop("hgt")), **args)


def _without_kind(args: dict[str, Any], kind: str) -> dict[str, Any]:
    """The constructor arguments in ``args``; args saved for another kind of model are refused."""
    if args["kind"] != kind:
        raise ValueError(f"model args of kind={args['kind']!r} where {kind!r} was expected")
    return {k: v for k, v in args.items() if k != "kind"}


@dataclass
class Inputs:
    """What the forward passes read, built once per data, model and device."""

    adj: Tensor  # normalised user–movie sparse adjacency of the GCN
    x: dict[str, Tensor]  # node features per type
    edge_index: dict[tuple[str, str, str], Tensor]  # every relation of the graph
    evidence: Tensor  # [M] interactions per movie in the GCN's graph (0: a cold movie)
    drop: Tensor | None = None  # [M] bool: movies whose interactions are hidden this step

    @classmethod
    def of(cls, data: PreparedData, model: nn.Module | None = None) -> Inputs:
        """The inputs of ``model`` (its GCN's graph); training positives for ``None``."""
        gcn = model.gcn if isinstance(model, FusedModel) else model
        if getattr(gcn, "graph", "positives") == "positives":
            pairs = data.train_edges
            weight = torch.ones(pairs.size(1), device=pairs.device)
        else:
            pairs, weight = data.graph[RATED.triplet].edge_index, data.train_weight
        adj = normalized_adjacency(pairs, weight, data.num_users, data.num_movies)
        evidence = torch.bincount(pairs[1], minlength=data.num_movies)  # [M]
        edges = {t: e for t, e in data.graph.edge_index_dict.items() if e.size(1) > 0}
        return cls(adj, dict(data.graph.x_dict), edges, evidence)

    def dropping(self, drop: Tensor) -> Inputs:
        """These inputs as if the ``drop`` movies ``[M]`` were new: their user edges (ratings,
        tags) leave the HGT input and the fused model hides their GCN views (DropoutNet)."""
        edges = dict(self.edge_index)
        for t, e in self.edge_index.items():
            if USER.label in (t[0], t[2]) and MOVIE.label in (t[0], t[2]):
                edges[t] = e[:, ~drop[e[0 if t[0] == MOVIE.label else 1]]]
        return replace(self, edge_index=edges, drop=drop)


def outputs(model: Model, inp: Inputs) -> Outputs:
    """User and movie embeddings and genre logits of any of the three models."""
    if isinstance(model, MultiTaskGCN):
        x_user, x_movie = inp.x.get(USER.label), inp.x.get(MOVIE.label)
        z_user, z_movie = model.embed(inp.adj, x_user, x_movie, inp.evidence <= 0)
        return z_user, z_movie, model.genre_logits(z_movie)
    if isinstance(model, MultiTaskHGT):
        cold = inp.evidence <= 0 if inp.drop is None else (inp.evidence <= 0) | inp.drop  # [M]
        z_user, z_movie = model.embed(inp.x, inp.edge_index, cold)
        return z_user, z_movie, model.genre_logits(z_movie)
    z_user, z_movie, f_movie = model(inp.adj, inp.x, inp.edge_index, inp.evidence, inp.drop)
    return z_user, z_movie, model.genre_logits(f_movie)


def checkpoint(
    name: str,
    states: dict[str, nn.Module | torch.optim.Optimizer],
    args: dict,
    config: TrainConfig,
    data: PreparedData,
    epoch: int,
    best: float,
    metrics: dict[str, float],
) -> dict[str, Any]:
    """Everything to resume or reload one training stage (``states``: model, weighting,
    optimizer)."""
    return {
        "name": name,
        "model_args": args,
        "config": config.model_dump(mode="json"),
        **{k: copy.deepcopy(v.state_dict()) for k, v in states.items()},
        "epoch": epoch,
        "best_score": best,
        "valid_metrics": metrics,
        "split": {
            "seed": data.seed,
            "data_config": data.config.model_dump(mode="json"),
            "train_edges": data.train_edges.cpu(),
            "valid_edges": data.valid_edges.cpu(),
            "test_edges": data.test_edges.cpu(),
            "genre_masks": {k: v.cpu() for k, v in data.genre_masks.items()},
        },
    }


def load_checkpoint(path: Path, data: PreparedData, config: TrainConfig | None = None) -> tuple[Model, TrainConfig]:
    """Rebuild a checkpoint's model from its saved args, on the split it was trained on; the
    architecture fields of ``config`` are taken from the checkpoint."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError) as exc:
        raise CinegraphError(f"{path}: cannot read checkpoint ({exc})") from exc
    if not torch.equal(ckpt["split"]["test_edges"], data.test_edges.cpu()):
        raise CinegraphError(f"{path}: checkpoint was trained on another split than the data given")
    saved = TrainConfig.model_validate(ckpt["config"])
    config = (config or saved).with_architecture(ckpt["config"])
    model = build_model(ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    return model.to(config.device).eval(), config
