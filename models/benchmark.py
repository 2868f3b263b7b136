"""What ``cinegraph benchmark`` compares: the fused model, its branches and ablations beside the
baselines, on the same splits, under the warm protocol or the item cold-start protocol
(``models/data.py``); each baseline's trainer and config; and the cost measurements (peak memory,
the GCN branch's propagation against PyG's LightGCN). :mod:`models.runner` runs them."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from pydantic import BaseModel, ValidationError
from torch_geometric.nn.models import LightGCN

from cinegraph.errors import CinegraphError
from cinegraph.etl.resources import peak_rss, reset_peak_rss
from cinegraph.models.config import TrainConfig
from cinegraph.models.data import PreparedData
from cinegraph.models.evaluate import RunResult
from cinegraph.models.gcn_branch import normalized_adjacency, propagate
from cinegraph.models.scale import return_freed_memory
from cinegraph.schema import RATED

MODELS = (
    "fused",
    "popularity",
    "mf_bpr",
    "lightgcn",
    "ease",
    "itemknn",
    "content_knn",
    "gcn_branch",
    "hgt_branch",
    "fused_concat",
    "fused_no_imdb",
    "fused_single_task",
)
PROTOCOLS = ("warm", "cold-items")


@contextmanager
def peak_memory(device: str) -> Iterator[dict[str, float]]:
    """Peak memory of the enclosed run in MiB: the CUDA allocator's peak on a GPU; on CPU the
    kernel's high-water mark of the resident set, reset at the start, above the resident set at
    the start (after what earlier runs freed went back to the system)."""
    out: dict[str, float] = {}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        out["mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        return
    gc.collect()
    return_freed_memory(every_s=0)  # what earlier runs freed: this run then measures its own growth
    reset_peak_rss()
    start = peak_rss()  # the mark, just reset, is the resident set now
    try:
        yield out
    finally:
        out["mb"] = (peak_rss() - start) / 2**20


def propagation_speed(data: PreparedData, config: TrainConfig, repeats: int = 20) -> dict:
    """Seconds per forward+backward of the GCN branch's propagation and of PyG's LightGCN on the
    same graph (every RATED edge of the model input, both directions), measured in one run."""
    rated = data.graph[RATED.triplet].edge_index
    n_u, n = data.num_users, data.num_users + data.num_movies
    edge_index = torch.cat([torch.stack([rated[0], rated[1] + n_u]), torch.stack([rated[1] + n_u, rated[0]])], dim=1)
    adj = normalized_adjacency(rated, data.train_weight, data.num_users, data.num_movies)
    ref = LightGCN(n, config.hidden_dim, config.gcn_layers).to(edge_index.device)
    x = ref.embedding.weight

    def ours() -> torch.Tensor:
        h, views = x, [x]
        for _ in range(config.gcn_layers):
            h = propagate(adj, h)
            views.append(h)
        return torch.stack(views, 1).mean(1)

    def timed(fn: Callable[[], torch.Tensor]) -> float:
        fn().sum().backward()  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn().sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / repeats

    ours_s, ref_s = timed(ours), timed(lambda: ref.get_embedding(edge_index))
    return {
        "gcn_branch_s": ours_s,
        "lightgcn_s": ref_s,
        "ratio": ours_s / ref_s,
        "edges": int(edge_index.size(1)),
        "layers": config.gcn_layers,
    }


def baselines() -> dict[str, tuple[Callable[..., RunResult], type[BaseModel]]]:
    """Each baseline's trainer ``fn(data, config, seed, device)`` and config class, by name: what
    :func:`run_seed` and ``cinegraph tune`` run."""
    from cinegraph.models.content_knn import ContentKNNConfig, train_content_knn
    from cinegraph.models.ease import EASEConfig, train_ease
    from cinegraph.models.itemknn import ItemKNNConfig, train_itemknn
    from cinegraph.models.lightgcn import LightGCNConfig, train_lightgcn
    from cinegraph.models.mf_bpr import BPRConfig, train_mf_bpr
    from cinegraph.models.popularity import PopularityConfig, train_popularity

    return {
        "popularity": (train_popularity, PopularityConfig),
        "mf_bpr": (train_mf_bpr, BPRConfig),
        "lightgcn": (train_lightgcn, LightGCNConfig),
        "ease": (train_ease, EASEConfig),
        "itemknn": (train_itemknn, ItemKNNConfig),
        "content_knn": (train_content_knn, ContentKNNConfig),
    }


def baseline_config(name: str, config: TrainConfig) -> BaseModel:
    """The config of baseline ``name``: its defaults updated by ``config.baselines[name]`` (what
    ``cinegraph tune`` writes)."""
    cls = baselines()[name][1]
    try:
        return cls.model_validate(config.baselines.get(name, {}))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise CinegraphError(f"config baselines.{name}.{where}: {first['msg']}") from exc
